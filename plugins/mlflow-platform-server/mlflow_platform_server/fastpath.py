"""The fast request path: basic-auth's per-request LOOKUPS cached, its DECISIONS untouched.

What MLflow 3.17.2's basic-auth (``mlflow/server/auth/__init__.py``) reads from a database on
every request of a non-admin, and what this module does instead:

* ``_run_requirement`` loads the whole run with the tracking store's ``get_run`` (tags, params,
  every latest metric, inputs and outputs) only to learn ``run.info.experiment_id``; its cost
  grows with the run. Here: one query on the ``runs`` primary key for ``experiment_id``, through
  the tracking store's own ``_get_query`` (so a workspace-scoped store still scopes it), and a
  bounded LRU cache in front of it, because a run never changes experiment. The requirements
  built from it and the ``authorize()`` that decides them are MLflow's, line for line.
* ``sender_is_admin`` and ``resolve_permissions`` call the auth store's ``get_user`` and
  ``list_grants`` (one query each, each time). Here: both are cached for the auth-cache TTL
  (``auth_cache_ttl_seconds`` of the rendered auth ini, ``rendering.auth``), the same window
  MLflow's own credential cache already accepts for a password change or a deletion.
  ``authorize()`` folds the cached grants exactly as it folds fresh ones.

Invalidation, on THIS worker: every auth-store method that writes (create/update/delete a user,
grant/revoke/update/delete a permission on any resource type, roles and role assignments, the
team grants :mod:`.hooks` makes after a create) clears the user and grant caches when it returns,
and so does a reload of the teams file. Each load records a generation number first and a result
is kept only if no write happened meanwhile, so a load racing a revoke cannot put the old grants
back. A change made through ANOTHER worker or replica reaches this one when its entries expire:
up to ``auth_cache_ttl_seconds`` (a revoked grant or a removed admin flag keeps working that long
there; a deleted user as well, as with MLflow's credential cache). ``auth_cache_ttl_seconds = 0``
turns the user and grant caches off; the run -> experiment cache stays (it never goes stale).

Differences from stock a client can observe: none in status or body for existing runs (tests:
``tests/store/test_auth_fast_path.py``). A run removed for good by ``mlflow gc`` while its id is
still cached resolves to its old experiment: a user allowed on that experiment then gets the
handler's 404 ``RESOURCE_DOES_NOT_EXIST`` instead of basic-auth's 403; anyone else still gets 403.

If the pinned MLflow's ``_run_requirement`` is not the one this module was written against (its
source hash differs), the run lookup is left to MLflow and a warning logged: slower, never wrong.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import threading
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import LRUCache, TTLCache

_logger = logging.getLogger(__name__)

RUN_CACHE_SIZE = 100_000
"""Run ids kept (~100 bytes each): a day of a busy platform's active runs; LRU beyond that."""

EXPECTED_RUN_REQUIREMENT_SHA256 = "dd0c00e3e8452138dae2eda36094af07e9006c2223cffff5926806cce4641cfe"
"""sha256 of ``inspect.getsource(mlflow.server.auth._run_requirement)`` in the pinned MLflow."""

READ_PREFIXES = ("get_", "list_", "has_", "is_", "user_has_", "authenticate_")
"""Auth-store methods that only read."""
WRITE_PREFIXES = (
    "create_",
    "update_",
    "delete_",
    "grant_",
    "revoke_",
    "rename_",
    "set_",
    "add_",
    "remove_",
    "assign_",
    "unassign_",
)
"""Auth-store methods that change users or grants: each clears the caches when it returns."""
NEUTRAL = frozenset({"init_db", "ManagedSessionMaker"})
"""Public store attributes that neither read users/grants per request nor change them."""


class _NoSuchRun(LookupError):
    """Raised inside a run load so that a miss is never cached."""


class GenerationCache:
    """A thread-safe cache whose entries a write invalidates, including loads in flight.

    ``get(key, load)`` returns the cached value or ``load()``'s; the value is stored only if
    ``invalidate()`` did not run between the start of the load and its end (the generation
    check), so a slow read that started before a revoke can never re-insert the revoked state.
    Exceptions from ``load`` (a missing user) pass through and are not cached.
    """

    def __init__(self, cache: TTLCache[Hashable, Any] | LRUCache[Hashable, Any]) -> None:
        self._cache = cache
        self._lock = threading.Lock()
        self._generation = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        with self._lock:
            try:
                value = self._cache[key]
            except KeyError:
                generation = self._generation
                self.misses += 1
            else:
                self.hits += 1
                return value
        value = load()
        with self._lock:
            if generation == self._generation:
                self._cache[key] = value
        return value

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._cache.clear()


class AuthLookups:
    """The caches of one worker, and the store wrappers that fill and clear them."""

    def __init__(self, ttl_seconds: int, max_size: int, run_cache_size: int = RUN_CACHE_SIZE) -> None:
        self.enabled = ttl_seconds > 0
        size = max(1, max_size)
        self.users = GenerationCache(TTLCache(maxsize=size, ttl=max(ttl_seconds, 1)))
        self.grants = GenerationCache(TTLCache(maxsize=size, ttl=max(ttl_seconds, 1)))
        self.runs = GenerationCache(LRUCache(maxsize=run_cache_size))

    def invalidate(self) -> None:
        """Forget users and grants (never runs: a run's experiment cannot change)."""
        self.users.invalidate()
        self.grants.invalidate()

    def wrap_auth_store(self, store: Any) -> None:
        """Cache ``get_user``/``list_grants`` and make every writing method invalidate.

        Methods are replaced on the instance (MLflow's module-level ``store``), so every caller
        -- MLflow's validators, its route handlers, our team grants -- goes through them. An
        unknown public method (a newer MLflow) stops the server: it might write grants without
        invalidating them.
        """
        unknown = []
        for name in dir(type(store)):
            if name.startswith("_") or name in NEUTRAL or not callable(getattr(type(store), name)):
                continue
            if name.startswith(WRITE_PREFIXES):
                setattr(store, name, self._invalidating(getattr(store, name)))
            elif not name.startswith(READ_PREFIXES):
                unknown.append(name)
        if unknown:
            raise RuntimeError(
                f"mlflow-platform: basic-auth store methods neither read nor write by name: {sorted(unknown)}; "
                "classify them in mlflow_platform_server.fastpath before caching grants"
            )
        if not self.enabled:
            return
        get_user, list_grants = store.get_user, store.list_grants

        @functools.wraps(get_user)
        def cached_get_user(username: str) -> Any:
            return self.users.get(username, lambda: get_user(username))

        @functools.wraps(list_grants)
        def cached_list_grants(user_id: int, workspace: str, resource_types: Any) -> list[Any]:
            key = (user_id, workspace, frozenset(resource_types))
            # A fresh list per caller: MLflow only reads it, but a cached list must not be shared mutable state.
            return list(self.grants.get(key, lambda: tuple(list_grants(user_id, workspace, resource_types))))

        store.get_user = cached_get_user
        store.list_grants = cached_list_grants

    def _invalidating(self, method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            finally:  # a failed write may have changed something too; forgetting is always safe
                self.invalidate()

        return wrapper

    def experiment_of_run(self, tracking_store: Any, run_id: str) -> str | None:
        """The run's experiment id, or None if the store has no such run (MLflow then denies)."""
        from mlflow.store.tracking.dbmodels.models import SqlRun

        def load() -> str:
            with tracking_store.ManagedSessionMaker() as session:
                row = (
                    tracking_store._get_query(session, SqlRun)
                    .with_entities(SqlRun.experiment_id)
                    .filter(SqlRun.run_uuid == run_id)
                    .first()
                )
            if row is None:
                raise _NoSuchRun(run_id)
            return str(row[0])

        try:
            return self.runs.get(run_id, load)
        except _NoSuchRun:
            return None  # not cached: a run with this id may be created next


def _source_sha256(function: Callable[..., Any]) -> str:
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def install(auth: Any, lookups: AuthLookups) -> bool:
    """Install the cached lookups into MLflow's basic-auth module. Returns whether the run
    lookup was replaced (False: MLflow's ``_run_requirement`` differs from the one we mirror)."""
    lookups.wrap_auth_store(auth.store)
    original = auth._run_requirement
    if _source_sha256(original) != EXPECTED_RUN_REQUIREMENT_SHA256:
        _logger.warning(
            "mlflow-platform: MLflow's _run_requirement is not the 3.17.2 one this app mirrors; "
            "run lookups stay MLflow's (get_run per request)"
        )
        return False
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    def run_requirement(run_id: str, action: str) -> Any:
        tracking_store = auth._get_tracking_store()
        if not isinstance(tracking_store, SqlAlchemyStore):
            return original(run_id, action)
        # MLflow's _run_requirement with get_run replaced by the experiment id alone; the rest is
        # its text (a missing run denies, not 404s, so the response is no oracle for run ids).
        experiment_id = lookups.experiment_of_run(tracking_store, run_id)
        if experiment_id is None:
            return None
        experiment = (auth.RESOURCE_TYPE_EXPERIMENT, experiment_id)
        return experiment, [
            auth.Requirement(auth.RESOURCE_TYPE_EXPERIMENT, experiment_id, "read"),
            auth.Requirement(auth.RESOURCE_TYPE_RUN, "*", action, fallback_if_no_grant=(experiment,)),
        ]

    auth._run_requirement = run_requirement
    return True

"""The fast path's caches on MLflow's real basic-auth store (SQLite here; PostgreSQL and the
decision table against stock basic-auth are in tests/store/test_auth_fast_path.py)."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from cachetools import TTLCache
from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
from mlflow_platform_server import fastpath


def _store(path: Path) -> SqlAlchemyStore:
    store = SqlAlchemyStore()
    store.init_db(f"sqlite:///{path}")
    return store


@pytest.fixture
def stores(tmp_path: Path) -> tuple[SqlAlchemyStore, SqlAlchemyStore, fastpath.AuthLookups]:
    """(ours: wrapped, other: the same database through another store, as another replica)."""
    ours, other = _store(tmp_path / "auth.db"), _store(tmp_path / "auth.db")
    lookups = fastpath.AuthLookups(ttl_seconds=60, max_size=100)
    lookups.wrap_auth_store(ours)
    ours.create_user("alice", "alice-password-0123")
    return ours, other, lookups


def test_a_load_that_races_a_write_is_not_kept() -> None:
    cache = fastpath.GenerationCache(TTLCache(maxsize=10, ttl=60))

    def load_during_revoke() -> str:
        cache.invalidate()  # a write lands while this (old) value is being read
        return "old grants"

    assert cache.get("k", load_during_revoke) == "old grants"
    assert cache.get("k", lambda: "new grants") == "new grants"
    assert cache.get("k", lambda: "never loaded") == "new grants"


def test_grants_are_cached_until_a_write_through_this_store(stores: tuple) -> None:
    ours, other, _ = stores
    user_id = ours.get_user("alice").id
    assert ours.list_grants(user_id, "default", {"experiment"}) == []
    other.grant_user_resource_permission("alice", "experiment", "1", "READ")  # another replica
    assert ours.list_grants(user_id, "default", {"experiment"}) == [], "not cached"
    ours.grant_user_resource_permission("alice", "experiment", "2", "EDIT")
    patterns = {g.resource_pattern for g in ours.list_grants(user_id, "default", {"experiment"})}
    assert patterns == {"1", "2"}
    ours.revoke_user_resource_permission("alice", "experiment", "1")
    assert {g.resource_pattern for g in ours.list_grants(user_id, "default", {"experiment"})} == {"2"}


def test_the_admin_flag_and_a_deletion_apply_at_once_here(stores: tuple) -> None:
    ours, other, _ = stores
    assert ours.get_user("alice").is_admin is False
    other.update_user("alice", is_admin=True)
    assert ours.get_user("alice").is_admin is False, "not cached"
    ours.update_user("alice", is_admin=True)
    assert ours.get_user("alice").is_admin is True
    ours.delete_user("alice")
    with pytest.raises(Exception, match="alice"):
        ours.get_user("alice")


def test_a_failed_write_also_invalidates(stores: tuple) -> None:
    ours, other, lookups = stores
    ours.get_user("alice")
    other.update_user("alice", is_admin=True)
    with pytest.raises(Exception, match="nobody"):
        ours.delete_user("nobody")
    assert ours.get_user("alice").is_admin is True
    assert lookups.users.misses == 2


def test_ttl_zero_caches_nothing(tmp_path: Path) -> None:
    ours, other = _store(tmp_path / "a.db"), _store(tmp_path / "a.db")
    fastpath.AuthLookups(ttl_seconds=0, max_size=100).wrap_auth_store(ours)
    ours.create_user("bob", "bob-password-01234")
    assert ours.get_user("bob").is_admin is False
    other.update_user("bob", is_admin=True)
    assert ours.get_user("bob").is_admin is True


def test_an_unclassified_store_method_stops_the_server(tmp_path: Path) -> None:
    class NewerStore(SqlAlchemyStore):
        def transfer_grants(self, source: str, target: str) -> None:  # neither a read nor a write by name
            raise NotImplementedError

    with pytest.raises(RuntimeError, match="transfer_grants"):
        fastpath.AuthLookups(60, 100).wrap_auth_store(NewerStore())


def test_the_pinned_mlflow_run_requirement_is_the_one_mirrored() -> None:
    """Fails when the MLflow pin changes _run_requirement: re-read it and update the mirror and hash."""
    from mlflow.server import auth

    namespace = types.SimpleNamespace(store=SqlAlchemyStore(), _run_requirement=auth._run_requirement)
    assert fastpath.install(namespace, fastpath.AuthLookups(60, 100)) is True
    assert namespace._run_requirement is not auth._run_requirement

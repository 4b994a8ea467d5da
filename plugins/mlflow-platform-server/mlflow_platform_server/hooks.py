"""Team ownership wired into MLflow basic-auth's own tables (mlflow/server/auth/__init__.py, 3.17.2).

Before a request, ``_before_request`` authenticates, returns early for admins (so admins are
exempt here too), then runs the validator it finds in ``BEFORE_REQUEST_VALIDATORS`` under
``(path, method)``. For the four routes that name an object, the validator becomes
``MLflow's own validator AND the ownership requirement``: MLflow's ``authorize()`` still decides
every grant (create-in-workspace, the create vetoes, UPDATE on the renamed object) and the
ownership rule is one more requirement that must hold; it never grants anything. A refusal is
raised as ``MlflowException(PERMISSION_DENIED)``, which ``_before_request``'s
``@catch_mlflow_exception`` turns into MLflow's JSON error (403), so the client's exception
carries the rule and the allowed names.

After a successful create, ``AFTER_REQUEST_HANDLERS`` runs MLflow's handler (MANAGE for the
creator), then ours grants each member of the owning team their declared permission.
Renames need no grant changes: experiment grants are by id, and MLflow's own rename handler
moves registered-model grants to the new name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Response, request

from .declaration import Declaration
from .ownership import Refusal, Team, check_experiment, check_model

_logger = logging.getLogger(__name__)

# (route suffix after the API prefix, body field holding the new name, kind, checker)
_EXPERIMENT_CREATE = "/mlflow/experiments/create"
_EXPERIMENT_UPDATE = "/mlflow/experiments/update"
_MODEL_CREATE = "/mlflow/registered-models/create"
_MODEL_RENAME = "/mlflow/registered-models/rename"
_PROMPT_TAG = "mlflow.prompt.is_prompt"


def _body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    return body if isinstance(body, dict) else {}


def _refuse(refusal: Refusal, kind: str, name: str, username: str) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import PERMISSION_DENIED

    raise MlflowException(refusal.message(kind, name, username), error_code=PERMISSION_DENIED)


def _is_prompt(tags: object) -> bool:
    return isinstance(tags, list) and any(
        isinstance(t, dict) and t.get("key") == _PROMPT_TAG and str(t.get("value")).lower() == "true" for t in tags
    )


def install(auth: Any, declaration: Declaration) -> None:
    """Compose the ownership requirement into ``auth``'s validator and after-request tables."""

    def username() -> str:
        return auth.authenticate_request().username

    def guarded(original: Callable[[], bool], field: str, kind: str, required: bool) -> Callable[[], bool]:
        checker = check_experiment if kind == "experiment" else check_model

        def validator() -> bool:
            if not original():
                return False
            name = _body().get(field)
            if not required and not name:
                return True  # an update that renames nothing
            name = name if isinstance(name, str) else ""
            user = username()
            refusal = checker(declaration.current(), user, name)
            if refusal is not None:
                label = kind if kind == "experiment" else "registered model"
                if kind == "model" and _is_prompt(_body().get("tags")):
                    label = "prompt"
                _refuse(refusal, label, name, user)
            return True

        return validator

    def grant_team(resource_type: str, resource_id: str, team: Team | None) -> None:
        if team is None:
            return
        creator = username()
        for member, permission in team.members.items():
            if member == creator:
                continue  # MLflow gave the creator MANAGE
            try:
                if auth.store.has_user(member):
                    auth.store.grant_user_permission(member, resource_type, resource_id, permission)
                else:
                    _logger.warning("team %s: member %r has no MLflow user yet; not granted", team.name, member)
            except Exception:  # one bad grant must not fail a create that has already happened
                _logger.exception("team %s: granting %s on %s %s failed", team.name, member, resource_type, resource_id)

    def after_experiment(original: Callable[[Response], Any]) -> Callable[[Response], Any]:
        def handler(resp: Response) -> Any:
            result = original(resp)
            experiment_id = str((resp.get_json(silent=True) or {}).get("experiment_id", ""))
            name = _body().get("name")
            if experiment_id and isinstance(name, str):
                grant_team("experiment", experiment_id, declaration.current().experiment_team(name))
            return result

        return handler

    def after_model(original: Callable[[Response], Any]) -> Callable[[Response], Any]:
        def handler(resp: Response) -> Any:
            result = original(resp)
            model = (resp.get_json(silent=True) or {}).get("registered_model") or {}
            name = model.get("name")
            if isinstance(name, str):
                kind = "prompt" if _is_prompt(model.get("tags")) else "registered_model"
                grant_team(kind, name, declaration.current().model_team(name))
            return result

        return handler

    routes = {
        _EXPERIMENT_CREATE: ("name", "experiment", True, after_experiment),
        _EXPERIMENT_UPDATE: ("new_name", "experiment", False, None),
        _MODEL_CREATE: ("name", "model", True, after_model),
        _MODEL_RENAME: ("new_name", "model", True, None),
    }
    found: set[str] = set()
    for (path, method), original in list(auth.BEFORE_REQUEST_VALIDATORS.items()):
        suffix = next((s for s in routes if path.endswith(s)), None)
        if suffix is None or method != "POST":
            continue
        field, kind, required, after = routes[suffix]
        auth.BEFORE_REQUEST_VALIDATORS[(path, method)] = guarded(original, field, kind, required)
        found.add(suffix)
        if after is not None and (path, method) in auth.AFTER_REQUEST_HANDLERS:
            auth.AFTER_REQUEST_HANDLERS[(path, method)] = after(auth.AFTER_REQUEST_HANDLERS[(path, method)])
    missing = sorted(set(routes) - found)
    if missing:
        # A future MLflow moving a route must not silently drop the rule.
        raise RuntimeError(f"mlflow-platform: MLflow's basic-auth has no validator for {missing}")

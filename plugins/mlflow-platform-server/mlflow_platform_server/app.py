"""The ``mlflow.app`` entry point ``mlflow-platform``: MLflow's basic-auth app plus our hooks."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from . import fastpath, hooks
from .declaration import ENV_VAR, Declaration


def create_app(app: Flask | None = None) -> Any:
    """Install the platform's hooks into MLflow's basic-auth tables, then let basic-auth build the app.

    The hooks go in first so the validator tables are final before any request is served; MLflow's
    ``create_app`` then registers its own ``before_request``/``after_request`` that consult them.
    The fast path (:mod:`.fastpath`) caches the lookups those validators make; a teams-file
    reload (checked before every request, at most every ``CHECK_INTERVAL_S``) clears its
    cached users and grants.
    """
    from mlflow.server import app as mlflow_app
    from mlflow.server import auth

    declaration = Declaration(os.environ.get(ENV_VAR))
    hooks.install(auth, declaration)
    config = auth.auth_config
    lookups = fastpath.AuthLookups(config.auth_cache_ttl_seconds, config.auth_cache_max_size)
    fastpath.install(auth, lookups)
    declaration.on_reload(lookups.invalidate)
    flask_app = app if app is not None else mlflow_app

    @flask_app.before_request
    def check_declaration() -> None:
        # Registered before basic-auth's own hook, so it runs first: at most one stat every
        # CHECK_INTERVAL_S per worker, and a changed teams file clears cached grants promptly
        # even on a worker that serves no create.
        declaration.current()

    return auth.create_app(flask_app)

"""The ``mlflow.app`` entry point ``mlflow-platform``: MLflow's basic-auth app plus our hooks."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from . import hooks
from .declaration import ENV_VAR, Declaration


def create_app(app: Flask | None = None) -> Any:
    """Install the platform's hooks into MLflow's basic-auth tables, then let basic-auth build the app.

    The hooks go in first so the validator tables are final before any request is served; MLflow's
    ``create_app`` then registers its own ``before_request``/``after_request`` that consult them.
    """
    from mlflow.server import app as mlflow_app
    from mlflow.server import auth

    hooks.install(auth, Declaration(os.environ.get(ENV_VAR)))
    return auth.create_app(app if app is not None else mlflow_app)

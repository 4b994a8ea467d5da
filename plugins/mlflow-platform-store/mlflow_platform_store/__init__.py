"""The platform's MLflow tracking store: MLflow's ``SqlAlchemyStore`` with a set-based write path.

Why: per row, MLflow's ``log_batch`` builds ORM objects, reads and row-locks every existing
``latest_metrics`` row of the request's keys and merges them one at a time, over several sessions
(params, metrics, model metrics and tags each commit separately; the nested sessions are also the
"log_batch pool deadlock" of shared/reference). Here each request is one transaction of a few
statements: multi-row inserts for ``metrics``, ``params``, ``tags`` and ``logged_model_metrics``,
and **one** ``INSERT … ON CONFLICT DO UPDATE … WHERE`` for ``latest_metrics`` that encodes MLflow's
ordering rule (step, then timestamp, then value, on the stored NaN/±inf substitutes).

How it is selected: MLflow's ``mlflow.tracking_store`` entry point under the project's own URI
scheme, ``mlflow-platform://user@host:port/db?…`` (the rest is the ``postgresql+psycopg2`` URL).
The scheme deliberately does not start with ``postgresql``: ``mlflow/utils/uri.py`` would treat it
as a database URI and MLflow's built-in store would take it. Only the server's tracking store gets
this URI; the model registry (``--registry-store-uri``), ``mlflow db upgrade`` and ``mlflow gc``
keep the standard one (``rendering/tracking_store.py``).

What a client can observe differently (one transaction instead of MLflow's several):

* a request that fails part-way leaves nothing behind; MLflow may have committed its params (and,
  for ``log_batch``, its metrics) before a later part failed — e.g. a metric naming a logged model
  that does not exist, or one already logged for that model with another value (both 400 in both);
* a param inserted concurrently with another value is MLflow's 400 "Changing param values is not
  allowed" here; MLflow answers that race with a 500 (IntegrityError);
* overwriting a tag that another request deletes at the same moment sets it (the delete is
  ordered first); MLflow returns an error for its stale UPDATE. No write is dropped in either.

MLflow's job backend (``mlflow/server/jobs/utils.py``) requires a database URI and switches off for
this one; the platform renders ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` anyway
(``rendering/mlflow_server.py``), and the job routes stay behind basic-auth.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import SetBasedSqlAlchemyStore

__all__ = ["DATABASE_SCHEME", "SCHEME", "build_store", "database_uri"]

SCHEME = "mlflow-platform"
"""Entry-point name in ``mlflow.tracking_store`` (pyproject.toml) and the URI scheme."""
DATABASE_SCHEME = "postgresql+psycopg2"

_SERVER_ARTIFACT_ROOT_ENV_VAR = "_MLFLOW_SERVER_ARTIFACT_ROOT"
"""What MLflow's own builder falls back to inside the server (``tracking/_tracking_service/utils.py``)."""


# MLflow is imported inside the functions: MLflow imports this module while ``mlflow.tracking``
# is still importing (entry-point registration), and importing this package first must not make
# MLflow find it half-initialized.


def database_uri(store_uri: str) -> str:
    """``mlflow-platform://…`` -> ``postgresql+psycopg2://…``."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    prefix = f"{SCHEME}://"
    if not store_uri.startswith(prefix):
        raise MlflowException(
            f"the {SCHEME} tracking store needs a {prefix}user@host:port/db URI, got {store_uri.split('://')[0]}://…",
            INVALID_PARAMETER_VALUE,
        )
    return f"{DATABASE_SCHEME}://{store_uri[len(prefix) :]}"


def build_store(store_uri: str, artifact_uri: str | None = None) -> SetBasedSqlAlchemyStore:
    """The ``mlflow.tracking_store`` builder MLflow calls with ``store_uri=`` and ``artifact_uri=``."""
    from mlflow.environment_variables import MLFLOW_ENABLE_WORKSPACES
    from mlflow.exceptions import MlflowException

    if MLFLOW_ENABLE_WORKSPACES.get():
        raise MlflowException(f"the {SCHEME} tracking store does not support workspaces (MLFLOW_ENABLE_WORKSPACES)")
    if artifact_uri is None:
        artifact_uri = os.environ.get(_SERVER_ARTIFACT_ROOT_ENV_VAR, "./mlruns")
    from .store import SetBasedSqlAlchemyStore

    return SetBasedSqlAlchemyStore(database_uri(store_uri), artifact_uri)

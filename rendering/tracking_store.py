"""Which MLflow tracking store the server runs, the URI that selects it, and where it comes from.

``set-based`` (the default) is the project's store plugin in ``plugins/mlflow-platform-store``:
MLflow's ``SqlAlchemyStore`` with ``log_batch``/``log_metric``/``log_param``/``set_tag`` written as
a few set-based statements per request (see the plugin's docstring). MLflow selects it through its
``mlflow.tracking_store`` entry point by the URI scheme ``mlflow-platform://``, which must not
start with ``postgresql``/``mysql``/``sqlite``/``mssql``: ``mlflow/utils/uri.py`` treats those as
database URIs and MLflow's own store would take them. ``stock`` is MLflow's own store (the
benchmark's comparison).

Only the server's tracking store gets this URI. The model registry gets the database URI with
``--registry-store-uri`` (otherwise it defaults to the backend URI, and no registry store exists
for the scheme), and ``mlflow db upgrade`` and ``mlflow gc`` keep the database URI
(``rendering.database_bootstrap``, ``rendering.gc``).

The plugin replaces the earlier SQLAlchemy engine plugin (batched ``executemany``): that one only
sped up the per-row ``latest_metrics`` UPDATEs this store no longer issues, and it turned off
SQLAlchemy's row-count check of multi-row UPDATEs, so a ``log_batch`` overwriting a tag that a
concurrent request deleted returned 200 and dropped the write (tests/store/test_races.py).

The plugin must be installed wherever the server runs — the image and the local target's virtualenv
(``scripts/setup.sh``) — or MLflow refuses the URI. The Pulumi program only renders the URI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

TrackingStore = Literal["set-based", "stock"]
TRACKING_STORES: tuple[TrackingStore, ...] = ("set-based", "stock")

STORE_SCHEME = "mlflow-platform"
"""Entry-point name in ``mlflow.tracking_store`` (plugins/…/pyproject.toml) and the URI scheme."""
DATABASE_SCHEME = "postgresql+psycopg2"

STORE_DISTRIBUTION = "mlflow-platform-store"
STORE_SOURCE = Path(__file__).resolve().parent.parent / "plugins" / STORE_DISTRIBUTION
"""Where ``pip install`` takes it from (setup.sh, the image, other virtualenvs)."""


def tracking_store_uri(database_uri: str, store: TrackingStore) -> str:
    """The server's ``--backend-store-uri`` for ``store`` on the ``postgresql+psycopg2`` URI."""
    prefix = f"{DATABASE_SCHEME}://"
    if not database_uri.startswith(prefix):
        raise ValueError(f"the tracking database URI must start with {prefix}")
    if store == "stock":
        return database_uri
    return f"{STORE_SCHEME}://{database_uri[len(prefix) :]}"

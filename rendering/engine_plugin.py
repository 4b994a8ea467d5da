"""The SQLAlchemy engine plugin the tracking store's URI names, and where it comes from.

``log_batch`` spends most of its server time in psycopg2's one-round-trip-per-row
``executemany`` of the ``latest_metrics`` UPDATEs (shared/reference, issue 9 profile). The plugin
in ``plugins/mlflow-platform-sqlalchemy`` switches those engines to psycopg2's batched mode; the
benchmark (``make bench``) measures it against the unbatched engine in the same run.

The plugin must be installed wherever the URI is opened — the server image and the local
target's virtualenv (``scripts/setup.sh``) — or SQLAlchemy refuses the URI
(``Can't load plugin: sqlalchemy.plugins:…``). The Pulumi program only renders the name, so it
does not need the package.
"""

from __future__ import annotations

from pathlib import Path

BATCHED_EXECUTEMANY_PLUGIN = "mlflow_platform_batched_executemany"
"""Entry-point name in the ``sqlalchemy.plugins`` group (plugins/…/pyproject.toml)."""

PLUGIN_DISTRIBUTION = "mlflow-platform-sqlalchemy"
PLUGIN_SOURCE = Path(__file__).resolve().parent.parent / "plugins" / PLUGIN_DISTRIBUTION
"""Where ``pip install`` takes it from (setup.sh, the image, other virtualenvs)."""

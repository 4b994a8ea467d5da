"""Batched ``executemany`` for MLflow's SQLAlchemy stores on psycopg2.

Why: profiling ``log_batch`` of 1,000 distinct metric keys through PgBouncer put 54 % of the
server's time in psycopg2's ``cursor.executemany`` of the ``latest_metrics`` UPDATEs, which sends
one statement per round trip. SQLAlchemy's psycopg2 dialect can batch them
(``executemany_mode="values_plus_batch"``: ``psycopg2.extras.execute_batch``), but MLflow builds
its engines itself and exposes no setting for dialect options.

How: a SQLAlchemy ``CreateEnginePlugin``, selected by the database URI itself
(``?plugin=mlflow_platform_batched_executemany``), so every engine opened on that URI — the
tracking and registry stores, ``mlflow db upgrade``, ``mlflow gc`` — gets the same options and
nothing else in the process changes. An MLflow ``mlflow.tracking_store`` plugin was the other way
in; it would have to replace MLflow's built-in ``postgresql`` store for every URI in the process
once installed, and would not reach the registry store or the migrations.

It changes how statements are sent, not which: the SQL, transactions and results are MLflow's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import CreateEnginePlugin

__all__ = ["EXECUTEMANY_PAGE_SIZE", "PLUGIN_NAME", "BatchedExecutemany"]

PLUGIN_NAME = "mlflow_platform_batched_executemany"
EXECUTEMANY_PAGE_SIZE = 1000
"""Statements per round trip: MLflow's ``log_batch`` carries at most 1,000 metrics, so one
request's ``latest_metrics`` updates go in one round trip."""


class BatchedExecutemany(CreateEnginePlugin):
    """Sets psycopg2's ``executemany_mode`` to ``values_plus_batch`` on the engines it is named for."""

    def update_url(self, url: Any) -> Any:
        return url  # SQLAlchemy has already removed ``plugin=``; this plugin takes no URL arguments

    def handle_dialect_kwargs(self, dialect_cls: Any, dialect_args: dict[str, Any]) -> None:
        driver = getattr(dialect_cls, "driver", "")
        if driver != "psycopg2":
            raise ValueError(
                f"the {PLUGIN_NAME} SQLAlchemy plugin needs the psycopg2 driver "
                f"(postgresql+psycopg2://), got {dialect_cls.name}+{driver}"
            )
        dialect_args.setdefault("executemany_mode", "values_plus_batch")
        dialect_args.setdefault("executemany_batch_page_size", EXECUTEMANY_PAGE_SIZE)

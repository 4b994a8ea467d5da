"""Options of a local platform: everything a test or ``make up`` may choose."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rendering.mlflow_server import ArtifactAccessMode
from stackconfig.schema import ArtifactsConfig, ServerConfig

AuthMode = Literal["ours", "mlflow-defaults", "off"]
"""``ours``: basic-auth with ``rendering.auth`` (auth DB on PostgreSQL, NO_PERMISSIONS, cache).
``mlflow-defaults``: basic-auth with MLflow's shipped ini (SQLite auth DB, READ, no cache;
admin password and secret key still set, MLflow refuses to start without them).
``off``: no authentication at all (comparisons only)."""

PoolerMode = Literal["pgbouncer", "direct"]

PORT_NAMES = ("postgres", "pgbouncer", "s3", "mlflow", "https", "http")


@dataclass(frozen=True)
class PlatformOptions:
    state_dir: Path
    access_mode: ArtifactAccessMode = ArtifactsConfig().access_mode
    auth: AuthMode = "ours"
    pooler: PoolerMode = "pgbouncer"
    batched_executemany: bool = True
    """The tracking store's engine plugin (rendering.engine_plugin); off only to measure it."""
    workers: int = 2
    """uvicorn workers; 2 on a 2-core machine."""
    in_flight_per_worker: int = ServerConfig().in_flight_per_worker
    """The admission limit per worker (the stacks' ``server.inFlightPerWorker``); pools follow it."""
    max_connections: int | None = None
    """PostgreSQL max_connections; None derives it from the memory budget (like RDS), and in
    ``direct`` pooler mode raises it to what the server's pools can open."""
    postgres_memory_mb: int = 1024
    """The memory budget the PostgreSQL tuning assumes (RDS uses the instance class memory)."""
    mlflow_python: Path | None = None
    """Interpreter whose MLflow runs the server and the migrations; None: this interpreter.
    Another MLflow version needs its own virtualenv with ``mlflow[auth]==X psycopg2-binary boto3``."""
    mlflow_version: str | None = None
    """If set, the MLflow version ``mlflow_python`` must have (a guard against the wrong venv)."""
    pg_bin_dir: Path | None = None
    service_user: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    """Fixed ports by name (see PORT_NAMES); others are chosen free on 127.0.0.1."""
    start_timeout_s: float = 300.0

    def fingerprint(self) -> dict[str, object]:
        """What must match for ``start()`` on a running platform to be a no-op."""
        return {
            "access_mode": self.access_mode,
            "auth": self.auth,
            "pooler": self.pooler,
            "batched_executemany": self.batched_executemany,
            "workers": self.workers,
            "in_flight_per_worker": self.in_flight_per_worker,
            "max_connections": self.max_connections,
            "postgres_memory_mb": self.postgres_memory_mb,
            "mlflow_python": str(self.mlflow_python) if self.mlflow_python else None,
            "pg_bin_dir": str(self.pg_bin_dir) if self.pg_bin_dir else None,
            "service_user": self.service_user,
        }

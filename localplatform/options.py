"""Options of a local platform: everything a test or ``make up`` may choose."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from rendering.mlflow_server import ArtifactAccessMode
from rendering.ownership import TeamOwnership
from rendering.postgres import MAX_MAX_CONNECTIONS, MIN_MAX_CONNECTIONS, MIN_MEMORY_BYTES
from rendering.tracking_store import TrackingStore
from rendering.units import MIB
from stackconfig.schema import ArtifactsConfig

AuthMode = Literal["ours", "mlflow-defaults", "off"]
"""``ours``: basic-auth with ``rendering.auth`` (auth DB on PostgreSQL, NO_PERMISSIONS, cache).
``mlflow-defaults``: basic-auth with MLflow's shipped ini (SQLite auth DB, READ, no cache;
admin password and secret key still set, MLflow refuses to start without them).
``off``: no authentication at all (comparisons only)."""

PoolerMode = Literal["pgbouncer", "direct"]

ServerVariant = Literal["platform", "stock"]
"""``platform``: the shipped server (the platform's app, the store ``tracking_store`` names).
``stock``: MLflow as shipped, for side-by-side comparisons (``make bench``): ``--app-name
basic-auth`` and MLflow's own store, with everything else (TLS, PgBouncer, pools, workers, the
auth-cache TTL, ``auth``) the same."""
SERVER_VARIANTS: tuple[ServerVariant, ...] = get_args(ServerVariant)

PORT_NAMES = ("postgres", "pgbouncer", "s3", "mlflow", "https", "http", "pgbouncer-metrics")


@dataclass(frozen=True)
class PlatformOptions:
    state_dir: Path
    access_mode: ArtifactAccessMode = ArtifactsConfig().access_mode
    auth: AuthMode = "ours"
    pooler: PoolerMode = "pgbouncer"
    tracking_store: TrackingStore = "set-based"
    """The server's tracking store (rendering.tracking_store); ``stock`` (MLflow's own) only to compare."""
    server: ServerVariant = "platform"
    """See :data:`ServerVariant`; ``stock`` overrides ``tracking_store``."""
    workers: int = 2
    """uvicorn workers; 2 on a 2-core machine."""
    in_flight_per_worker: int = 8
    """The admission limit per worker, as both stack files set ``server.inFlightPerWorker`` (see
    ``ServerConfig.in_flight_per_worker`` for the measurement); pools follow it."""
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
    teams: tuple[TeamOwnership, ...] = ()
    """The team-ownership declaration the server app enforces (stack config ``teams``); empty:
    no teams, every non-admin create is refused. ``LocalPlatform.set_teams`` changes it on a
    running platform without a restart."""

    @property
    def store(self) -> TrackingStore:
        """The tracking store the server runs: MLflow's own for the ``stock`` server."""
        return "stock" if self.server == "stock" else self.tracking_store

    def fingerprint(self) -> dict[str, object]:
        """What must match for ``start()`` on a running platform to be a no-op."""
        return {
            "access_mode": self.access_mode,
            "auth": self.auth,
            "pooler": self.pooler,
            "tracking_store": self.tracking_store,
            "server": self.server,
            "workers": self.workers,
            "in_flight_per_worker": self.in_flight_per_worker,
            "max_connections": self.max_connections,
            "postgres_memory_mb": self.postgres_memory_mb,
            "mlflow_python": str(self.mlflow_python) if self.mlflow_python else None,
            "pg_bin_dir": str(self.pg_bin_dir) if self.pg_bin_dir else None,
            "service_user": self.service_user,
        }


def option_problems(options: PlatformOptions) -> list[str]:
    """What is wrong with the options, one phrase each naming the option and what is expected;
    checked before anything is created, so a bad option leaves no half-made state dir."""
    problems = []
    if options.server not in SERVER_VARIANTS:
        problems.append(f"server must be one of {', '.join(SERVER_VARIANTS)}, got {options.server!r}")
    if options.workers < 1:
        problems.append(f"--workers must be >= 1, got {options.workers}")
    if options.in_flight_per_worker < 1:
        problems.append(f"in_flight_per_worker must be >= 1, got {options.in_flight_per_worker}")
    minimum_mb = MIN_MEMORY_BYTES // MIB
    if options.postgres_memory_mb < minimum_mb:
        problems.append(
            f"--postgres-memory-mb must be >= {minimum_mb} (the PostgreSQL tuning's minimum), "
            f"got {options.postgres_memory_mb}"
        )
    if (
        options.max_connections is not None
        and not MIN_MAX_CONNECTIONS <= options.max_connections <= MAX_MAX_CONNECTIONS
    ):
        problems.append(
            f"--max-connections must be from {MIN_MAX_CONNECTIONS} to {MAX_MAX_CONNECTIONS}, "
            f"got {options.max_connections}"
        )
    for name, port in sorted(options.ports.items()):
        if name not in PORT_NAMES:
            problems.append(f"--port {name}={port}: unknown port name; known: {', '.join(PORT_NAMES)}")
        elif not 1024 <= port <= 65535:
            problems.append(f"--port {name}={port}: expected an unprivileged TCP port from 1024 to 65535")
    if not options.start_timeout_s > 0:
        problems.append(f"--timeout must be > 0 seconds, got {options.start_timeout_s:g}")
    return problems

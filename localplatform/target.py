"""The local target's side of :func:`rendering.server_side.render_server_side`: its
:class:`TargetParameters` (loopback addresses, state-dir paths, the local CA, the Debian PgBouncer
version), the capacity the pool plan needs on one replica, and the one call that renders the
server side. The EKS pod makes the same call with its own parameters (``components.tracking_server``);
the parity test (tests/unit/test_parity.py) compares both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rendering.database_bootstrap import PostgresEndpoint
from rendering.mlflow_server import S3Client
from rendering.pools import CapacityInputs, plan_pools
from rendering.postgres import PostgresTuning, default_max_connections, max_connections_for
from rendering.server_side import PGBOUNCER_HOST, PlatformSecrets, ServerSide, TargetParameters, render_server_side
from rendering.units import MIB

from .context import LOOPBACK, PUBLIC_HOST, REGION, Context
from .errors import PlatformError
from .layout import StateLayout
from .options import PlatformOptions


def required_max_connections(options: PlatformOptions) -> int:
    """max_connections the pool plan needs for one local replica (or, without PgBouncer, what
    every SQLAlchemy engine of the server may open, plus the plan's reserved connections)."""
    plan = plan_pools(
        CapacityInputs(
            max_replicas=1,
            workers_per_replica=options.workers,
            in_flight_per_worker=options.in_flight_per_worker,
            database_max_connections=1_000_000,
            tracking_store=options.store,
        )
    )
    if options.pooler == "pgbouncer":
        return plan.database_connections_at_max_scale
    per_engine = plan.sqlalchemy_pool_size + plan.sqlalchemy_max_overflow
    engines = 3 * (options.workers + 1)  # tracking, registry, auth; each worker + the `mlflow server` parent
    return engines * per_engine + (plan.database_connections_at_max_scale - plan.database_connections_per_replica)


def postgres_tuning(options: PlatformOptions) -> PostgresTuning:
    """The RDS parameter group's tuning function, for a local memory budget.

    Without an explicit ``max_connections`` the memory-derived value (as on RDS) is raised to
    what the pool plan needs, so the default start never fails the capacity check; an explicit
    value too small for the plan fails with the plan's message instead.
    """
    memory = options.postgres_memory_mb * MIB
    max_connections = options.max_connections
    if max_connections is None:
        max_connections = max(default_max_connections(memory), required_max_connections(options))
    return PostgresTuning(memory_bytes=memory, max_connections=max_connections)


def pgbouncer_auth_file(layout: StateLayout) -> Path:
    return layout.pgbouncer_dir / "userlist.txt"


def prometheus_dir(layout: StateLayout) -> Path:
    """The server's Prometheus multiprocess directory (an emptyDir in the pod): emptied at
    each start, as a new pod's would be, so no samples of dead workers are served."""
    return layout.mlflow_dir / "prometheus"


def target_parameters(ctx: Context, tuning: PostgresTuning) -> TargetParameters:
    """Everything that differs between this machine and an EKS pod — and nothing else."""
    python = str(ctx.mlflow_python)
    return TargetParameters(
        database_host=LOOPBACK,
        database_port=ctx.ports["postgres"],
        database_ca_file=str(ctx.layout.svc_ca_cert),
        pgbouncer_port=ctx.ports.get("pgbouncer", 0),
        pgbouncer_version=ctx.binaries.pgbouncer_version,
        pgbouncer_auth_file=str(pgbouncer_auth_file(ctx.layout)),
        server_bind_host=LOOPBACK,
        server_port=ctx.ports["mlflow"],
        public_host_names=(PUBLIC_HOST, LOOPBACK),
        public_ports=(ctx.ports["https"], ctx.ports["mlflow"]),
        auth_config_path=str(ctx.layout.auth_ini),
        server_pgpassfile=str(ctx.layout.server_pgpass),
        migrator_pgpassfile=str(ctx.layout.migrator_pgpass),
        artifact_root=ctx.artifact_root,
        s3=S3Client(endpoint_url=ctx.s3_endpoint, ca_bundle=str(ctx.layout.ca_cert), region=REGION),
        mlflow_command=(python, "-m", "mlflow"),
        python_command=(python,),
        workers=ctx.options.workers,
        max_replicas=1,
        database_max_connections=max_connections_for(tuning),
        prometheus_dir=str(prometheus_dir(ctx.layout)),
        pooled=ctx.options.pooler == "pgbouncer",
        pgbouncer_listen_host=LOOPBACK,  # nothing probes it from outside here: loopback only
        teams_file=str(ctx.layout.teams_file),
    )


def render_local_server_side(ctx: Context, tuning: PostgresTuning) -> ServerSide:
    s = ctx.secrets
    secrets = PlatformSecrets(
        app_role_password=s.db_app_password,
        app_role_salt=s.app_salt_bytes,
        migrator_password=s.db_superuser_password,
        flask_secret_key=s.flask_secret_key,
        admin_password=s.admin_password if ctx.options.auth != "off" else None,
        aws_access_key_id=s.aws_access_key_id,
        aws_secret_access_key=s.aws_secret_access_key,
        stats_password=s.pgbouncer_stats_password if ctx.options.pooler == "pgbouncer" else None,
        stats_salt=s.stats_salt_bytes if ctx.options.pooler == "pgbouncer" else None,
    )
    try:
        side = render_server_side(target_parameters(ctx, tuning), ctx.platform_settings, secrets)
    except ValueError as error:  # PoolSizingError and the renderers' validation errors
        raise PlatformError(str(error)) from None
    if ctx.options.auth == "mlflow-defaults":
        env = {k: v for k, v in side.launch.env.items() if k != "MLFLOW_AUTH_CONFIG_PATH"}
        side = replace(side, launch=replace(side.launch, env=env))
    return side


def direct_endpoint(ctx: Context) -> PostgresEndpoint:
    return PostgresEndpoint(LOOPBACK, ctx.ports["postgres"], "verify-full", str(ctx.layout.ca_cert))


def server_endpoint(ctx: Context) -> PostgresEndpoint:
    if ctx.options.pooler == "pgbouncer":
        return PostgresEndpoint(PGBOUNCER_HOST, ctx.ports["pgbouncer"], "disable")
    return direct_endpoint(ctx)

"""The whole server side of the platform — pgbouncer.ini and its auth file, the auth ini, the
``mlflow server`` command/env, password files and the bootstrap/migration plan — composed in
one function from the parameters that differ between targets (:class:`TargetParameters`) and
those that must not (:class:`PlatformSettings`).

The EKS pod spec (``components.tracking_server``) and the local target (``localplatform``) both
call :func:`render_server_side`; the parity test renders both and checks that they differ only
where a :class:`TargetParameters` field differs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .auth import AuthSettings, render_auth_ini
from .database_bootstrap import (
    BootstrapPlan,
    BootstrapSettings,
    PgPassEntry,
    PostgresEndpoint,
    render_bootstrap_plan,
    render_pgpass,
    sqlalchemy_url,
)
from .mlflow_server import (
    PLATFORM_APP,
    ArtifactAccessMode,
    ArtifactStorage,
    MlflowServerLaunch,
    MlflowServerSettings,
    S3Client,
    ServerSecrets,
    SqlAlchemyPool,
    render_mlflow_server,
)
from .names import ADMIN_USERNAME, APP_ROLE, AUTH_DATABASE, MIGRATOR_ROLE, STATS_USER, TRACKING_DATABASE
from .ownership import TeamOwnership, render_ownership_document
from .pgbouncer import (
    AuthUser,
    PgBouncerDatabase,
    PgBouncerSettings,
    PgBouncerVersion,
    PoolSizing,
    ServerTls,
    render_auth_file,
    render_pgbouncer_ini,
)
from .pools import CapacityInputs, PoolPlan, plan_pools
from .scram import scram_sha256_verifier
from .tracking_store import TrackingStore

PGBOUNCER_HOST = "127.0.0.1"
"""Where the server, the auth store and the exporter *connect to* PgBouncer: loopback, in the
pod's network namespace or on the machine. Where PgBouncer *listens* is a target parameter
(:attr:`TargetParameters.pgbouncer_listen_host`): it must include loopback for these clients."""


@dataclass(frozen=True)
class TargetParameters:
    """Everything that may differ between the local target and an EKS pod — and nothing else."""

    database_host: str
    database_port: int
    database_ca_file: str
    """CA that signs the database's certificate: the RDS bundle, or the local CA."""
    pgbouncer_port: int
    pgbouncer_version: PgBouncerVersion
    pgbouncer_auth_file: str
    server_bind_host: str
    server_port: int
    public_host_names: tuple[str, ...]
    """Names clients put in the Host header (ingress host, service DNS names, localhost)."""
    public_ports: tuple[int, ...]
    auth_config_path: str
    server_pgpassfile: str
    migrator_pgpassfile: str
    artifact_root: str
    s3: S3Client
    mlflow_command: tuple[str, ...]
    python_command: tuple[str, ...]
    workers: int
    max_replicas: int
    database_max_connections: int
    prometheus_dir: str | None = None
    """Multiprocess directory for ``--expose-prometheus``; None: no /metrics."""
    pooled: bool = True
    """False only for the local comparison mode: the server connects to PostgreSQL itself
    (verify-full) instead of through PgBouncer. The cloud is always pooled."""
    pgbouncer_listen_host: str = PGBOUNCER_HOST
    """PgBouncer's ``listen_addr``. Loopback on the machine (the default: nothing else may
    reach it). In a pod it must include the pod IP: the kubelet sends ``tcpSocket`` and
    ``httpGet`` probes to the pod IP unless the probe sets ``host`` (Kubernetes API,
    ``TCPSocketAction.host``: "Host name to connect to, defaults to the pod IP"; the same
    docstring in pulumi_kubernetes' ``TCPSocketActionArgs``), so a loopback-only sidecar fails
    its startupProbe and no later container ever starts (issue 16). The pod binds all its
    interfaces; its NetworkPolicy admits no peer to PgBouncer's port."""
    teams_file: str | None = None
    """Where the server reads the team-ownership document (a ConfigMap mount, a state-dir file);
    None: no document, every non-admin create is refused."""


@dataclass(frozen=True)
class PlatformSettings:
    """Choices that are the same on every target."""

    access_mode: ArtifactAccessMode
    in_flight_per_worker: int
    auth_cache_ttl_seconds: int
    basic_auth: bool = True
    tracking_store: TrackingStore = "set-based"
    """The server's tracking store (see :mod:`rendering.tracking_store`); ``stock`` only for the
    benchmark's comparison with MLflow's own store."""
    tracking_database: str = TRACKING_DATABASE
    auth_database: str = AUTH_DATABASE
    migrator_role: str = MIGRATOR_ROLE
    app_role: str = APP_ROLE
    admin_username: str = ADMIN_USERNAME
    stats_user: str = STATS_USER
    """The names default to :mod:`rendering.names` (read those, not a dummy instance); the cloud
    passes its own tracking database and migrator (the stack's database name and master user)."""
    server_app: str = PLATFORM_APP
    """``--app-name``: the platform's app; MLflow's ``basic-auth`` only for comparisons."""
    teams: tuple[TeamOwnership, ...] = ()
    """The ownership part of the teams declaration (stack config ``teams``)."""


@dataclass(frozen=True)
class PlatformSecrets:
    app_role_password: str
    app_role_salt: bytes
    migrator_password: str
    flask_secret_key: str
    admin_password: str | None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    stats_password: str | None = None
    """The PgBouncer stats user's password; None: no stats user, no pool metrics."""
    stats_salt: bytes | None = None


@dataclass(frozen=True)
class ServerSide:
    pools: PoolPlan
    pgbouncer_ini: str
    pgbouncer_auth_file: str
    """Secret: the application role's SCRAM verifier."""
    auth_ini: str
    """Secret material (names the auth DB and admin)."""
    launch: MlflowServerLaunch
    server_pgpass: str
    """Secret: the application role's password, for libpq behind SQLAlchemy."""
    migrator_pgpass: str
    """Secret: the migrator's password, for the bootstrap/migration step only."""
    bootstrap: BootstrapPlan
    bootstrap_document: str
    """The plan as JSON for ``run_bootstrap.py`` (secret: it carries the SCRAM verifier)."""
    pgbouncer_stats_dsn: str | None = None
    """Secret: the pool-metrics exporter's connection to PgBouncer's admin console (``SHOW``
    only: a ``stats_users`` login), over loopback."""
    teams_document: str = ""
    """The team-ownership JSON for ``TargetParameters.teams_file`` (not secret: a ConfigMap)."""


def bootstrap_document(plan: BootstrapPlan, endpoint: PostgresEndpoint, migrator_role: str) -> str:
    """JSON for ``images/tracking-server/run_bootstrap.py``: the plan plus the migrator's DSN
    (without password and database; the runner appends ``dbname=`` per step)."""
    dsn = f"host={endpoint.host} port={endpoint.port} user={migrator_role} sslmode={endpoint.sslmode}"
    if endpoint.sslrootcert:
        dsn += f" sslrootcert={endpoint.sslrootcert}"
    return json.dumps({**asdict(plan), "migrator_dsn": dsn}, indent=2, sort_keys=True)


def render_server_side(target: TargetParameters, settings: PlatformSettings, secrets: PlatformSecrets) -> ServerSide:
    pools = plan_pools(
        CapacityInputs(
            max_replicas=target.max_replicas,
            workers_per_replica=target.workers,
            in_flight_per_worker=settings.in_flight_per_worker,
            database_max_connections=target.database_max_connections,
            tracking_store=settings.tracking_store,
        )
    )
    verifier = scram_sha256_verifier(secrets.app_role_password, secrets.app_role_salt)
    auth_users = [AuthUser(settings.app_role, verifier)]
    stats_dsn = None
    if secrets.stats_password is not None:
        if secrets.stats_salt is None:
            raise ValueError("the PgBouncer stats user needs a SCRAM salt with its password")
        auth_users.append(
            AuthUser(settings.stats_user, scram_sha256_verifier(secrets.stats_password, secrets.stats_salt))
        )
        stats_dsn = (
            f"postgresql://{settings.stats_user}:{secrets.stats_password}@{PGBOUNCER_HOST}:{target.pgbouncer_port}"
            "/pgbouncer?sslmode=disable"
        )
    databases = tuple(
        PgBouncerDatabase(name=name, host=target.database_host, port=target.database_port, dbname=name)
        for name in (settings.tracking_database, settings.auth_database)
    )
    pgbouncer = PgBouncerSettings(
        listen_addr=target.pgbouncer_listen_host,
        listen_port=target.pgbouncer_port,
        auth_file=target.pgbouncer_auth_file,
        databases=databases,
        server_tls=ServerTls(ca_file=target.database_ca_file),
        pools=PoolSizing(
            default_pool_size=pools.pgbouncer_pool_size,
            reserve_pool_size=pools.pgbouncer_reserve_pool_size,
            max_client_conn=pools.pgbouncer_max_client_conn,
        ),
        version=target.pgbouncer_version,
        stats_users=(settings.stats_user,) if stats_dsn else (),
        ignore_startup_parameters=("extra_float_digits",) if stats_dsn else (),
    )
    direct = PostgresEndpoint(target.database_host, target.database_port, "verify-full", target.database_ca_file)
    # Behind PgBouncer the hop is loopback; PgBouncer itself verifies the database's TLS.
    pooled = PostgresEndpoint(PGBOUNCER_HOST, target.pgbouncer_port, sslmode="disable") if target.pooled else direct
    auth_ini = render_auth_ini(
        AuthSettings(
            database_uri=sqlalchemy_url(pooled, settings.auth_database, settings.app_role, "mlflow-auth"),
            admin_username=settings.admin_username,
            auth_cache_ttl_seconds=settings.auth_cache_ttl_seconds,
        )
    )
    launch = render_mlflow_server(
        MlflowServerSettings(
            backend_store_uri=sqlalchemy_url(pooled, settings.tracking_database, settings.app_role, "mlflow-server"),
            tracking_store=settings.tracking_store,
            artifacts=ArtifactStorage(settings.access_mode, target.artifact_root),
            host=target.server_bind_host,
            port=target.server_port,
            allowed_host_names=target.public_host_names,
            allowed_ports=target.public_ports,
            workers=target.workers,
            basic_auth=settings.basic_auth,
            auth_config_path=target.auth_config_path,
            pool=SqlAlchemyPool(pool_size=pools.sqlalchemy_pool_size, max_overflow=pools.sqlalchemy_max_overflow),
            pgpassfile=target.server_pgpassfile,
            s3=target.s3,
            command=target.mlflow_command,
            prometheus_dir=target.prometheus_dir,
            app_name=settings.server_app,
            teams_file=target.teams_file,
        ),
        ServerSecrets(
            flask_secret_key=secrets.flask_secret_key,
            admin_password=secrets.admin_password,
            aws_access_key_id=secrets.aws_access_key_id,
            aws_secret_access_key=secrets.aws_secret_access_key,
        ),
    )
    server_pgpass = render_pgpass(
        [
            PgPassEntry(pooled.host, pooled.port, database, settings.app_role, secrets.app_role_password)
            for database in (settings.tracking_database, settings.auth_database)
        ]
    )
    migrator_pgpass = render_pgpass(
        [
            PgPassEntry(
                target.database_host, target.database_port, "*", settings.migrator_role, secrets.migrator_password
            )
        ]
    )
    bootstrap = render_bootstrap_plan(
        BootstrapSettings(
            migrator_role=settings.migrator_role,
            app_role=settings.app_role,
            app_role_scram_verifier=verifier,
            tracking_database=settings.tracking_database,
            auth_database=settings.auth_database,
        ),
        direct,
        mlflow_command=target.mlflow_command,
        python_command=target.python_command,
        pgpassfile=target.migrator_pgpassfile,
    )
    return ServerSide(
        pools=pools,
        pgbouncer_ini=render_pgbouncer_ini(pgbouncer),
        pgbouncer_auth_file=render_auth_file(auth_users),
        auth_ini=auth_ini,
        launch=launch,
        server_pgpass=server_pgpass,
        migrator_pgpass=migrator_pgpass,
        bootstrap=bootstrap,
        bootstrap_document=bootstrap_document(bootstrap, direct, settings.migrator_role),
        pgbouncer_stats_dsn=stats_dsn,
        teams_document=render_ownership_document(settings.teams),
    )

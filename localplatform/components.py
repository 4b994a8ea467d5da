"""Each component of the local platform: its files and its supervisor step.

Every server-side file comes from :func:`rendering.server_side.render_server_side` — the same
composition the EKS pod uses — called with the local :class:`TargetParameters` (loopback
addresses, state-dir paths, the local CA, the Debian PgBouncer version). The TLS proxy comes
from :func:`rendering.proxy.render_proxy_conf`, PostgreSQL's parameters from
:func:`rendering.postgres.render_postgres_parameters`. Nothing here re-decides a setting the
renderers own; the local choices are passed *into* them.

Deliberate local deviations, each only in a non-default comparison mode:

* ``pooler="direct"``: the server and auth store connect to PostgreSQL itself (verify-full),
  not through PgBouncer (``TargetParameters.pooled``).
* ``auth="mlflow-defaults"``: no ``MLFLOW_AUTH_CONFIG_PATH`` (MLflow's shipped ini);
  ``auth="off"``: no ``--app-name basic-auth``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rendering.database_bootstrap import PostgresEndpoint, libpq_dsn
from rendering.ingress import IngressSettings
from rendering.mlflow_server import MLFLOW_BASIC_AUTH_APP, PLATFORM_APP, S3Client
from rendering.pools import CapacityInputs, plan_pools
from rendering.postgres import (
    PostgresTuning,
    default_max_connections,
    local_postgres_settings,
    max_connections_for,
    render_postgres_parameters,
)
from rendering.proxy import ProxySite, ProxyTls, render_proxy_conf
from rendering.server_side import PGBOUNCER_HOST, PlatformSettings, ServerSide, TargetParameters, render_server_side
from rendering.server_side import PlatformSecrets as ServerSideSecrets
from rendering.units import MIB
from stackconfig.schema import ArtifactsConfig, ServerConfig

from .binaries import Binaries
from .errors import PlatformError
from .layout import StateLayout
from .options import PlatformOptions
from .plan import Check, Step
from .secrets_store import PlatformSecrets
from .tls import ensure_leaf
from .users import RunAs, identity_for, make_dir, write_file

LOOPBACK = "127.0.0.1"
PUBLIC_HOST = "localhost"
"""What clients use: resolvable everywhere (an unknown name makes MLflow clients hang in DNS)."""
BUCKET = "mlflow-local-artifacts"
REGION = "us-east-1"
SERVER = ServerConfig()
"""The stack's server defaults (in-flight admission limit, auth cache TTL) apply locally too."""
PROJECT_ROOT = Path(__file__).resolve().parent.parent
RUN_BOOTSTRAP = PROJECT_ROOT / "images" / "tracking-server" / "run_bootstrap.py"
"""The bootstrap/migration runner the EKS migration Job runs from the image."""
LOCAL_INGRESS = IngressSettings(hsts_max_age_s=0)
"""The shared ingress settings; only HSTS is off locally (it would pin every localhost port)."""


@dataclass(frozen=True)
class Context:
    options: PlatformOptions
    layout: StateLayout
    binaries: Binaries
    secrets: PlatformSecrets
    ports: dict[str, int]
    me: RunAs
    svc: RunAs
    mlflow_python: Path

    @property
    def svc_user(self) -> str | None:
        """The account to name in a Step (None when it is us)."""
        return None if self.svc.is_current else self.svc.name

    @property
    def artifacts(self) -> ArtifactsConfig:
        return ArtifactsConfig(access_mode=self.options.access_mode)

    @property
    def artifact_root(self) -> str:
        return f"s3://{BUCKET}/{self.artifacts.prefix}"

    @property
    def s3_endpoint(self) -> str:
        return f"https://{LOOPBACK}:{self.ports['s3']}"

    @property
    def url(self) -> str:
        return f"https://{PUBLIC_HOST}:{self.ports['https']}"

    @property
    def python_env(self) -> dict[str, str]:
        return {"PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"}

    @property
    def platform_settings(self) -> PlatformSettings:
        return PlatformSettings(
            access_mode=self.options.access_mode,
            in_flight_per_worker=self.options.in_flight_per_worker,
            auth_cache_ttl_seconds=SERVER.auth_cache_ttl_seconds,
            basic_auth=self.options.auth != "off",
            tracking_store=self.options.store,
            # The platform app is built against the pinned MLflow's basic-auth tables; MLflow's
            # own app for the stock server and its shipped defaults (comparisons) and for another
            # MLflow installation.
            server_app=(
                MLFLOW_BASIC_AUTH_APP
                if self.options.server == "stock"
                or self.options.auth == "mlflow-defaults"
                or self.options.mlflow_python is not None
                else PLATFORM_APP
            ),
            teams=self.options.teams,
        )


# -- capacity and PostgreSQL -----------------------------------------------------------------


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


def _pg_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def postgres_step(ctx: Context, tuning: PostgresTuning) -> Step:
    layout, bins = ctx.layout, ctx.binaries
    make_dir(layout.pg_dir, ctx.svc)
    _initdb_if_needed(ctx)
    cert = ensure_leaf(
        bins.openssl,
        layout.ca_cert,
        layout.ca_key,
        make_dir(layout.pg_tls, ctx.svc),
        "postgres",
        (PUBLIC_HOST, LOOPBACK),
        ctx.svc,
    )
    rendered = local_postgres_settings(render_postgres_parameters(tuning))
    runtime = {
        # Loopback only, TCP only: with no Unix socket every connection meets pg_hba's hostssl rules.
        "listen_addresses": LOOPBACK,
        "port": str(ctx.ports["postgres"]),
        "unix_socket_directories": "",
        "ssl_cert_file": str(cert.cert),
        "ssl_key_file": str(cert.key),
        "ssl_min_protocol_version": "TLSv1.2",
        # The supervisor collects stderr into logs/postgres.log.
        "logging_collector": "off",
        "log_destination": "stderr",
        "log_line_prefix": "%m [%p] %q%u@%d ",
    }
    overlap = set(rendered) & set(runtime)
    if overlap:
        raise AssertionError(f"local runtime settings must not override rendered ones: {overlap}")
    lines = ["# Rendered by localplatform: rendering.postgres parameters, then local runtime settings."]
    lines += [f"{name} = {_pg_literal(value)}" for name, value in {**rendered, **runtime}.items()]
    write_file(layout.pg_data / "platform.conf", "\n".join(lines) + "\n", ctx.svc, 0o600)
    conf = layout.pg_data / "postgresql.conf"
    include = "include 'platform.conf'"
    if include not in conf.read_text():
        write_file(conf, conf.read_text() + f"\n{include}\n", ctx.svc, 0o600)
    # local_postgres_settings maps rds.force_ssl to ssl=on and expects hostssl-only rules here.
    hba = (
        "# Rendered by localplatform: TLS (hostssl) and SCRAM only, loopback only.\n"
        f"hostssl all all {LOOPBACK}/32 scram-sha-256\n"
        "hostssl all all ::1/128 scram-sha-256\n"
    )
    write_file(layout.pg_data / "pg_hba.conf", hba, ctx.svc, 0o600)
    isready = Check(
        "command",
        argv=(str(bins.pg("pg_isready")), "-q", "-h", LOOPBACK, "-p", str(ctx.ports["postgres"]), "-t", "2"),
        timeout_s=4,
    )
    return Step(
        name="postgres",
        kind="service",
        argv=(str(bins.pg("postgres")), "-D", str(layout.pg_data)),
        log=str(layout.log("postgres")),
        env={"HOME": str(layout.pg_dir)},
        cwd=str(layout.pg_dir),
        user=ctx.svc_user,
        port=ctx.ports["postgres"],
        ready=isready,
        live=isready,
        stop_signal="SIGINT",
        ready_timeout_s=60,
    )


def _initdb_if_needed(ctx: Context) -> None:
    layout, bins = ctx.layout, ctx.binaries
    version_file = layout.pg_data / "PG_VERSION"
    if version_file.exists():
        existing = int(version_file.read_text().strip())
        if existing != bins.pg_major:
            raise PlatformError(
                f"{layout.pg_data} was initialised by PostgreSQL {existing} but the binaries are "
                f"{bins.pg_major}; pass --pg-bin-dir /usr/lib/postgresql/{existing}/bin or remove {layout.root}"
            )
        return
    migrator = ctx.platform_settings.migrator_role
    pwfile = write_file(layout.pg_dir / ".initdb.pw", ctx.secrets.db_superuser_password + "\n", ctx.svc, 0o600)
    try:
        # The bootstrap superuser is named like the RDS master user and plays its role (migrator).
        argv = [
            str(bins.pg("initdb")),
            "-D",
            str(layout.pg_data),
            "-U",
            migrator,
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ]
        who = identity_for(ctx.svc)
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            check=False,
            cwd=str(layout.pg_dir),
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PlatformError(f"initdb failed: {last}")


# -- the server side, rendered once ----------------------------------------------------------


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
    secrets = ServerSideSecrets(
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


# -- PgBouncer ---------------------------------------------------------------------------------


def pgbouncer_step(ctx: Context, side: ServerSide) -> Step:
    directory = make_dir(ctx.layout.pgbouncer_dir, ctx.svc)
    write_file(pgbouncer_auth_file(ctx.layout), side.pgbouncer_auth_file, ctx.svc, 0o600)
    ini = write_file(directory / "pgbouncer.ini", side.pgbouncer_ini, ctx.svc, 0o600)
    tcp = Check("tcp", port=ctx.ports["pgbouncer"])
    return Step(
        name="pgbouncer",
        kind="service",
        argv=(str(ctx.binaries.pgbouncer), str(ini)),
        log=str(ctx.layout.log("pgbouncer")),
        env={"HOME": str(directory)},
        cwd=str(directory),
        user=ctx.svc_user,
        after=("postgres",),
        port=ctx.ports["pgbouncer"],
        ready=tcp,
        live=tcp,
    )


def pgbouncer_exporter_step(ctx: Context, side: ServerSide) -> Step:
    """Pool metrics: the local stand-in for the pod's exporter sidecar, with its metric names
    (``localplatform.pgbouncer_exporter``), on loopback like the sidecar's pod-local port."""
    if side.pgbouncer_stats_dsn is None:
        raise AssertionError("the PgBouncer stats user is rendered whenever PgBouncer is")
    port = ctx.ports["pgbouncer-metrics"]
    ready = Check("http", url=f"http://{LOOPBACK}:{port}/metrics", timeout_s=5)
    return Step(
        name="pgbouncer-exporter",
        kind="service",
        argv=(sys.executable, "-m", "localplatform.pgbouncer_exporter", LOOPBACK, str(port)),
        log=str(ctx.layout.log("pgbouncer-exporter")),
        env={**ctx.python_env, "PGBOUNCER_EXPORTER_CONNECTION_STRING": side.pgbouncer_stats_dsn},
        cwd=str(PROJECT_ROOT),
        after=("pgbouncer",),
        port=port,
        ready=ready,
        live=ready,
    )


# -- bootstrap and migrations ----------------------------------------------------------------


def bootstrap_steps(ctx: Context, side: ServerSide) -> list[Step]:
    """The EKS migration Job's runner on the same plan, directly against PostgreSQL; then a
    connection check as the application role, through the path the server will use."""
    layout = ctx.layout
    make_dir(layout.mlflow_dir, ctx.me)
    make_dir(layout.mlflow_workdir, ctx.me)
    write_file(layout.migrator_pgpass, side.migrator_pgpass, ctx.me, 0o600)
    write_file(layout.server_pgpass, side.server_pgpass, ctx.me, 0o600)
    write_file(layout.bootstrap_file, side.bootstrap_document, ctx.me, 0o600)
    bootstrap = Step(
        "db-bootstrap",
        "job",
        (str(ctx.mlflow_python), str(RUN_BOOTSTRAP), str(layout.bootstrap_file)),
        str(layout.log("db-bootstrap")),
        env={"PGPASSFILE": str(layout.migrator_pgpass), "PYTHONUNBUFFERED": "1"},
        cwd=str(layout.mlflow_workdir),
        after=("postgres",),
    )
    settings = ctx.platform_settings
    endpoint = server_endpoint(ctx)
    databases = [settings.tracking_database]
    if ctx.options.auth == "ours":
        databases.append(settings.auth_database)
    check_file = layout.mlflow_dir / "db-check.json"
    dsns = [libpq_dsn(endpoint, database, settings.app_role) for database in databases]
    write_file(check_file, json.dumps({"dsns": dsns}), ctx.me, 0o600)
    after = ("db-bootstrap", "pgbouncer") if ctx.options.pooler == "pgbouncer" else ("db-bootstrap",)
    check = Step(
        "db-check",
        "job",
        (sys.executable, "-m", "localplatform.jobs", "db-check", str(check_file)),
        str(layout.log("db-check")),
        env={**ctx.python_env, "PGPASSFILE": str(layout.server_pgpass)},
        cwd=str(PROJECT_ROOT),
        after=after,
    )
    return [bootstrap, check]


# -- S3 emulator -----------------------------------------------------------------------------


def aws_env(ctx: Context, ca_bundle: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": ctx.secrets.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": ctx.secrets.aws_secret_access_key,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CA_BUNDLE": ca_bundle,
    }


def s3_steps(ctx: Context) -> list[Step]:
    """moto in server mode over TLS (a cert from the local CA) with its S3 state on disk
    (``localplatform.s3_server``: artifacts survive ``down``/``up`` and crashes), and the bucket
    job that applies the hardened bucket settings, rerun after each emulator start."""
    layout = ctx.layout
    directory = make_dir(layout.s3_dir, ctx.me)
    cert = ensure_leaf(
        ctx.binaries.openssl, layout.ca_cert, layout.ca_key, directory, "s3", (LOOPBACK, PUBLIC_HOST), ctx.me
    )
    config = {"endpoint": ctx.s3_endpoint, "bucket": BUCKET, "region": REGION, "artifacts": asdict(ctx.artifacts)}
    write_file(layout.bucket_file, json.dumps(config, indent=2), ctx.me, 0o600)
    tcp = Check("tcp", port=ctx.ports["s3"])
    server = Step(
        name="s3",
        kind="service",
        argv=(
            sys.executable,
            "-m",
            "localplatform.s3_server",
            "--state",
            str(layout.s3_state_file),
            "-H",
            LOOPBACK,
            "-p",
            str(ctx.ports["s3"]),
            "-c",
            str(cert.cert),
            "-k",
            str(cert.key),
        ),
        log=str(layout.log("s3")),
        env=ctx.python_env,
        cwd=str(directory),
        port=ctx.ports["s3"],
        ready=tcp,
        live=tcp,
        rerun_after_restart=("s3-bucket",),
    )
    bucket = Step(
        name="s3-bucket",
        kind="job",
        argv=(sys.executable, "-m", "localplatform.jobs", "bucket", str(layout.bucket_file)),
        log=str(layout.log("s3-bucket")),
        env={**ctx.python_env, **aws_env(ctx, str(layout.ca_cert))},
        cwd=str(PROJECT_ROOT),
        after=("s3",),
    )
    return [server, bucket]


# -- MLflow server ---------------------------------------------------------------------------


def mlflow_step(ctx: Context, side: ServerSide) -> Step:
    layout = ctx.layout
    if ctx.options.auth == "ours":
        write_file(layout.auth_ini, side.auth_ini, ctx.me, 0o600)
    write_file(layout.teams_file, side.teams_document, ctx.me, 0o600)
    metrics = prometheus_dir(layout)
    shutil.rmtree(metrics, ignore_errors=True)
    make_dir(metrics, ctx.me, 0o700)
    health = Check("http", url=f"http://{LOOPBACK}:{ctx.ports['mlflow']}/health", timeout_s=5)
    return Step(
        name="mlflow",
        kind="service",
        argv=side.launch.argv,
        log=str(layout.log("mlflow")),
        env={**side.launch.full_env(), "PYTHONUNBUFFERED": "1"},
        cwd=str(layout.mlflow_workdir),
        after=("db-check", "s3-bucket"),
        port=ctx.ports["mlflow"],
        ready=health,
        live=health,
        ready_timeout_s=180,
    )


# -- TLS proxy -------------------------------------------------------------------------------


def nginx_conf_path(layout: StateLayout) -> Path:
    return layout.nginx_dir / "nginx.conf"


def nginx_command(binaries: Binaries, layout: StateLayout, *, test: bool = False) -> tuple[str, ...]:
    flags = ("-t",) if test else ()
    return (
        str(binaries.nginx),
        *flags,
        "-c",
        str(nginx_conf_path(layout)),
        "-p",
        str(layout.nginx_dir),
        "-e",
        "stderr",
    )


def nginx_step(ctx: Context, side: ServerSide) -> Step:
    layout = ctx.layout
    directory = make_dir(layout.nginx_dir, ctx.svc)
    temp = make_dir(directory / "tmp", ctx.svc)
    cert = ensure_leaf(
        ctx.binaries.openssl,
        layout.ca_cert,
        layout.ca_key,
        make_dir(directory / "tls", ctx.svc),
        "nginx",
        (PUBLIC_HOST, LOOPBACK, "::1"),
        ctx.svc,
    )
    site = ProxySite(
        listen_host=LOOPBACK,
        listen_port=ctx.ports["https"],
        upstream_host=LOOPBACK,
        upstream_port=ctx.ports["mlflow"],
        server_names=(PUBLIC_HOST, LOOPBACK),
        pid_file=str(directory / "nginx.pid"),
        temp_dir=str(temp),
        max_in_flight=side.pools.in_flight_per_replica,
        tls=ProxyTls(
            https_port=ctx.ports["https"], http_port=ctx.ports["http"], cert_file=str(cert.cert), key_file=str(cert.key)
        ),
    )
    write_file(nginx_conf_path(layout), render_proxy_conf(LOCAL_INGRESS, site), ctx.svc, 0o600)
    ready = Check("http", url=f"{ctx.url}/health", ca_file=str(layout.ca_cert), timeout_s=5)
    return Step(
        name="nginx",
        kind="service",
        argv=nginx_command(ctx.binaries, layout),
        log=str(layout.log("nginx")),
        env={"HOME": str(directory)},
        cwd=str(directory),
        user=ctx.svc_user,
        after=("mlflow",),
        port=ctx.ports["https"],
        ready=ready,
        live=Check("tcp", port=ctx.ports["https"]),
    )

"""The ``mlflow server`` command line and environment, for the EKS container and the local target.

Targets MLflow 3.x from 3.16.1 on (uvicorn, security middleware, no default admin password).
The rendering returns three separate things so the cloud can put each where it belongs:

* ``argv`` and ``env`` — no secrets (a ConfigMap / the pod spec);
* ``secret_env`` — the Flask secret key and the admin bootstrap password (a Kubernetes Secret).

Database passwords are in neither: URLs carry no password and libpq reads it from the file
named by ``PGPASSFILE`` (a mounted secret file), so nothing secret shows up in ``ps`` or in the
pod spec.

Security settings and why (``../shared/reference/security-pgbouncer-performance.md``):

* ``--app-name mlflow-platform`` (``plugins/mlflow-platform-server``: MLflow's basic-auth plus
  team ownership of experiment and model names, docs/team-ownership.md; ``basic-auth`` only for
  comparisons and other MLflow versions) with an explicit admin and a generated password (>= 12 characters),
  a static shared ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (CSRF; identical in every worker/replica);
* ``--allowed-hosts`` listing each public name with and without ``:port`` (the Host check is an
  fnmatch on the whole header; the default also admits every private IP);
* ``MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH=true`` (explicit: RBAC bypass when unset in 3.10),
  ``MLFLOW_ALLOW_HTTP_REDIRECTS=false`` (webhook SSRF, CVE-2026-64849),
  ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (job routes were unauthenticated before 3.10;
  the huey runner also opens its own DB connections), and the model-version source allowlist
  ``MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX`` (CVE-2025-11201; the variable exists
  in 3.17.2, ``mlflow/environment_variables.py``).
* SQLAlchemy pool: ``MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW=0`` is silently ignored by MLflow
  (``if pool_max_overflow:``) and the default 10 is used, so the renderer refuses 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .auth import validate_admin_password
from .ownership import TEAMS_FILE_ENV
from .tracking_store import TrackingStore, tracking_store_uri

ArtifactAccessMode = Literal["direct", "proxied"]
"""The one definition (``stackconfig.schema`` and ``artifacts.accessMode`` read it from here).
``direct``: training jobs read/write S3 with their own role, the server runs with
``--default-artifact-root``. ``proxied``: the server streams artifacts (``--artifacts-destination``)
and only its role touches S3."""

PLATFORM_APP = "mlflow-platform"
"""The ``mlflow.app`` entry point of ``plugins/mlflow-platform-server``."""
PLATFORM_APP_SOURCE = Path(__file__).resolve().parent.parent / "plugins" / "mlflow-platform-server"
"""Where ``pip install`` takes the app from (setup.sh, the image)."""
MLFLOW_BASIC_AUTH_APP = "basic-auth"
"""MLflow's own basic-auth app: comparisons, and an MLflow the platform app was not built for."""

MINIMUM_MLFLOW_VERSION = (3, 16, 1)
"""Needed for MLFLOW_AUTH_ADMIN_PASSWORD and the removal of the default admin password."""


@dataclass(frozen=True)
class ArtifactStorage:
    """``direct``: clients use S3 themselves, the server only hands out ``s3://`` locations
    (``--default-artifact-root``, ``--no-serve-artifacts``). ``proxied``: the server streams
    artifacts (``--artifacts-destination``) and only its role touches S3."""

    access_mode: ArtifactAccessMode
    root: str
    """``s3://<bucket>/<prefix>``."""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/[A-Za-z0-9._\-/]*)?", self.root):
            raise ValueError(f"artifact root must be s3://bucket[/prefix], got {self.root!r}")


@dataclass(frozen=True)
class SqlAlchemyPool:
    """Per engine and worker (tracking, registry and auth stores each have one); sized by
    ``rendering.pools.plan_pools``."""

    pool_size: int = 2
    max_overflow: int = 1
    recycle_seconds: int | None = 1800

    def __post_init__(self) -> None:
        if self.pool_size < 1:
            raise ValueError("pool_size must be >= 1")
        if self.max_overflow < 1:
            raise ValueError("max_overflow=0 is silently ignored by MLflow (the default of 10 is used); use >= 1")

    @property
    def per_engine(self) -> int:
        return self.pool_size + self.max_overflow


@dataclass(frozen=True)
class S3Client:
    """How the server reaches S3: real AWS (all None, IRSA supplies credentials) or an emulator."""

    endpoint_url: str | None = None
    ca_bundle: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class MlflowServerSettings:
    backend_store_uri: str
    """The tracking database's ``postgresql+psycopg2://`` URI; the registry store always uses it."""
    artifacts: ArtifactStorage
    host: str
    port: int
    allowed_host_names: tuple[str, ...]
    allowed_ports: tuple[int, ...]
    workers: int = 2
    basic_auth: bool = True
    auth_config_path: str | None = None
    """``MLFLOW_AUTH_CONFIG_PATH``; None keeps MLflow's own default ini (a comparison mode)."""
    pool: SqlAlchemyPool = field(default_factory=SqlAlchemyPool)
    pgpassfile: str | None = None
    s3: S3Client = field(default_factory=S3Client)
    command: tuple[str, ...] = ("mlflow",)
    uvicorn_limit_concurrency: int | None = None
    """Caps concurrent requests per worker below its pool (the log_batch nested-session
    deadlock). Off by default: uvicorn then also answers /health with 503 under load."""
    extra_source_patterns: tuple[str, ...] = ()
    tracking_store: TrackingStore = "set-based"
    """The project's set-based store plugin, or MLflow's own (see ``rendering.tracking_store``)."""
    prometheus_dir: str | None = None
    """``--expose-prometheus``: the multiprocess directory every uvicorn worker writes its
    samples to (an emptyDir in the pod, a state-dir directory locally); metrics are served at
    ``/metrics`` behind basic-auth and the Host check like every other route. None: no metrics."""
    app_name: str = PLATFORM_APP
    """``--app-name`` when basic-auth is on."""
    teams_file: str | None = None
    """The rendered team-ownership document (``rendering.ownership``) the platform app reads;
    None: no teams, so the app refuses every non-admin create."""

    def __post_init__(self) -> None:
        if not self.backend_store_uri.startswith("postgresql+psycopg2://"):
            raise ValueError("backend_store_uri must use postgresql+psycopg2:// (psycopg 3 breaks behind PgBouncer)")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if self.app_name not in (PLATFORM_APP, MLFLOW_BASIC_AUTH_APP):
            raise ValueError(f"app_name must be {PLATFORM_APP!r} or {MLFLOW_BASIC_AUTH_APP!r}, got {self.app_name!r}")
        if not self.allowed_host_names:
            raise ValueError("allowed_host_names must name the host(s) clients use")


@dataclass(frozen=True)
class ServerSecrets:
    flask_secret_key: str
    admin_password: str | None
    """None only when basic-auth is off."""
    aws_access_key_id: str | None = None
    """Only for S3 emulators; on EKS the IRSA web identity provides credentials."""
    aws_secret_access_key: str | None = None


@dataclass(frozen=True)
class MlflowServerLaunch:
    argv: tuple[str, ...]
    env: dict[str, str]
    secret_env: dict[str, str]

    def full_env(self) -> dict[str, str]:
        return {**self.env, **self.secret_env}


def allowed_hosts(names: Sequence[str], ports: Sequence[int]) -> tuple[str, ...]:
    """Each name bare (what a proxy forwards as ``$host``) and with each port (direct clients,
    in-cluster ``svc:5000``). Exact ports rather than ``:*`` keep the list as narrow as possible."""
    entries: list[str] = []
    for name in names:
        entries.append(name)
        entries += [f"{name}:{port}" for port in ports]
    return tuple(dict.fromkeys(entries))


def model_version_source_regex(artifacts: ArtifactStorage, extra_patterns: Sequence[str] = ()) -> str:
    """Allowlist for model-version sources: our artifact location and logged-model URIs only.

    Proxied mode stores ``mlflow-artifacts:/…`` locations; direct mode stores ``s3://<root>/…``.
    MLflow 3 registers logged models by ``models:/m-<id>``. Anything else (``file:///…``, other
    buckets, other hosts) is refused: the CVE-2025-11201 class of attacks.
    """
    patterns = [re.escape(artifacts.root.rstrip("/") + "/"), r"models:/m-[0-9a-f]+$"]
    if artifacts.access_mode == "proxied":
        patterns.insert(0, "mlflow-artifacts:/")
    patterns += list(extra_patterns)
    return "^(" + "|".join(patterns) + ")"


def s3_client_env(s3: S3Client) -> dict[str, str]:
    """How an MLflow process (server or gc) reaches the artifact store: one rendering for both."""
    env: dict[str, str] = {}
    if s3.endpoint_url is not None:
        env["MLFLOW_S3_ENDPOINT_URL"] = s3.endpoint_url
    if s3.ca_bundle is not None:
        env["AWS_CA_BUNDLE"] = s3.ca_bundle
    if s3.region is not None:
        env["AWS_DEFAULT_REGION"] = s3.region
    return env


def render_mlflow_server(settings: MlflowServerSettings, secrets: ServerSecrets) -> MlflowServerLaunch:
    argv: list[str] = [
        *settings.command,
        "server",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--workers",
        str(settings.workers),
        "--backend-store-uri",
        tracking_store_uri(settings.backend_store_uri, settings.tracking_store),
        "--allowed-hosts",
        ",".join(allowed_hosts(settings.allowed_host_names, settings.allowed_ports)),
    ]
    if settings.artifacts.access_mode == "direct":
        argv += ["--default-artifact-root", settings.artifacts.root, "--no-serve-artifacts"]
    else:
        argv += ["--artifacts-destination", settings.artifacts.root, "--serve-artifacts"]
    if settings.tracking_store != "stock":
        # No registry store exists for the plugin's scheme; the registry keeps the database URI.
        argv += ["--registry-store-uri", settings.backend_store_uri]
    if settings.basic_auth:
        argv += ["--app-name", settings.app_name]
    if settings.prometheus_dir is not None:
        argv += ["--expose-prometheus", settings.prometheus_dir]
    if settings.uvicorn_limit_concurrency is not None:
        argv += ["--uvicorn-opts", f"--limit-concurrency {settings.uvicorn_limit_concurrency}"]

    env: dict[str, str] = {
        "MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH": "true",
        "MLFLOW_ALLOW_HTTP_REDIRECTS": "false",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX": model_version_source_regex(
            settings.artifacts, settings.extra_source_patterns
        ),
        "MLFLOW_SQLALCHEMYSTORE_POOL_SIZE": str(settings.pool.pool_size),
        "MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW": str(settings.pool.max_overflow),
    }
    if settings.pool.recycle_seconds is not None:
        env["MLFLOW_SQLALCHEMYSTORE_POOL_RECYCLE"] = str(settings.pool.recycle_seconds)
    if settings.basic_auth and settings.auth_config_path is not None:
        env["MLFLOW_AUTH_CONFIG_PATH"] = settings.auth_config_path
    if settings.basic_auth and settings.app_name == PLATFORM_APP and settings.teams_file is not None:
        env[TEAMS_FILE_ENV] = settings.teams_file
    if settings.prometheus_dir is not None:
        # MLflow exports the flag as the deprecated lower-case name; prometheus_client prefers this one.
        env["PROMETHEUS_MULTIPROC_DIR"] = settings.prometheus_dir
    if settings.pgpassfile is not None:
        env["PGPASSFILE"] = settings.pgpassfile
    env.update(s3_client_env(settings.s3))

    if len(secrets.flask_secret_key) < 32:
        raise ValueError("the Flask secret key must have at least 32 characters")
    secret_env = {"MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.flask_secret_key}
    if settings.basic_auth:
        if secrets.admin_password is None:
            raise ValueError("basic-auth needs an admin password")
        validate_admin_password(secrets.admin_password)
        secret_env["MLFLOW_AUTH_ADMIN_PASSWORD"] = secrets.admin_password
    if (secrets.aws_access_key_id is None) != (secrets.aws_secret_access_key is None):
        raise ValueError("give both AWS access key parts or neither")
    if secrets.aws_access_key_id is not None and secrets.aws_secret_access_key is not None:
        secret_env["AWS_ACCESS_KEY_ID"] = secrets.aws_access_key_id
        secret_env["AWS_SECRET_ACCESS_KEY"] = secrets.aws_secret_access_key
    return MlflowServerLaunch(tuple(argv), env, secret_env)

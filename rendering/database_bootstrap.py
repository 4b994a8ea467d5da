"""Database bootstrap and schema migrations, as data: what the EKS migration Job and the local
target both execute, once per deployment, *directly* against PostgreSQL (never via PgBouncer).

Why direct: long DDL must not hit PgBouncer's query/idle timeouts, and migration tools that take
session-level locks break behind transaction pooling. Why a separate step at all: MLflow has no
cross-pod migration lock, so server replicas must only *verify* the schema, never migrate it.

Roles (least privilege):

* the **migrator** (RDS master user, or the local cluster's bootstrap superuser) owns both
  databases and every table, and runs the migrations;
* the **application role** that the server (through PgBouncer) uses can connect to the two
  databases and read/write rows, nothing else: no DDL, no CREATEDB/CREATEROLE, not the owner.
  Default privileges make tables created by future migrations usable by it, and a grant after
  each migration covers tables that existed before the default privileges did.

Every statement is idempotent (guarded by a ``skip_if`` query or naturally repeatable), so the
step can run on every deployment. Passwords never appear: the application role gets a SCRAM
*verifier* (``rendering.scram``), and connections take passwords from a libpq password file
(``PGPASSFILE``), so URLs, argv and the SQL log carry no secret.

Statements embed identifiers without quoting, so identifiers are restricted to
``[a-z_][a-z0-9_]*``; the verifier is checked against its strict format before use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

from .names import AUTH_DATABASE, TRACKING_DATABASE
from .scram import is_scram_verifier

SslMode = Literal["disable", "require", "verify-ca", "verify-full"]
DRIVER_SCHEME = "postgresql+psycopg2"
"""psycopg2, never psycopg 3: see ``rendering.pgbouncer``."""

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _ident(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"identifier {name!r} must match {_IDENTIFIER.pattern}")
    return name


@dataclass(frozen=True)
class PostgresEndpoint:
    """Where to connect and how to check TLS (``sslrootcert`` is the RDS bundle or local CA)."""

    host: str
    port: int
    sslmode: SslMode = "verify-full"
    sslrootcert: str | None = None

    def __post_init__(self) -> None:
        if self.sslmode in ("verify-ca", "verify-full") and not self.sslrootcert:
            raise ValueError(f"sslmode={self.sslmode} needs sslrootcert")


def sqlalchemy_url(
    endpoint: PostgresEndpoint,
    database: str,
    user: str,
    application_name: str | None = None,
) -> str:
    """``postgresql+psycopg2://user@host:port/db?sslmode=…``, deliberately without password."""
    query = [f"sslmode={endpoint.sslmode}"]
    if endpoint.sslrootcert:
        query.append(f"sslrootcert={quote(endpoint.sslrootcert, safe='/')}")
    if application_name:
        query.append(f"application_name={quote(application_name, safe='')}")
    return f"{DRIVER_SCHEME}://{_ident(user)}@{endpoint.host}:{endpoint.port}/{_ident(database)}?{'&'.join(query)}"


def libpq_dsn(endpoint: PostgresEndpoint, database: str, user: str) -> str:
    """The same connection as a libpq keyword string (psycopg2.connect, psql)."""
    parts = [
        f"host={endpoint.host}",
        f"port={endpoint.port}",
        f"dbname={_ident(database)}",
        f"user={_ident(user)}",
        f"sslmode={endpoint.sslmode}",
    ]
    if endpoint.sslrootcert:
        parts.append(f"sslrootcert={endpoint.sslrootcert}")
    return " ".join(parts)


@dataclass(frozen=True)
class PgPassEntry:
    host: str
    port: int
    database: str
    username: str
    password: str


def _pgpass_field(value: str) -> str:
    if "\n" in value:
        raise ValueError("pgpass fields must be single-line")
    return value.replace("\\", "\\\\").replace(":", "\\:")


def render_pgpass(entries: Sequence[PgPassEntry]) -> str:
    """A libpq password file. Secret: libpq ignores it unless it is mode 0600 (or stricter)."""
    return "".join(
        ":".join(_pgpass_field(str(v)) for v in (e.host, e.port, e.database, e.username, e.password)) + "\n"
        for e in entries
    )


@dataclass(frozen=True)
class SqlStep:
    """One idempotent statement, run in autocommit on ``database``; skipped when ``skip_if``
    (a query) returns a row. CREATE DATABASE cannot run inside DO blocks, hence the guard."""

    description: str
    database: str
    sql: str
    skip_if: str | None = None
    session_settings: tuple[tuple[str, str], ...] = ()
    """``SET name = value`` for this step alone, each sent as its own statement before it and
    ``RESET`` after it (see :data:`NO_STATEMENT_LOGGING`)."""


NO_STATEMENT_LOGGING: tuple[tuple[str, str], ...] = (
    ("log_statement", "none"),
    ("log_min_duration_statement", "-1"),
    ("log_min_error_statement", "panic"),
)
"""The session settings under which a statement carrying a SCRAM verifier runs.

The parameter group logs DDL (``log_statement = ddl``, ``rendering.postgres``) and slow
statements, and RDS ships the log to CloudWatch; ``ALTER ROLE ... PASSWORD '<verifier>'`` is
DDL, so without this the verifier lands in the log (and, on error, in the ``STATEMENT:`` line
that ``log_min_error_statement`` adds). The three are superuser-only (PGC_SUSET) parameters
that a session may still set: the RDS master user, which is not a superuser, may set them too
(it is ``rds_superuser``, the role AWS documents as setting superuser-only logging parameters
such as ``pgaudit.log`` per database and role: https://repost.aws/knowledge-center/rds-postgresql-pgaudit;
AWS on the risk itself: "Mitigating risk of password exposure when using query logging",
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_LogAccess.Concepts.PostgreSQL.Query_Logging.html).
They must be separate statements sent *before* the DDL: PostgreSQL decides whether to log a
simple query's whole text before executing any statement in it (``check_log_statement`` in
``exec_simple_query``), so a ``SET ...; ALTER ROLE ...`` string would be logged in full. The
runner refuses to send the step if a setting is refused, rather than log the verifier."""


@dataclass(frozen=True)
class Command:
    """A process to run: argv plus *non-secret* environment (secrets come from files)."""

    description: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BootstrapSettings:
    migrator_role: str
    """Owner of the databases; connects for bootstrap and migrations (RDS master user)."""
    app_role: str
    app_role_scram_verifier: str
    tracking_database: str = TRACKING_DATABASE
    auth_database: str = AUTH_DATABASE
    maintenance_database: str = "postgres"
    app_connection_limit: int = -1
    """-1: unlimited; the real bound is PgBouncer's pool and max_connections."""
    create_tracking_database: bool = True
    """False on RDS, where ``db_name`` already created it (the guard makes True harmless)."""

    def __post_init__(self) -> None:
        for name in (
            self.migrator_role,
            self.app_role,
            self.tracking_database,
            self.auth_database,
            self.maintenance_database,
        ):
            _ident(name)
        if self.app_role == self.migrator_role:
            raise ValueError("the application role must not be the migrator (owner) role")
        if not is_scram_verifier(self.app_role_scram_verifier):
            raise ValueError("app_role_scram_verifier must be a SCRAM-SHA-256 verifier, not a password")


@dataclass(frozen=True)
class BootstrapPlan:
    before_migrations: tuple[SqlStep, ...]
    migrations: tuple[Command, ...]
    after_migrations: tuple[SqlStep, ...]
    migrator_url_tracking: str
    migrator_url_auth: str


def _role_steps(s: BootstrapSettings) -> list[SqlStep]:
    app, maint = s.app_role, s.maintenance_database
    return [
        SqlStep(
            f"create role {app} if missing",
            maint,
            # CREATE ROLE's defaults are the least privileges (NOSUPERUSER NOCREATEDB NOCREATEROLE
            # NOREPLICATION NOBYPASSRLS); they are not restated because changing SUPERUSER,
            # REPLICATION or BYPASSRLS needs a real superuser, which the RDS master is not.
            f"CREATE ROLE {app} LOGIN",
            skip_if=f"SELECT 1 FROM pg_roles WHERE rolname = '{app}'",  # noqa: S608 - validated identifier
        ),
        SqlStep(
            f"set {app} password (SCRAM verifier) and limits",
            maint,
            f"ALTER ROLE {app} WITH LOGIN NOCREATEDB NOCREATEROLE CONNECTION LIMIT {s.app_connection_limit} "
            f"PASSWORD '{s.app_role_scram_verifier}'",
            session_settings=NO_STATEMENT_LOGGING,
        ),
    ]


def _database_steps(s: BootstrapSettings, database: str) -> list[SqlStep]:
    app, owner, maint = s.app_role, s.migrator_role, s.maintenance_database
    return [
        SqlStep(
            f"create database {database} if missing",
            maint,
            f"CREATE DATABASE {database} OWNER {owner} ENCODING 'UTF8'",
            skip_if=f"SELECT 1 FROM pg_database WHERE datname = '{database}'",  # noqa: S608 - validated identifier
        ),
        SqlStep(
            f"only {app} (and the owner) may connect to {database}",
            maint,
            f"REVOKE ALL ON DATABASE {database} FROM PUBLIC",
        ),
        SqlStep(f"{app} may connect to {database}", maint, f"GRANT CONNECT ON DATABASE {database} TO {app}"),
        SqlStep(
            f"nobody else creates objects in {database}.public", database, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
        ),
        SqlStep(f"{app} may use {database}.public", database, f"GRANT USAGE ON SCHEMA public TO {app}"),
        SqlStep(
            f"future tables in {database} are usable by {app}",
            database,
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}",
        ),
        SqlStep(
            f"future sequences in {database} are usable by {app}",
            database,
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {app}",
        ),
    ]


def _grant_existing_steps(s: BootstrapSettings, database: str) -> list[SqlStep]:
    app = s.app_role
    return [
        SqlStep(
            f"existing tables in {database} are usable by {app}",
            database,
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {app}",
        ),
        SqlStep(
            f"existing sequences in {database} are usable by {app}",
            database,
            f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {app}",
        ),
    ]


def render_bootstrap_plan(
    settings: BootstrapSettings,
    endpoint: PostgresEndpoint,
    *,
    mlflow_command: Sequence[str] = ("mlflow",),
    python_command: Sequence[str] = ("python",),
    pgpassfile: str | None = None,
) -> BootstrapPlan:
    """Bootstrap SQL, then both migrations (tracking: ``mlflow db upgrade``; auth:
    ``python -m mlflow.server.auth db upgrade --url``), then grants on what they created.

    ``mlflow_command``/``python_command`` must belong to the *same* MLflow installation as the
    server: migrations are versioned with the server code. ``pgpassfile`` holds the migrator's
    password; it is passed as ``PGPASSFILE`` (a path, not a secret).
    """
    before: list[SqlStep] = _role_steps(settings)
    for database in (settings.tracking_database, settings.auth_database):
        steps = _database_steps(settings, database)
        if database == settings.tracking_database and not settings.create_tracking_database:
            steps = steps[1:]
        before += steps
    tracking_url = sqlalchemy_url(endpoint, settings.tracking_database, settings.migrator_role, "mlflow-migrate")
    auth_url = sqlalchemy_url(endpoint, settings.auth_database, settings.migrator_role, "mlflow-migrate")
    env = {"PGPASSFILE": pgpassfile} if pgpassfile else {}
    migrations = (
        Command("migrate the tracking database", (*mlflow_command, "db", "upgrade", tracking_url), dict(env)),
        Command(
            "migrate the auth database",
            (*python_command, "-m", "mlflow.server.auth", "db", "upgrade", "--url", auth_url),
            dict(env),
        ),
    )
    after: list[SqlStep] = []
    for database in (settings.tracking_database, settings.auth_database):
        after += _grant_existing_steps(settings, database)
    return BootstrapPlan(tuple(before), migrations, tuple(after), tracking_url, auth_url)

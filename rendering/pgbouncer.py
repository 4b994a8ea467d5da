"""pgbouncer.ini and its auth file, for the EKS sidecar and the local target alike.

Why PgBouncer, and why this shape (see ``../shared/reference/security-pgbouncer-performance.md``):

* ``pool_mode = transaction``: MLflow runs one transaction per store call and sets no session
  state, so server connections can be shared between requests; the guide asks for it from
  50 concurrent training jobs on.
* It must be used with **psycopg2** (``postgresql+psycopg2://``). psycopg 3 creates server-side
  prepared statements that break behind transaction pooling unless PgBouncer tracks them
  (``max_prepared_statements``, PgBouncer >= 1.21).
* ``auth_type = scram-sha-256`` with the role's SCRAM *verifier* in the auth file: clients
  authenticate with SCRAM, and PgBouncer logs in to PostgreSQL with SCRAM pass-through using the
  same verifier, so no plaintext password is stored anywhere in PgBouncer.
* ``server_tls_sslmode = verify-full`` towards PostgreSQL (``rds.force_ssl = 1`` in the cloud,
  ``hostssl``-only pg_hba locally), with the CA file as a parameter: the RDS CA bundle in the
  cloud, the local CA locally.
* Client side TLS is optional and off by default: PgBouncer listens on loopback only (inside the
  pod, or on 127.0.0.1 locally), so the unencrypted hop never leaves the network namespace.

Version dependence (rendered explicitly from :attr:`PgBouncerSettings.version`): Debian 12 ships
1.18, the cloud sidecar must run >= 1.24.1. See :data:`VERSION_NOTES`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .scram import is_scram_verifier

PgBouncerVersion = tuple[int, int, int]

DEBIAN_BOOKWORM_VERSION: PgBouncerVersion = (1, 18, 0)
"""What ``apt-get install pgbouncer`` gives on Debian 12: the version the local target proves."""

CLOUD_MINIMUM_VERSION: PgBouncerVersion = (1, 24, 1)
"""The sidecar image must be at least this: 1.24.1 fixes CVE-2025-2291."""

MINIMUM_SUPPORTED_VERSION: PgBouncerVersion = (1, 14, 0)
"""SCRAM authentication and SCRAM pass-through to the server exist from 1.14 on."""

PREPARED_STATEMENTS_VERSION: PgBouncerVersion = (1, 21, 0)

VERSION_NOTES: dict[str, str] = {
    "max_prepared_statements": (
        "Exists from 1.21.0 (protocol-level prepared statements in transaction mode); default 0 "
        "until 1.23, 200 from 1.24. Rendered only for >= 1.21. With psycopg2 it is inert (no "
        "server-side prepares); it is the safety net if the driver ever becomes psycopg 3. Not "
        "proved by the local target (Debian has 1.18)."
    ),
    "auth_type=scram-sha-256": "Exists from 1.14.0, together with SCRAM pass-through; older versions are refused.",
    "CVE-2025-2291": (
        "Fixed in 1.24.1: with auth_query, an expired password (VALID UNTIL) was still accepted. "
        "We use auth_file, not auth_query, but the cloud sidecar is pinned >= 1.24.1 regardless."
    ),
    "shutdown signals": (
        "Before 1.23 SIGTERM is an immediate shutdown and SIGINT a safe one; 1.23 made SIGTERM "
        "wait for clients ('super safe'). The local supervisor sends SIGTERM and kills after a "
        "timeout, which is correct for both."
    ),
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,62}$")
_SAFE_VALUE = re.compile(r"^[^\s\"'\\;#]+$")


@dataclass(frozen=True)
class PgBouncerDatabase:
    """One ``[databases]`` entry: the name clients use, and where it really lives."""

    name: str
    host: str
    port: int
    dbname: str


@dataclass(frozen=True)
class ServerTls:
    """TLS from PgBouncer to PostgreSQL. ``verify-full`` checks the chain *and* the host name."""

    ca_file: str
    sslmode: Literal["verify-full", "verify-ca", "require"] = "verify-full"
    protocols: str = "secure"
    """PgBouncer's alias for TLSv1.2 and TLSv1.3."""


@dataclass(frozen=True)
class ClientTls:
    """Optional TLS for clients of PgBouncer (off by default: loopback only)."""

    cert_file: str
    key_file: str
    sslmode: Literal["require", "prefer"] = "require"


@dataclass(frozen=True)
class AuthUser:
    """A login PgBouncer accepts, with its SCRAM verifier (never a plaintext password)."""

    username: str
    scram_verifier: str


@dataclass(frozen=True)
class PoolSizing:
    """How many server connections PgBouncer may open, per (database, user) pair.

    The sizes come from ``rendering.pools.plan_pools``, the one place pool arithmetic lives
    (replicas × databases × (pool + reserve) must fit the server's ``max_connections``).
    """

    default_pool_size: int
    max_client_conn: int = 200
    reserve_pool_size: int = 0
    min_pool_size: int = 0

    def __post_init__(self) -> None:
        if self.default_pool_size < 1:
            raise ValueError("default_pool_size must be >= 1")
        if self.max_client_conn < self.default_pool_size:
            raise ValueError("max_client_conn must be >= default_pool_size")


@dataclass(frozen=True)
class PgBouncerSettings:
    listen_addr: str
    listen_port: int
    auth_file: str
    databases: tuple[PgBouncerDatabase, ...]
    server_tls: ServerTls
    pools: PoolSizing
    version: PgBouncerVersion = CLOUD_MINIMUM_VERSION
    client_tls: ClientTls | None = None
    unix_socket_dir: str = ""
    """Empty disables the Unix socket: TCP on loopback is the only way in."""
    pidfile: str = ""
    """Empty when run in the foreground under a supervisor (kubelet or the local one)."""
    logfile: str = ""
    """Empty logs to stderr, which the supervisor or the container runtime collects."""
    query_wait_timeout_s: int = 30
    """A client waiting longer than this for a server connection gets an error. 30 s matches
    SQLAlchemy's pool timeout; the 120 s default turns pool exhaustion into two-minute stalls
    (measured: the log_batch nested-session deadlock only drained through this timeout)."""
    server_idle_timeout_s: int = 300
    server_lifetime_s: int = 3600
    server_connect_timeout_s: int = 5
    server_login_retry_s: int = 2
    """After a failed server login (the database restarting, an RDS failover) PgBouncer refuses
    every client for this long before it tries again. The 15 s default kept the platform down
    for 15 s after PostgreSQL was already back (measured by tests/reliability)."""
    max_prepared_statements: int = 200
    admin_users: tuple[str, ...] = ()
    stats_users: tuple[str, ...] = ()
    ignore_startup_parameters: tuple[str, ...] = ()
    """Startup parameters PgBouncer accepts and drops (the Go exporter's driver sends
    ``extra_float_digits``, which PgBouncer otherwise refuses). Empty: not rendered."""
    extra_notes: tuple[str, ...] = field(default=())


def parse_pgbouncer_version(text: str) -> PgBouncerVersion:
    """Parse ``pgbouncer --version`` output (``PgBouncer 1.18.0`` on the first line)."""
    match = re.search(r"PgBouncer\s+(\d+)\.(\d+)(?:\.(\d+))?", text)
    if match is None:
        raise ValueError(f"cannot read a PgBouncer version from {text[:80]!r}")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def supports_prepared_statements(version: PgBouncerVersion) -> bool:
    return version >= PREPARED_STATEMENTS_VERSION


def _check_value(name: str, value: str) -> str:
    if not _SAFE_VALUE.match(value):
        raise ValueError(f"unsafe characters in PgBouncer setting {name}={value!r}")
    return value


def _check_identifier(value: str) -> str:
    if not _IDENTIFIER.match(value):
        raise ValueError(f"not a plain identifier: {value!r}")
    return value


def render_pgbouncer_ini(settings: PgBouncerSettings) -> str:
    """The complete pgbouncer.ini. Raises ValueError for unsupported versions or unsafe values."""
    if settings.version < MINIMUM_SUPPORTED_VERSION:
        raise ValueError(f"PgBouncer {'.'.join(map(str, settings.version))} lacks SCRAM pass-through; need >= 1.14")
    if not settings.databases:
        raise ValueError("at least one database is required")
    version = ".".join(str(part) for part in settings.version)
    lines = [
        f"; Rendered by rendering.pgbouncer for PgBouncer {version}; do not edit by hand.",
        "",
        "[databases]",
    ]
    for db in settings.databases:
        lines.append(
            f"{_check_identifier(db.name)} = host={_check_value('host', db.host)} port={db.port} "
            f"dbname={_check_identifier(db.dbname)}"
        )
    pools = settings.pools
    body: list[tuple[str, str]] = [
        ("listen_addr", _check_value("listen_addr", settings.listen_addr)),
        ("listen_port", str(settings.listen_port)),
        ("unix_socket_dir", settings.unix_socket_dir),
        ("pidfile", settings.pidfile),
        ("logfile", settings.logfile),
        ("auth_type", "scram-sha-256"),
        ("auth_file", _check_value("auth_file", settings.auth_file)),
        ("pool_mode", "transaction"),
        ("default_pool_size", str(pools.default_pool_size)),
        ("min_pool_size", str(pools.min_pool_size)),
        ("reserve_pool_size", str(pools.reserve_pool_size)),
        ("max_db_connections", str(pools.default_pool_size + pools.reserve_pool_size)),
        ("max_client_conn", str(pools.max_client_conn)),
        ("query_wait_timeout", str(settings.query_wait_timeout_s)),
        ("server_idle_timeout", str(settings.server_idle_timeout_s)),
        ("server_lifetime", str(settings.server_lifetime_s)),
        ("server_connect_timeout", str(settings.server_connect_timeout_s)),
        ("server_login_retry", str(settings.server_login_retry_s)),
        ("server_tls_sslmode", settings.server_tls.sslmode),
        ("server_tls_ca_file", _check_value("server_tls_ca_file", settings.server_tls.ca_file)),
        ("server_tls_protocols", settings.server_tls.protocols),
        ("admin_users", ",".join(_check_identifier(u) for u in settings.admin_users)),
        ("stats_users", ",".join(_check_identifier(u) for u in settings.stats_users)),
        *(
            [("ignore_startup_parameters", ",".join(_check_identifier(p) for p in settings.ignore_startup_parameters))]
            if settings.ignore_startup_parameters
            else []
        ),
        ("log_connections", "0"),
        ("log_disconnections", "0"),
        ("log_pooler_errors", "1"),
    ]
    if settings.client_tls is None:
        body.append(("client_tls_sslmode", "disable"))
    else:
        body += [
            ("client_tls_sslmode", settings.client_tls.sslmode),
            ("client_tls_cert_file", _check_value("client_tls_cert_file", settings.client_tls.cert_file)),
            ("client_tls_key_file", _check_value("client_tls_key_file", settings.client_tls.key_file)),
            ("client_tls_protocols", "secure"),
        ]
    if supports_prepared_statements(settings.version):
        # VERSION_NOTES["max_prepared_statements"]: only from 1.21; an unknown key stops 1.18.
        body.append(("max_prepared_statements", str(settings.max_prepared_statements)))
    lines += ["", "[pgbouncer]"]
    lines += [f"{key} = {value}".rstrip() for key, value in body]
    for note in settings.extra_notes:
        lines.append(f"; {note}")
    return "\n".join(lines) + "\n"


def render_auth_file(users: Sequence[AuthUser]) -> str:
    """PgBouncer's ``auth_file`` (userlist.txt): ``"user" "SCRAM-SHA-256$..."`` per line.

    Secret material: readable only by PgBouncer (a Kubernetes Secret in the cloud, mode 0600
    locally). Plaintext passwords are refused here on purpose.
    """
    lines = []
    for user in users:
        if not is_scram_verifier(user.scram_verifier):
            raise ValueError(f"auth file entry for {user.username!r} must be a SCRAM-SHA-256 verifier")
        lines.append(f'"{_check_identifier(user.username)}" "{user.scram_verifier}"')
    return "\n".join(lines) + "\n"

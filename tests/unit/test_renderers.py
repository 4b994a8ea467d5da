"""Fast checks (no processes) of the renderers the local target and the cloud share, and of the
local platform's pure helpers. tests/local proves the same output against the real programs
(moved here from tests/local so that ``make test-unit`` runs them; the one check that runs the
installed ``postgres`` binary stayed there, in test_postgres_contexts.py)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from localplatform.binaries import find_pg_bin
from localplatform.clientenv import read_env_file, write_env_file
from localplatform.errors import PlatformError
from localplatform.plan import Check, Plan, Step, plan_from_json, plan_to_json
from localplatform.ports import allocate
from rendering.auth import AuthSettings, render_auth_ini, validate_admin_password
from rendering.database_bootstrap import (
    NO_STATEMENT_LOGGING,
    BootstrapSettings,
    PgPassEntry,
    PostgresEndpoint,
    render_bootstrap_plan,
    render_pgpass,
    sqlalchemy_url,
)
from rendering.ingress import IngressSettings, ingress_nginx_annotations, nginx_size
from rendering.mlflow_server import (
    ArtifactStorage,
    MlflowServerSettings,
    ServerSecrets,
    SqlAlchemyPool,
    allowed_hosts,
    model_version_source_regex,
    render_mlflow_server,
)
from rendering.pgbouncer import (
    AuthUser,
    PgBouncerDatabase,
    PgBouncerSettings,
    PoolSizing,
    ServerTls,
    parse_pgbouncer_version,
    render_auth_file,
    render_pgbouncer_ini,
)
from rendering.scram import is_scram_verifier, scram_sha256_verifier

SALT = bytes(range(16))
VERIFIER = scram_sha256_verifier("app-password-123", SALT)


# -- SCRAM -----------------------------------------------------------------------------------


def test_scram_verifier_has_postgres_format_and_depends_on_salt() -> None:
    assert is_scram_verifier(VERIFIER) and VERIFIER.startswith("SCRAM-SHA-256$4096:")
    assert scram_sha256_verifier("app-password-123", SALT) == VERIFIER
    assert scram_sha256_verifier("app-password-123", bytes(16)) != VERIFIER
    with pytest.raises(ValueError):
        scram_sha256_verifier("pässwort-with-umlaut", SALT)


# -- PgBouncer -------------------------------------------------------------------------------


def _pgbouncer(version: tuple[int, int, int]) -> PgBouncerSettings:
    return PgBouncerSettings(
        listen_addr="127.0.0.1",
        listen_port=6432,
        auth_file="/etc/pgbouncer/userlist.txt",
        databases=(
            PgBouncerDatabase("mlflow", "db.example", 5432, "mlflow"),
            PgBouncerDatabase("mlflow_auth", "db.example", 5432, "mlflow_auth"),
        ),
        server_tls=ServerTls(ca_file="/etc/ssl/rds/global-bundle.pem"),
        pools=PoolSizing(default_pool_size=8, reserve_pool_size=2),
        version=version,
    )


def _ini_values(text: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+) = ?(.*)$", text, flags=re.MULTILINE))


def test_pgbouncer_ini_is_transaction_mode_scram_and_verify_full() -> None:
    values = _ini_values(render_pgbouncer_ini(_pgbouncer((1, 24, 1))))
    assert values["pool_mode"] == "transaction"
    assert values["auth_type"] == "scram-sha-256"
    assert values["server_tls_sslmode"] == "verify-full"
    assert values["server_tls_ca_file"] == "/etc/ssl/rds/global-bundle.pem"
    assert values["listen_addr"] == "127.0.0.1" and values["unix_socket_dir"] == ""
    assert values["mlflow"] == "host=db.example port=5432 dbname=mlflow"


def test_pgbouncer_version_dependent_settings_are_explicit() -> None:
    assert "max_prepared_statements" not in render_pgbouncer_ini(_pgbouncer((1, 18, 0)))
    assert "max_prepared_statements = 200" in render_pgbouncer_ini(_pgbouncer((1, 21, 0)))
    with pytest.raises(ValueError, match="SCRAM"):
        render_pgbouncer_ini(_pgbouncer((1, 12, 0)))
    assert parse_pgbouncer_version("PgBouncer 1.18.0\nlibevent 2.1.12") == (1, 18, 0)


def test_pgbouncer_pool_limits_and_auth_file() -> None:
    values = _ini_values(render_pgbouncer_ini(_pgbouncer((1, 24, 1))))
    assert (values["default_pool_size"], values["reserve_pool_size"], values["max_db_connections"]) == ("8", "2", "10")
    with pytest.raises(ValueError):
        PoolSizing(default_pool_size=0)
    assert render_auth_file([AuthUser("mlflow", VERIFIER)]) == f'"mlflow" "{VERIFIER}"\n'
    with pytest.raises(ValueError, match="SCRAM"):
        render_auth_file([AuthUser("mlflow", "plaintext-password")])


# -- basic-auth ini --------------------------------------------------------------------------


def test_auth_ini_defaults_and_escaping() -> None:
    uri = "postgresql+psycopg2://mlflow@127.0.0.1:6432/mlflow_auth?sslmode=verify-full&sslrootcert=/a%20b/ca.crt"
    text = render_auth_ini(AuthSettings(database_uri=uri))
    assert "default_permission = NO_PERMISSIONS" in text
    assert "auth_cache_ttl_seconds = 60" in text
    assert "authorization_function = mlflow.server.auth:authenticate_request_basic_auth" in text
    assert "%%20" in text  # configparser would otherwise interpolate %2
    assert "admin_password" not in text
    import configparser

    parser = configparser.ConfigParser()
    parser.read_string(text)
    assert parser["mlflow"]["database_uri"] == uri
    with pytest.raises(ValueError, match="psycopg2"):
        render_auth_ini(AuthSettings(database_uri="postgresql://mlflow@db/mlflow_auth"))


def test_admin_password_rules() -> None:
    validate_admin_password("a" * 12)
    for bad in ("short", "password1234"):
        with pytest.raises(ValueError):
            validate_admin_password(bad)


# -- mlflow server ---------------------------------------------------------------------------


def _server(mode: str, **overrides: object) -> MlflowServerSettings:
    values: dict[str, object] = {
        "backend_store_uri": "postgresql+psycopg2://mlflow@127.0.0.1:6432/mlflow?sslmode=disable",
        "artifacts": ArtifactStorage(mode, "s3://bucket-name/mlflow"),  # type: ignore[arg-type]
        "host": "0.0.0.0",  # noqa: S104 - a pod binds all interfaces
        "port": 5000,
        "allowed_host_names": ("mlflow.example.com", "mlflow.mlflow.svc"),
        "allowed_ports": (443, 5000),
        "auth_config_path": "/etc/mlflow/auth.ini",
        "pgpassfile": "/etc/mlflow/pgpass",
        **overrides,
    }
    return MlflowServerSettings(**values)  # type: ignore[arg-type]


SECRETS = ServerSecrets(flask_secret_key="k" * 64, admin_password="admin-password-xyz")


def _flag(argv: tuple[str, ...], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_artifact_flags_follow_the_access_mode() -> None:
    direct = render_mlflow_server(_server("direct"), SECRETS).argv
    assert _flag(direct, "--default-artifact-root") == "s3://bucket-name/mlflow" and "--no-serve-artifacts" in direct
    assert "--artifacts-destination" not in direct
    proxied = render_mlflow_server(_server("proxied"), SECRETS).argv
    assert _flag(proxied, "--artifacts-destination") == "s3://bucket-name/mlflow" and "--serve-artifacts" in proxied
    assert "--default-artifact-root" not in proxied
    assert _flag(proxied, "--app-name") == "mlflow-platform"


def test_allowed_hosts_list_names_with_and_without_port() -> None:
    launch = render_mlflow_server(_server("proxied"), SECRETS)
    entries = _flag(launch.argv, "--allowed-hosts").split(",")
    assert "mlflow.example.com" in entries and "mlflow.example.com:443" in entries
    assert "mlflow.mlflow.svc:5000" in entries
    assert not any(entry.endswith(":*") or entry == "*" for entry in entries)
    assert allowed_hosts(["a"], [1, 1]) == ("a", "a:1")


def test_secrets_are_separate_from_argv_and_env() -> None:
    launch = render_mlflow_server(_server("proxied"), SECRETS)
    assert set(launch.secret_env) == {"MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD"}
    visible = " ".join(launch.argv) + " ".join(launch.env.values())
    assert SECRETS.flask_secret_key not in visible and "admin-password-xyz" not in visible
    assert (
        "@" in _flag(launch.argv, "--backend-store-uri")
        and ":" not in _flag(launch.argv, "--backend-store-uri").split("//")[1].split("@")[0]
    ), "no password in the URI"


def test_security_environment() -> None:
    env = render_mlflow_server(_server("direct"), SECRETS).env
    assert env["MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH"] == "true"
    assert env["MLFLOW_ALLOW_HTTP_REDIRECTS"] == "false"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/auth.ini"
    assert int(env["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"]) >= 1
    with pytest.raises(ValueError, match="silently ignored"):
        SqlAlchemyPool(max_overflow=0)
    with pytest.raises(ValueError, match="psycopg2"):
        _server("direct", backend_store_uri="postgresql://mlflow@db/mlflow")


def test_model_version_source_allowlist() -> None:
    direct = re.compile(model_version_source_regex(ArtifactStorage("direct", "s3://bucket-name/mlflow")))
    proxied = re.compile(model_version_source_regex(ArtifactStorage("proxied", "s3://bucket-name/mlflow")))
    assert direct.search("s3://bucket-name/mlflow/1/abc/artifacts/model")
    assert direct.search("models:/m-0123456789abcdef0123456789abcdef")
    assert proxied.search("mlflow-artifacts:/1/models/m-01/artifacts")
    for bad in (
        "file:///etc/",
        "s3://other-bucket/mlflow/1",
        "s3://bucket-name/mlflowx/1",
        "http://evil/x",
        "models:/m-01/../../etc",
    ):
        assert not direct.search(bad) and not proxied.search(bad), bad


# -- bootstrap -------------------------------------------------------------------------------


def test_bootstrap_plan_is_idempotent_least_privilege_and_passwordless() -> None:
    endpoint = PostgresEndpoint("db.example", 5432, "verify-full", "/etc/ssl/rds/global-bundle.pem")
    plan = render_bootstrap_plan(
        BootstrapSettings(migrator_role="mlflow_admin", app_role="mlflow", app_role_scram_verifier=VERIFIER),
        endpoint,
        pgpassfile="/secrets/migrator.pgpass",
    )
    creates = [s for s in plan.before_migrations if s.sql.startswith("CREATE ")]
    assert creates and all(s.skip_if for s in creates), "every CREATE is guarded"
    granted = " ".join(s.sql.replace("NOCREATEDB", "").replace("NOCREATEROLE", "") for s in plan.before_migrations)
    assert not re.search(r"\b(SUPERUSER|CREATEDB|CREATEROLE|REPLICATION|BYPASSRLS)\b", granted)
    assert any(VERIFIER in s.sql for s in plan.before_migrations)
    # The statement carrying the verifier, and only it, runs with statement logging off.
    quiet = [s for s in plan.before_migrations if s.session_settings]
    assert [VERIFIER in s.sql for s in quiet] == [True] and quiet[0].session_settings == NO_STATEMENT_LOGGING
    assert dict(NO_STATEMENT_LOGGING) == {
        "log_statement": "none",
        "log_min_duration_statement": "-1",
        "log_min_error_statement": "panic",
    }
    tracking, auth = plan.migrations
    assert tracking.argv[:3] == ("mlflow", "db", "upgrade") and "@db.example:5432/mlflow?" in tracking.argv[3]
    assert auth.argv[:6] == ("python", "-m", "mlflow.server.auth", "db", "upgrade", "--url")
    assert all(c.env == {"PGPASSFILE": "/secrets/migrator.pgpass"} for c in plan.migrations)
    assert "6432" not in tracking.argv[3], "migrations bypass PgBouncer"
    with pytest.raises(ValueError):
        BootstrapSettings(migrator_role="mlflow", app_role="mlflow", app_role_scram_verifier=VERIFIER)
    with pytest.raises(ValueError):
        BootstrapSettings(migrator_role="a", app_role="b", app_role_scram_verifier="plaintext")
    with pytest.raises(ValueError):
        BootstrapSettings(migrator_role="a; DROP", app_role="b", app_role_scram_verifier=VERIFIER)


def test_urls_and_pgpass() -> None:
    url = sqlalchemy_url(PostgresEndpoint("127.0.0.1", 5432, "verify-full", "/a b/ca.crt"), "mlflow", "mlflow", "x")
    assert url == (
        "postgresql+psycopg2://mlflow@127.0.0.1:5432/mlflow?sslmode=verify-full"
        "&sslrootcert=/a%20b/ca.crt&application_name=x"
    )
    assert render_pgpass([PgPassEntry("h", 1, "*", "u", "p:w\\d")]) == "h:1:*:u:p\\:w\\\\d\n"


# -- ingress ---------------------------------------------------------------------------------


def test_ingress_settings_for_large_artifacts() -> None:
    annotations = ingress_nginx_annotations(IngressSettings())
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-body-size"] == "16384m"
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 600
    assert annotations[prefix + "force-ssl-redirect"] == "true"
    assert nginx_size(1024 * 1024 * 1024) == "1024m"
    with pytest.raises(ValueError):
        IngressSettings(proxy_read_timeout_s=30)


# -- local platform helpers ------------------------------------------------------------------


def test_postgres_binaries_are_found_by_version(tmp_path: Path) -> None:
    for major in (9, 13, 16):
        bin_dir = tmp_path / str(major) / "bin"
        bin_dir.mkdir(parents=True)
        for program in ("postgres", "initdb"):
            script = bin_dir / program
            script.write_text(f"#!/bin/sh\necho 'postgres (PostgreSQL) {major}.2'\n")
            script.chmod(0o755)
    assert find_pg_bin(search_root=tmp_path) == (tmp_path / "16" / "bin", 16)
    assert find_pg_bin(tmp_path / "13" / "bin") == (tmp_path / "13" / "bin", 13)
    with pytest.raises(PlatformError, match="apt-get install -y postgresql"):
        find_pg_bin(search_root=tmp_path / "nothing")


def test_plan_round_trips_through_json() -> None:
    plan = Plan(
        (
            Step(
                "a",
                "service",
                ("x", "y"),
                "/l",
                env={"K": "V"},
                after=("b",),
                port=1,
                ready=Check("command", argv=("true",)),
                live=Check("tcp", port=1),
                rerun_after_restart=("c",),
            ),
        )
    )
    assert plan_from_json(plan_to_json(plan)) == plan


def test_env_file_round_trip_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.env"
    env = {"MLFLOW_TRACKING_PASSWORD": "a b'c$d", "MLFLOW_TRACKING_URI": "https://localhost:1"}
    write_env_file(path, env)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_env_file(path) == env


def test_fixed_busy_port_fails_and_previous_ports_are_reused() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        with pytest.raises(PlatformError, match=f"port {busy}"):
            allocate(["https"], {"https": busy}, {})
        ports, notes = allocate(["https", "http"], {}, {"https": busy})
        assert ports["https"] != busy and notes
    ports, _ = allocate(["https"], {}, {"https": busy})
    assert ports["https"] == busy

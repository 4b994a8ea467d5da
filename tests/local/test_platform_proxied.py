"""The default topology (PgBouncer, our basic-auth settings) with *proxied* artifacts, checked
against the real programs: every rendered PostgreSQL parameter, PgBouncer's rendered ini,
``nginx -t``, TLS everywhere, auth, restarts, and a client workflow through HTTPS."""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import psycopg2
import pytest

from localplatform import LocalPlatform, PlatformError, PlatformOptions, context, target
from rendering.postgres import local_postgres_settings, render_postgres_parameters
from rendering.scram import scram_sha256_verifier

from .conftest import start_platform, traversable_state_dir

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from start_platform(tmp_path_factory, "proxied", access_mode="proxied", workers=2)


def _https(
    platform: LocalPlatform,
    path: str,
    *,
    auth: tuple[str, str] | None = None,
    host: str | None = None,
    method: str = "GET",
    body: dict[str, object] | None = None,
) -> tuple[int, str]:
    env = platform.client_env()
    url = env["MLFLOW_TRACKING_URI"] + path
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https to our own server
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    if host is not None:
        request.add_header("Host", host)
    context = ssl.create_default_context(cafile=env["MLFLOW_TRACKING_SERVER_CERT_PATH"])
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _admin(platform: LocalPlatform) -> tuple[str, str]:
    env = platform.client_env()
    return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]


# -- rendered configuration, accepted by the real programs -----------------------------------


def test_every_rendered_postgres_parameter_is_read_back(platform: LocalPlatform) -> None:
    tuning = target.postgres_tuning(platform.options)
    expected = local_postgres_settings(render_postgres_parameters(tuning))
    assert "ssl" in expected and "rds.force_ssl" not in expected
    with psycopg2.connect(**platform.database_params("postgres")) as connection, connection.cursor() as cursor:
        for name, value in expected.items():
            cursor.execute("SELECT setting, source FROM pg_settings WHERE name = %s", (name,))
            row = cursor.fetchone()
            assert row is not None, f"{name} is not a PostgreSQL {platform.metadata()['versions']} parameter"
            assert row == (value, "configuration file"), f"{name}: rendered {value!r}, server has {row}"
            cursor.execute(f"SHOW {name}")  # the check: SHOW accepts every name
            assert cursor.fetchone() is not None


def test_postgres_refuses_connections_without_tls(platform: LocalPlatform) -> None:
    params = {**platform.database_params("postgres"), "sslmode": "disable"}
    params.pop("sslrootcert")
    with pytest.raises(psycopg2.OperationalError, match="no encryption"):
        psycopg2.connect(**params)


def test_app_role_has_least_privilege_and_our_scram_verifier(platform: LocalPlatform) -> None:
    app = platform.database_params("mlflow", role="app")
    with psycopg2.connect(**platform.database_params("postgres")) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolpassword FROM pg_authid WHERE rolname = %s",
            (app["user"],),
        )
        superuser, createdb, createrole, verifier = cursor.fetchone()
    assert (superuser, createdb, createrole) == (False, False, False)
    secrets = json.loads((platform.state_dir / "secrets.json").read_text())
    assert verifier == scram_sha256_verifier(secrets["db_app_password"], base64.b64decode(secrets["db_app_scram_salt"]))
    connection = psycopg2.connect(**app)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM experiments")  # DML on migrated tables works
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cursor.execute("CREATE TABLE intruder (id int)")
    finally:
        connection.close()


def test_pgbouncer_runs_its_rendered_ini_and_verifies_postgres_tls(platform: LocalPlatform) -> None:
    ini = (platform.state_dir / "svc" / "pgbouncer" / "pgbouncer.ini").read_text()
    assert "pool_mode = transaction" in ini and "auth_type = scram-sha-256" in ini
    assert "server_tls_sslmode = verify-full" in ini
    version = str(platform.metadata()["versions"]["pgbouncer"])  # type: ignore[index]
    assert f"PgBouncer {version}" in ini
    assert ("max_prepared_statements" in ini) == (tuple(map(int, version.split("."))) >= (1, 21, 0))
    handle = platform.component("pgbouncer")
    assert handle.state == "running" and handle.pid is not None
    cmdline = Path(f"/proc/{handle.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[1].decode().endswith("pgbouncer.ini")
    for database in ("mlflow", "mlflow_auth"):
        connection = psycopg2.connect(**platform.database_params(database, role="app", via_pgbouncer=True))
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                assert cursor.fetchone() == (True,), "PgBouncer's server connection must be TLS"
        finally:
            connection.close()


def test_nginx_accepts_its_rendered_config(platform: LocalPlatform) -> None:
    result = platform.nginx_config_test()
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr


# -- the edge: TLS, redirect, authentication, host check -------------------------------------


def test_plain_http_only_redirects_to_https(platform: LocalPlatform) -> None:
    port = platform.metadata()["ports"]["http"]  # type: ignore[index]
    https_port = platform.metadata()["ports"]["https"]  # type: ignore[index]

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as error:
        opener.open(f"http://localhost:{port}/api/2.0/mlflow/experiments/search", timeout=10)
    assert error.value.code == 308
    assert error.value.headers["Location"] == f"https://localhost:{https_port}/api/2.0/mlflow/experiments/search"


def test_authentication_is_required_and_the_legacy_default_is_refused(platform: LocalPlatform) -> None:
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    assert _https(platform, path)[0] == 401
    assert _https(platform, path, auth=("admin", "password1234"))[0] == 401
    assert _https(platform, path, auth=("admin", "wrong-password-123"))[0] == 401
    assert _https(platform, path, auth=_admin(platform))[0] == 200
    assert _https(platform, "/health")[0] == 200


def test_unknown_host_header_is_rejected_but_probes_pass(platform: LocalPlatform) -> None:
    port = platform.component("mlflow").port
    for path, expected in (("/api/2.0/mlflow/experiments/search", 403), ("/health", 200)):
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": "evil.example"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        assert status == expected, path


def test_model_version_sources_outside_the_artifact_store_are_refused(platform: LocalPlatform) -> None:
    admin = _admin(platform)
    assert (
        _https(
            platform,
            "/api/2.0/mlflow/registered-models/create",
            auth=admin,
            method="POST",
            body={"name": "source-check"},
        )[0]
        == 200
    )
    status, body = _https(
        platform,
        "/api/2.0/mlflow/model-versions/create",
        auth=admin,
        method="POST",
        body={"name": "source-check", "source": "file:///etc/"},
    )
    assert status == 400 and "Invalid model version source" in body


# -- the client workflow ---------------------------------------------------------------------


def test_client_logs_run_metric_artifact_and_model_through_tls(
    platform: LocalPlatform, run_client: Callable[[LocalPlatform, str], dict[str, object]]
) -> None:
    env = platform.client_env()
    assert not any(key.startswith("AWS_") or key == "MLFLOW_S3_ENDPOINT_URL" for key in env), "proxied: no S3 access"
    result = run_client(platform, "proxied-smoke")
    assert result["metrics"] == {"loss": 0.25}
    assert result["params"] == {"alpha": "0.5"}
    assert result["artifacts"] == ["notes.txt"]
    assert result["artifact_body"] == "artifact body"
    assert str(result["artifact_uri"]).startswith("mlflow-artifacts:/")
    assert str(result["model_version_source"]).startswith("models:/m-")
    assert result["prediction"] == [3, 4]
    # The server stored the artifact in the bucket, under the configured prefix.
    s3 = platform.s3_access()
    client = platform.s3_client()
    key = f"mlflow/{result['experiment_id']}/{result['run_id']}/artifacts/notes.txt"
    assert client.get_object(Bucket=s3["bucket"], Key=key)["Body"].read() == b"artifact body"


def test_bucket_carries_the_hardened_settings(platform: LocalPlatform) -> None:
    s3 = platform.s3_access()
    client = platform.s3_client()
    bucket = s3["bucket"]
    assert client.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    block = client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rule = client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    rules = {r["ID"] for r in client.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]}
    assert rules == {"abort-incomplete-multipart-uploads", "expire-noncurrent-versions"}
    with pytest.raises(Exception, match=r"(?i)ssl|certificate"):
        boto3.client(
            "s3",
            endpoint_url=s3["endpoint_url"],
            region_name=s3["region"],
            aws_access_key_id="x",
            aws_secret_access_key="y",
        ).list_buckets()  # public CAs only


# -- files, lifecycle, errors ----------------------------------------------------------------


def test_env_file_is_private_and_complete(platform: LocalPlatform) -> None:
    env_file = platform.state_dir / "mlflow.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    env = platform.client_env()
    https_port = platform.metadata()["ports"]["https"]  # type: ignore[index]
    assert env["MLFLOW_TRACKING_URI"] == f"https://localhost:{https_port}"
    assert env["MLFLOW_TRACKING_USERNAME"] == "admin" and len(env["MLFLOW_TRACKING_PASSWORD"]) >= 12
    assert Path(env["MLFLOW_TRACKING_SERVER_CERT_PATH"]) == platform.state_dir / "ca" / "ca.crt"
    assert env["MLFLOW_TRACKING_SERVER_CERT_PATH"] in (platform.state_dir / "mlflow.env").read_text()
    ca = Path(env["MLFLOW_TRACKING_SERVER_CERT_PATH"]).read_text().strip()
    assert ca in Path(env["REQUESTS_CA_BUNDLE"]).read_text()
    for secret in ("secrets.json", "run/plan.json", "mlflow/auth.ini", "mlflow/server.pgpass"):
        assert stat.S_IMODE((platform.state_dir / secret).stat().st_mode) == 0o600, secret


def test_secrets_never_reach_logs_or_argv(platform: LocalPlatform) -> None:
    secrets = json.loads((platform.state_dir / "secrets.json").read_text())
    names = (
        "admin_password",
        "flask_secret_key",
        "db_superuser_password",
        "db_app_password",
        "pgbouncer_stats_password",
    )
    values = [secrets[k] for k in names]
    for log in (platform.state_dir / "logs").glob("*.log"):
        text = log.read_text(errors="replace")
        assert not any(value in text for value in values), log.name
    for handle in platform.components().values():
        if handle.pid is not None:
            cmdline = Path(f"/proc/{handle.pid}/cmdline").read_bytes().decode(errors="replace")
            assert not any(value in cmdline for value in values), handle.name


def test_start_is_idempotent(platform: LocalPlatform) -> None:
    before = {name: h.pid for name, h in platform.components().items()}
    began = time.monotonic()
    info = platform.start()
    assert time.monotonic() - began < 10
    assert info.url == platform.client_env()["MLFLOW_TRACKING_URI"]
    assert {name: h.pid for name, h in platform.components().items()} == before


def test_busy_port_is_a_clear_error(platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> None:
    busy = int(platform.metadata()["ports"]["https"])  # type: ignore[index]
    other = LocalPlatform(
        PlatformOptions(state_dir=traversable_state_dir(tmp_path_factory, "busy"), ports={"https": busy})
    )
    with pytest.raises(PlatformError, match=f"port {busy} .* already in use"):
        other.start()


def test_missing_program_is_a_one_line_error_naming_the_package(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "localplatform",
            "up",
            "--state-dir",
            str(tmp_path / "x"),
            "--pg-bin-dir",
            str(tmp_path / "no-postgres"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(context.PROJECT_ROOT),
        env={**os.environ, "PYTHONPATH": str(context.PROJECT_ROOT)},
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "apt-get install -y postgresql" in result.stderr


def test_admission_limit_answers_the_excess_with_a_retryable_503_and_clients_get_through(
    platform: LocalPlatform,
) -> None:
    """More simultaneous ``log_batch`` requests than the pod admits: without retries some get
    nginx's 503 (no Retry-After, so clients keep their exponential backoff); with MLflow's
    standard retries every request gets through and every metric is stored once."""
    import threading

    from mlflow import MlflowClient
    from mlflow.entities import Metric

    requests_at_once = 2 * platform.options.workers * platform.options.in_flight_per_worker
    env = platform.client_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        client = MlflowClient()
        experiment = client.create_experiment(f"admission-{time.time_ns()}")
        runs = [client.create_run(experiment).info.run_id for _ in range(requests_at_once)]
        metrics = [{"key": f"k{j}", "value": 1.0, "timestamp": 1, "step": 0} for j in range(500)]

        def raw(run_id: str, outcome: list[tuple[int, str, str | None]], gate: threading.Barrier) -> None:
            gate.wait()
            request = urllib.request.Request(  # noqa: S310 - https to our own server
                env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/runs/log-batch",
                data=json.dumps({"run_id": run_id, "metrics": metrics}).encode(),
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            token = base64.b64encode(":".join(_admin(platform)).encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
            context = ssl.create_default_context(cafile=env["MLFLOW_TRACKING_SERVER_CERT_PATH"])
            try:
                with urllib.request.urlopen(request, timeout=120, context=context) as response:  # noqa: S310
                    outcome.append((int(response.status), "", response.headers.get("Retry-After")))
            except urllib.error.HTTPError as error:
                outcome.append((error.code, error.read().decode(), error.headers.get("Retry-After")))

        def at_once(body: Callable[[int], None]) -> None:
            threads = [threading.Thread(target=body, args=(i,)) for i in range(requests_at_once)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(300)

        outcome: list[tuple[int, str, str | None]] = []
        gate = threading.Barrier(requests_at_once)
        at_once(lambda i: raw(runs[i], outcome, gate))
        statuses = sorted(status for status, _, _ in outcome)
        refused = [(body, retry_after) for status, body, retry_after in outcome if status == 503]
        assert len(outcome) == requests_at_once and set(statuses) == {200, 503}, statuses
        assert all(json.loads(body)["error_code"] == "TEMPORARILY_UNAVAILABLE" for body, _ in refused)
        assert all(retry_after is None for _, retry_after in refused)

        # The same burst through MLflow's client (its default retries): nobody fails.
        failures: list[BaseException] = []
        retried_runs = [client.create_run(experiment).info.run_id for _ in range(requests_at_once)]
        gate = threading.Barrier(requests_at_once)

        def with_retries(i: int) -> None:
            gate.wait()
            try:
                client.log_batch(retried_runs[i], metrics=[Metric(m["key"], 1.0, 1, 0) for m in metrics])
            except BaseException as error:
                failures.append(error)

        at_once(with_retries)
        assert failures == []
        stored = {len(client.get_run(run).data.metrics) for run in retried_runs}
        assert stored == {500}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_killed_server_is_restarted_and_serves_again(platform: LocalPlatform) -> None:
    for name in ("pgbouncer", "mlflow"):
        handle = platform.component(name)
        restarts = handle.restarts
        old = handle.kill()
        handle.wait_for("running", 180, other_than_pid=old)
        assert handle.restarts == restarts + 1
    assert _https(platform, "/api/2.0/mlflow/experiments/search?max_results=1", auth=_admin(platform))[0] == 200


def test_status_cli_reports_every_component(platform: LocalPlatform) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "localplatform", "status", "--state-dir", str(platform.state_dir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(context.PROJECT_ROOT),
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("postgres", "pgbouncer", "s3", "mlflow", "nginx", "db-bootstrap"):
        assert name in result.stdout
    assert "platform: ready" in result.stdout

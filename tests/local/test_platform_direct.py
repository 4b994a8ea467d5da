"""The other options: *direct* artifact access (clients use S3 themselves) and no PgBouncer
(the server connects to PostgreSQL with verify-full), one worker; plus crash recovery of the
database, holding a component stopped, and ``down``."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from localplatform import LocalPlatform, context, target
from localplatform.status import is_alive, read_status
from rendering.postgres import max_connections_for

from .conftest import start_platform

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from start_platform(
        tmp_path_factory, "direct", traversable=False, access_mode="direct", pooler="direct", workers=1
    )


def test_service_files_are_relocated_when_the_state_dir_is_unreachable(platform: LocalPlatform) -> None:
    """pytest's base temp dir is 0700: as root, the service user cannot enter it."""
    if os.geteuid() != 0:
        assert platform.layout.svc_root is None
        return
    assert platform.layout.svc_root is not None
    assert platform.layout.svc_link.resolve() == platform.layout.svc_root
    owner = platform.layout.svc_root.stat().st_uid
    assert owner != 0 and (platform.layout.svc_root / "postgres" / "data" / "PG_VERSION").exists()
    assert stat.S_IMODE(platform.state_dir.stat().st_mode) == 0o700


def test_direct_mode_client_writes_to_s3_itself(
    platform: LocalPlatform, run_client: Callable[[LocalPlatform, str], dict[str, object]]
) -> None:
    env = platform.client_env()
    assert env["MLFLOW_S3_ENDPOINT_URL"].startswith("https://127.0.0.1:")
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"] and env["AWS_CA_BUNDLE"]
    result = run_client(platform, "direct-smoke")
    assert result["metrics"] == {"loss": 0.25}
    assert result["artifact_body"] == "artifact body"
    assert str(result["artifact_uri"]).startswith("s3://mlflow-local-artifacts/mlflow/")
    assert result["prediction"] == [3, 4]


def test_without_pgbouncer_the_server_uses_tls_to_postgres(platform: LocalPlatform) -> None:
    assert "pgbouncer" not in platform.components()
    with psycopg2.connect(**platform.database_params("postgres")) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) "
            "WHERE a.application_name IN ('mlflow-server', 'mlflow-auth')"
        )
        rows = cursor.fetchall()
        cursor.execute("SHOW max_connections")
        (max_connections,) = cursor.fetchone()
    assert {name for name, _ in rows} == {"mlflow-server", "mlflow-auth"}
    assert all(ssl for _, ssl in rows)
    tuning = target.postgres_tuning(platform.options)
    assert int(max_connections) == max_connections_for(tuning) >= target.required_max_connections(platform.options)


def test_killed_database_is_restarted_and_the_server_recovers(
    platform: LocalPlatform, run_client: Callable[[LocalPlatform, str], dict[str, object]]
) -> None:
    handle = platform.component("postgres")
    old = handle.kill()
    handle.wait_for("running", 120, other_than_pid=old)
    assert handle.restarts >= 1
    assert run_client(platform, "after-db-restart")["metrics"] == {"loss": 0.25}


def test_a_stopped_component_stays_stopped_until_started(platform: LocalPlatform) -> None:
    handle = platform.component("nginx")
    port = handle.port
    assert port is not None
    handle.stop()
    assert handle.pid is None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    handle.start()
    socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_down_stops_everything_it_started(platform: LocalPlatform) -> None:
    before = read_status(platform.layout.status_file)
    assert before is not None
    pids = [(c.pid, c.start_time) for c in before.components.values() if c.pid]
    assert pids and before.supervisor_pid
    result = subprocess.run(
        [sys.executable, "-m", "localplatform", "down", "--state-dir", str(platform.state_dir)],
        capture_output=True,
        text=True,
        check=False,
        cwd=str(context.PROJECT_ROOT),
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(context.PROJECT_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "stopped:" in result.stdout
    assert not any(is_alive(pid, start) for pid, start in pids)
    assert not is_alive(before.supervisor_pid, before.supervisor_start_time)
    assert platform.status().state == "stopped"
    assert not Path(f"/proc/{before.supervisor_pid}").exists() or not is_alive(
        before.supervisor_pid, before.supervisor_start_time
    )

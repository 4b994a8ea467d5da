"""Metrics and garbage collection on the local platform shared by ``tests/ops``.

* MLflow's ``/metrics`` through the nginx TLS edge: served to the admin, refused without
  credentials (401), refused to a non-admin user (403: basic-auth fails closed on routes without
  a permission rule, which is why the scraper uses an admin login — docs/observability.md), and
  refused with a Host header outside ``--allowed-hosts``.
* PgBouncer pool metrics under the sidecar exporter's names.
* ``mlflow gc`` as the CronJob runs it (``rendering.gc``): a run deleted longer ago than the age
  loses its S3 artifacts and its row; a live run and a recently deleted run keep theirs.
"""

from __future__ import annotations

import time
import urllib.request
import uuid
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform
from localplatform.__main__ import main as localplatform_main
from localplatform.errors import PlatformError
from localplatform.gc import gc_launch, run_gc
from localplatform.secrets_store import load_or_create
from rendering.names import ADMIN_USERNAME

from .conftest import unique

pytestmark = pytest.mark.timeout(600)

DAY_MS = 24 * 3600 * 1000


def _base(platform: LocalPlatform) -> str:
    return str(platform.metadata()["url"])


def _admin(platform: LocalPlatform) -> tuple[str, str]:
    return ADMIN_USERNAME, load_or_create(platform.layout.secrets_file).admin_password


def _get(platform: LocalPlatform, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(_base(platform) + path, verify=str(platform.layout.ca_cert), timeout=30, **kwargs)


def test_mlflow_metrics_need_admin_credentials_and_an_allowed_host(ops_platform: LocalPlatform):
    admin = _admin(ops_platform)
    # Some traffic first, so request metrics exist.
    assert _get(ops_platform, "/api/2.0/mlflow/experiments/search?max_results=1", auth=admin).status_code == 200

    served = _get(ops_platform, "/metrics", auth=admin)
    assert served.status_code == 200, served.text[:300]
    assert "mlflow_http_request_total" in served.text
    assert "mlflow_http_request_duration_seconds_bucket" in served.text

    anonymous = _get(ops_platform, "/metrics")
    assert anonymous.status_code == 401
    assert "mlflow_http_request" not in anonymous.text

    wrong_password = _get(ops_platform, "/metrics", auth=(ADMIN_USERNAME, "not-the-password-at-all"))
    assert wrong_password.status_code == 401

    foreign = _get(ops_platform, "/metrics", auth=admin, headers={"Host": "metrics.attacker.example"})
    assert foreign.status_code == 403
    assert "Invalid Host header" in foreign.text
    assert "mlflow_http_request" not in foreign.text


def test_a_non_admin_user_cannot_read_mlflow_metrics(ops_platform: LocalPlatform):
    """The finding behind the scraper's login: MLflow's basic-auth has no permission rule for
    /metrics and fails closed (MLFLOW_BASIC_AUTH_FAIL_CLOSED defaults to true in 3.17)."""
    username, password = unique("scraper"), uuid.uuid4().hex
    created = requests.post(
        _base(ops_platform) + "/api/2.0/mlflow/users/create",
        json={"username": username, "password": password},
        auth=_admin(ops_platform),
        verify=str(ops_platform.layout.ca_cert),
        timeout=30,
    )
    assert created.status_code == 200, created.text
    refused = _get(ops_platform, "/metrics", auth=(username, password))
    assert refused.status_code == 403
    assert "mlflow_http_request" not in refused.text
    # The same user is a valid login (not a credentials problem).
    assert _get(ops_platform, f"/api/2.0/mlflow/users/get?username={username}", auth=(username, password)).ok


def test_pgbouncer_pool_metrics_use_the_sidecar_exporters_names(ops_platform: LocalPlatform):
    ports = ops_platform.metadata()["ports"]
    assert isinstance(ports, dict)
    url = f"http://127.0.0.1:{ports['pgbouncer-metrics']}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    assert "pgbouncer_up 1.0" in text
    for metric in (
        "pgbouncer_pools_client_active_connections",
        "pgbouncer_pools_client_waiting_connections",
        "pgbouncer_pools_server_active_connections",
        "pgbouncer_pools_server_idle_connections",
        "pgbouncer_pools_client_maxwait_seconds",
    ):
        # Both pooled databases, as the application role: the pools the plan sized.
        assert f'{metric}{{database="mlflow",user="mlflow"}}' in text, metric
    assert 'database="mlflow_auth",user="mlflow"' in text


def _artifact_keys(platform: LocalPlatform, run: Any) -> list[str]:
    location = str(run.info.artifact_uri)
    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    listed = platform.s3_client().list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/")
    return [item["Key"] for item in listed.get("Contents", [])]


def test_gc_removes_only_runs_deleted_longer_ago_than_the_age(ops_platform: LocalPlatform, client: Any):
    import psycopg2
    from mlflow.exceptions import MlflowException

    experiment = client.create_experiment(unique("ops-gc"))
    runs = {}
    for label in ("live", "deleted-long-ago", "deleted-recently"):
        run = client.create_run(experiment, run_name=label)
        client.log_text(run.info.run_id, f"{label} artifact", "notes/readme.txt")
        client.set_terminated(run.info.run_id)
        runs[label] = client.get_run(run.info.run_id)
        assert _artifact_keys(ops_platform, runs[label]), label
    client.delete_run(runs["deleted-long-ago"].info.run_id)
    client.delete_run(runs["deleted-recently"].info.run_id)
    # Two days ago, as far as gc can tell (deleted_time is what --older-than compares).
    with psycopg2.connect(**ops_platform.database_params("mlflow")) as connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE runs SET deleted_time = deleted_time - %s WHERE run_uuid = %s",
            (2 * DAY_MS, runs["deleted-long-ago"].info.run_id),
        )
        assert cursor.rowcount == 1
    connection.close()

    argv = gc_launch(ops_platform, "1d").argv
    assert argv[argv.index("--older-than") + 1] == "1d"
    # Direct mode: gc talks to the database (through PgBouncer) and S3, never to the server.
    backend = argv[argv.index("--backend-store-uri") + 1]
    assert backend.startswith("postgresql+psycopg2://mlflow@127.0.0.1:")
    assert argv[argv.index("--tracking-uri") + 1] == backend
    began = time.monotonic()
    run_gc(ops_platform, "1d")
    print(f"mlflow gc took {time.monotonic() - began:.1f}s")

    assert _artifact_keys(ops_platform, runs["deleted-long-ago"]) == []
    with pytest.raises(MlflowException):
        client.get_run(runs["deleted-long-ago"].info.run_id)
    assert _artifact_keys(ops_platform, runs["live"])
    assert client.get_run(runs["live"].info.run_id).info.lifecycle_stage == "active"
    assert _artifact_keys(ops_platform, runs["deleted-recently"])
    assert client.get_run(runs["deleted-recently"].info.run_id).info.lifecycle_stage == "deleted"


def test_gc_cli_refuses_a_bad_age_in_one_line(ops_platform: LocalPlatform, capsys: pytest.CaptureFixture[str]):
    code = localplatform_main(["gc", "--state-dir", str(ops_platform.state_dir), "--older-than", "soon"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert err[0].startswith("error: --older-than:") and "30d" in err[0]
    with pytest.raises(PlatformError, match="older-than"):
        gc_launch(ops_platform, "0d")

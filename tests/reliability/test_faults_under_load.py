"""Faults under load: while several MLflow clients log metrics with ``log_batch`` (MLflow's own
HTTP retries, nothing of ours), the MLflow server is killed with SIGKILL, PgBouncer is
terminated and PostgreSQL gets a fast shutdown. The supervisor brings each back; the clients
finish; afterwards every metric whose request was acknowledged (HTTP 200) is in the tracking
database exactly once, and the recovery time of each fault is reported (printed and written to
``test-artifacts/reliability-faults.json``).

Why "exactly once" is the right bar: a retried ``log_batch`` may reach a server that already
committed the first attempt. MLflow's metric key is (run, key, timestamp, step, value), and its
store skips metrics it already has, so a retry of the same batch adds nothing. Each client
logs every (key, step) once, with a fixed timestamp and value, so one row per acknowledged
(run, key, step) is both the lower bound (nothing lost) and the upper bound (nothing doubled).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform
from localplatform.backup import TRACKING_DATABASE, query
from tests.integration.conftest import Edge, client_environment

pytestmark = pytest.mark.timeout(900)

CLIENTS = 4
KEYS_PER_BATCH = 10
MAX_BATCHES_PER_CLIENT = 1500
"""A bound, not a target: the clients stop when the faults are over (a few hundred each)."""
MIN_BATCHES_PER_CLIENT = 30
"""After the faults the clients go on until each has this many acknowledged batches (bounded)."""
SETTLE_S = 3.0
"""Normal load between faults and after the last one."""
RECOVERY_TIMEOUT_S = 240.0
POOLER_RETRY_GAP_S = 10.0
"""Measured: 14 s between PostgreSQL accepting connections again and the platform answering,
with PgBouncer's default server_login_retry of 15 s; about 1-3 s with the rendered 2 s."""
RETRY_ENV = {
    # MLflow's standard client retries (urllib3 Retry on connection errors and 429/5xx, POST
    # included): waits of 0, 2, 4, ... 128 s (+ jitter), about 4 minutes in all, so a client
    # outlasts the slowest recovery below; each attempt may take up to 60 s.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "8",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


@dataclass(frozen=True)
class Fault:
    component: str
    signal: int
    description: str


FAULTS = (
    Fault("mlflow", signal.SIGKILL, "kill -9 of the MLflow server (uvicorn master and its workers)"),
    Fault("pgbouncer", signal.SIGTERM, "PgBouncer terminated (the pooler restarts under the server)"),
    Fault("postgres", signal.SIGINT, "PostgreSQL fast shutdown (SIGINT), then restarted"),
)


@dataclass
class ClientLog:
    run_id: str
    acknowledged: set[tuple[str, int]] = field(default_factory=set)
    attempted: set[tuple[str, int]] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    slowest_batch_s: float = 0.0


@dataclass
class FaultReport:
    component: str
    description: str
    restarts_before: int
    restarts_after: int
    process_back_s: float
    """From the fault until the supervisor reports a new process running."""
    recovery_s: float
    """From the fault until an authenticated request that reads the database succeeds through nginx."""


def client_loop(client: Any, log: ClientLog, index: int, stop: threading.Event) -> None:
    from mlflow.entities import Metric

    for step in range(MAX_BATCHES_PER_CLIENT):
        if stop.is_set():
            return
        batch = [
            Metric(key=f"loss_{k}", value=float(step * 10 + k), timestamp=1_700_000_000_000 + step, step=step)
            for k in range(KEYS_PER_BATCH)
        ]
        points = {(m.key, step) for m in batch}
        log.attempted |= points
        began = time.monotonic()
        try:
            client.log_batch(log.run_id, metrics=batch, synchronous=True)
        except Exception as error:  # a client that gave up: recorded, the test fails on it
            log.failures.append(f"client {index} step {step}: {type(error).__name__}: {str(error)[:300]}")
            continue
        log.slowest_batch_s = max(log.slowest_batch_s, time.monotonic() - began)
        log.acknowledged |= points


def database_answers(edge: Edge, run_id: str) -> bool:
    """One authenticated request through nginx, the server and PgBouncer to PostgreSQL."""
    try:
        response = edge.as_admin("GET", "/api/2.0/mlflow/runs/get", params={"run_id": run_id})
    except requests.RequestException:
        return False
    return response.status_code == 200


def inject(platform: LocalPlatform, edge: Edge, fault: Fault, probe_run: str) -> FaultReport:
    handle = platform.component(fault.component)
    handle.wait_for("running", 60)
    before = handle.restarts
    began = time.monotonic()
    old_pid = handle.kill(fault.signal)
    handle.wait_for("running", RECOVERY_TIMEOUT_S, other_than_pid=old_pid)
    back = time.monotonic() - began
    deadline = began + RECOVERY_TIMEOUT_S
    while not database_answers(edge, probe_run):
        assert time.monotonic() < deadline, f"{fault.component}: the platform did not recover in {RECOVERY_TIMEOUT_S}s"
        time.sleep(0.25)
    recovered = time.monotonic() - began
    return FaultReport(fault.component, fault.description, before, handle.restarts, round(back, 2), round(recovered, 2))


@pytest.fixture
def retrying_client(platform: LocalPlatform) -> Iterator[Any]:
    with client_environment(platform):
        os.environ.update(RETRY_ENV)
        from mlflow.tracking import MlflowClient

        yield MlflowClient()


def metric_rows(platform: LocalPlatform, run_ids: list[str]) -> dict[tuple[str, str, int], int]:
    """(run, key, step) -> number of rows, straight from the tracking database."""
    rows = query(
        platform,
        TRACKING_DATABASE,
        "SELECT run_uuid, key, step, count(*) FROM metrics WHERE run_uuid = ANY(%s) GROUP BY 1, 2, 3",
        (run_ids,),
    )
    return {(str(r), str(k), int(s)): int(n) for r, k, s, n in rows}


def latest_steps(platform: LocalPlatform, run_ids: list[str]) -> dict[tuple[str, str], int]:
    rows = query(
        platform,
        TRACKING_DATABASE,
        "SELECT run_uuid, key, step FROM latest_metrics WHERE run_uuid = ANY(%s)",
        (run_ids,),
    )
    return {(str(r), str(k)): int(s) for r, k, s in rows}


def test_acknowledged_metrics_survive_server_pooler_and_database_restarts(
    platform: LocalPlatform, edge: Edge, retrying_client: Any, artifacts: Path
) -> None:
    experiment_id = retrying_client.create_experiment(f"faults-under-load-{int(time.time())}")
    logs = [ClientLog(retrying_client.create_run(experiment_id).info.run_id) for _ in range(CLIENTS)]
    stop = threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(retrying_client, log, i, stop), name=f"client-{i}", daemon=True)
        for i, log in enumerate(logs)
    ]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    warm = time.monotonic() + 60
    while min(len(log.acknowledged) for log in logs) < 10 * KEYS_PER_BATCH:
        assert time.monotonic() < warm, "the clients did not get going"
        time.sleep(0.2)
    reports = []
    for fault in FAULTS:
        reports.append(inject(platform, edge, fault, logs[0].run_id))
        time.sleep(SETTLE_S)
    enough = time.monotonic() + 120
    while min(len(log.acknowledged) for log in logs) < MIN_BATCHES_PER_CLIENT * KEYS_PER_BATCH:
        if time.monotonic() > enough:
            break  # asserted below, after the clients were stopped and joined
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=RECOVERY_TIMEOUT_S + 60)
    load_s = time.monotonic() - began
    assert not any(thread.is_alive() for thread in threads), "a client did not finish"

    run_ids = [log.run_id for log in logs]
    rows = metric_rows(platform, run_ids)
    acknowledged = {(log.run_id, key, step) for log in logs for key, step in log.acknowledged}
    attempted = {(log.run_id, key, step) for log in logs for key, step in log.attempted}
    lost = sorted(acknowledged - set(rows))
    duplicated = {point: n for point, n in rows.items() if n != 1}
    phantom = sorted(set(rows) - attempted)
    latest = latest_steps(platform, run_ids)
    summary = {
        "clients": CLIENTS,
        "metrics_per_batch": KEYS_PER_BATCH,
        "batches_acknowledged": len(acknowledged) // KEYS_PER_BATCH,
        "metrics_acknowledged": len(acknowledged),
        "metric_rows_in_database": sum(rows.values()),
        "acknowledged_metrics_lost": len(lost),
        "duplicated_rows": len(duplicated),
        "client_failures": sum(len(log.failures) for log in logs),
        "slowest_batch_s": round(max(log.slowest_batch_s for log in logs), 2),
        "load_duration_s": round(load_s, 1),
        "faults": [asdict(report) for report in reports],
    }
    (artifacts / "reliability-faults.json").write_text(json.dumps(summary, indent=2) + "\n")
    print("\nfaults under load:", json.dumps(summary, indent=2))

    assert [log.failures for log in logs] == [[] for _ in logs], "every client finished with its retries"
    assert lost == [], f"{len(lost)} acknowledged metrics are missing, e.g. {lost[:5]}"
    assert duplicated == {}, f"rows logged more than once: {list(duplicated.items())[:5]}"
    assert phantom == [], f"rows nobody sent: {phantom[:5]}"
    assert min(len(log.acknowledged) for log in logs) >= MIN_BATCHES_PER_CLIENT * KEYS_PER_BATCH, "the load was real"
    for log in logs:
        last = max(step for _, step in log.acknowledged)
        assert all(latest[(log.run_id, f"loss_{k}")] == last for k in range(KEYS_PER_BATCH))
    for report in reports:
        assert report.restarts_after == report.restarts_before + 1, f"the supervisor restarted {report.component}"
    database = next(r for r in reports if r.component == "postgres")
    assert database.recovery_s - database.process_back_s < POOLER_RETRY_GAP_S, (
        "PgBouncer resumed soon after PostgreSQL was back (its server_login_retry, 15 s by default, is rendered short)"
    )

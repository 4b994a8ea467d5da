"""One generator process of the training-jobs benchmark: its share of the jobs, each in a thread
of its own with its own HTTP session, so one job is one connection and one run, as on a cluster.

Each job's session is built by MLflow's own helper, ``_cached_get_request_session`` in
``mlflow/utils/request_utils.py`` (called through ``__wrapped__``: the cached function would
hand every job in the process the same session and connection pool). So retries, backoff,
jitter, the retried status codes (``_TRANSIENT_FAILURE_RESPONSE_CODES``), Retry-After handling and
TCP keepalive are MLflow's, with the ``mlflow-client`` ConfigMap's retry count and per-attempt
timeout, as ``mlflow/utils/rest_utils.py``'s ``http_request`` passes them. Bodies are
pre-encoded (``jobs_plan``), so the generator's own CPU stays small next to the server's.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from .jobs_plan import (
    ARTIFACT,
    BATCH,
    CREATE,
    END,
    PARAMS,
    JobResult,
    RequestRecord,
    RetryPolicy,
    Scenario,
    batch_body,
    classify,
    metrics_json,
    params_body,
)

ARTIFACT_NAME = "model-summary.json"
ARTIFACT_BYTES = 4096


@dataclass(frozen=True)
class Target:
    url: str
    """nginx's HTTPS endpoint."""
    authorization: str
    """The job user's ``Basic`` header value."""
    ca_file: str
    experiment_id: str
    policy: RetryPolicy


class JobFailed(Exception):
    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


def warm() -> int:
    """Import MLflow's request helpers before the clock starts (a spawned process needs seconds)."""
    import mlflow.utils.request_utils  # noqa: F401

    return os.getpid()


def pause(seconds: float) -> None:
    time.sleep(seconds)


def job_session(policy: RetryPolicy) -> Any:
    from mlflow.utils.request_utils import _TRANSIENT_FAILURE_RESPONSE_CODES, _cached_get_request_session

    builder = _cached_get_request_session.__wrapped__
    session = builder(
        policy.max_retries,
        policy.backoff_factor,
        policy.backoff_jitter,
        _TRANSIENT_FAILURE_RESPONSE_CODES,
        True,  # raise_on_status, as http_request passes it
        os.getpid(),
        respect_retry_after_header=True,  # MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER's default
    )
    session.trust_env = False
    return session


class Job:
    def __init__(self, index: int, target: Target, scenario: Scenario, t0: float, metrics: list[bytes]) -> None:
        self.index = index
        self.target = target
        self.scenario = scenario
        self.t0 = t0
        self.metrics = metrics
        self.result = JobResult(index)
        self.session: Any = None
        self.headers = {"Authorization": target.authorization, "Content-Type": "application/json"}

    def call(self, kind: str, method: str, path: str, body: bytes) -> dict[str, Any]:
        import requests

        started = time.time()
        retries, ok, status, text = self.target.policy.max_retries, False, None, ""
        try:
            response = self.session.request(
                method,
                self.target.url + path,
                data=body,
                headers=self.headers,
                verify=self.target.ca_file,
                timeout=self.target.policy.timeout_s,
            )
            history = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
            retries, status, text = len(history), response.status_code, response.text
            ok = status == 200
        except requests.exceptions.RequestException as error:
            text = str(error)  # the budget ran out (or a request that cannot be retried failed)
        now = time.time()
        self.result.records.append(RequestRecord(kind, started - self.t0, now - started, retries, ok))
        if not ok:
            raise JobFailed(classify(status, text))
        payload: dict[str, Any] = json.loads(text) if text.strip() else {}
        return payload

    def run(self, offset_s: float) -> JobResult:
        self.session = job_session(self.target.policy)
        time.sleep(max(0.0, self.t0 + offset_s - time.time()))
        try:
            self._body()
        except JobFailed as failure:
            self.result.error = failure.label
        except Exception as error:  # a bug here must show up in the report, not kill the thread
            self.result.error = f"generator error: {type(error).__name__}: {error}"
        finally:
            self.session.close()
        return self.result

    def _body(self) -> None:
        scenario, result = self.scenario, self.result
        now_ms = int(time.time() * 1000)
        created = self.call(
            CREATE,
            "POST",
            "/api/2.0/mlflow/runs/create",
            json.dumps(
                {
                    "experiment_id": self.target.experiment_id,
                    "run_name": f"job-{self.index}",
                    "start_time": now_ms,
                    "tags": [{"key": "mlflow.source.name", "value": "mlflowbench.jobs"}],
                }
            ).encode(),
        )
        info = created["run"]["info"]
        run_id, artifact_uri = info["run_id"], info["artifact_uri"]
        self.call(PARAMS, "POST", "/api/2.0/mlflow/runs/log-batch", params_body(run_id, self.index))
        result.logging_started_s = time.time() - self.t0
        for batch in range(scenario.batches):
            time.sleep(scenario.interval_s)  # the training step
            self.call(BATCH, "POST", "/api/2.0/mlflow/runs/log-batch", batch_body(run_id, self.metrics[batch]))
            result.metrics_ok += scenario.metrics_per_batch
            result.last_batch_s = time.time() - self.t0
        self.call(ARTIFACT, "PUT", artifact_path(artifact_uri, ARTIFACT_NAME), b"0" * ARTIFACT_BYTES)
        end = {"run_id": run_id, "status": "FINISHED", "end_time": int(time.time() * 1000)}
        self.call(END, "POST", "/api/2.0/mlflow/runs/update", json.dumps(end).encode())
        result.finished_s = time.time() - self.t0


def artifact_path(artifact_uri: str, name: str) -> str:
    """The proxied-artifact endpoint for a run's ``mlflow-artifacts:`` URI, as MLflow's
    ``HttpArtifactRepository`` resolves it (``mlflow/store/artifact/artifact_repository_registry.py``
    and ``mlflow_artifacts_repo.py``): ``/api/2.0/mlflow-artifacts/artifacts/<path>/<name>``."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != "mlflow-artifacts":
        raise JobFailed(f"artifact URI {artifact_uri.split(':')[0]}: is not proxied (start the platform proxied)")
    return "/api/2.0/mlflow-artifacts/artifacts/" + parsed.path.strip("/") + "/" + name


def generate(target: Target, scenario: Scenario, assignments: list[tuple[int, float]], t0: float) -> list[JobResult]:
    """Run this process's jobs (index, start offset) from ``t0`` (wall clock) and return their results."""
    metrics = [metrics_json(b, per_batch=scenario.metrics_per_batch) for b in range(scenario.batches)]
    jobs = [Job(index, target, scenario, t0, metrics) for index, _ in assignments]
    threads = [
        threading.Thread(target=job.run, args=(offset,), name=f"job-{job.index}", daemon=True)
        for job, (_, offset) in zip(jobs, assignments, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [job.result for job in jobs]

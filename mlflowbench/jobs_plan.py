"""The pure parts of the training-jobs benchmark (``python -m mlflowbench.jobs``): what a job does
and when, the retry budget and MLflow's backoff, the request bodies, how a failure is named,
and how the per-request records become a scenario's figures. No I/O here, so it is unit-tested
(``tests/unit/test_bench_jobs.py``) without a platform.

**The job** is a training loop as MLflow users write it: ``start_run`` (create the run), log the
parameters, then ``batches`` times: train for ``interval_s`` and ``log_batch`` 100 metrics (10 keys
× 10 steps), then log one artifact and end the run. The loop is *closed*: the next training step
starts when ``log_batch`` has returned, as with MLflow's synchronous client. So a slow server
does not pile up requests, it stretches the jobs; that stretch is what the report shows as the
achieved rate against the offered one (the rate the jobs would send if every call returned at
once: ``jobs × 100 / interval_s`` metrics/s).

**Paced** jobs start spread evenly over one interval (job ``i`` of ``n`` at ``i × interval_s / n``),
as jobs submitted over time settle; a **burst** starts them all at the same instant, so their
``log_batch`` calls also arrive together every interval until the server's latency spreads them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from rendering.client import TRAINING_CLIENT_RETRY, ClientRetryBudget

CREATE, PARAMS, BATCH, ARTIFACT, END = "create_run", "log_params", "log_batch", "log_artifact", "end_run"
REQUEST_KINDS = (CREATE, PARAMS, BATCH, ARTIFACT, END)
METRIC_KEYS = 10
PARAM_COUNT = 10
URLLIB3_BACKOFF_MAX_S = 120.0
"""``urllib3.util.Retry.DEFAULT_BACKOFF_MAX`` (urllib3 2.x): no single sleep is longer."""


@dataclass(frozen=True)
class Scenario:
    name: str
    jobs: int
    burst: bool = False
    interval_s: float = 10.0
    batches: int = 12
    """``log_batch`` calls per job: 12 × 10 s is the issue's "every 10 s for 2 minutes"."""
    metrics_per_batch: int = 100

    def start_offsets(self) -> list[float]:
        """Seconds after the scenario's start at which each job calls ``create_run``."""
        if self.burst:
            return [0.0] * self.jobs
        return [i * self.interval_s / self.jobs for i in range(self.jobs)]

    @property
    def requests_per_job(self) -> int:
        return self.batches + 4  # create, params, batches, artifact, end

    @property
    def nominal_job_s(self) -> float:
        return self.batches * self.interval_s

    @property
    def offered_metrics_per_s(self) -> float:
        return self.jobs * self.metrics_per_batch / self.interval_s

    @property
    def offered_requests_per_s(self) -> float:
        return self.jobs * self.requests_per_job / self.nominal_job_s


def scenarios(
    paced: Sequence[int], burst: Sequence[int], interval_s: float = 10.0, batches: int = 12
) -> list[Scenario]:
    """The run's scenarios: each paced size, then each burst size."""
    out = [Scenario(f"{n} paced", n, False, interval_s, batches) for n in paced]
    return out + [Scenario(f"{n} burst", n, True, interval_s, batches) for n in burst]


@dataclass(frozen=True)
class RetryPolicy:
    """What MLflow's client does with a failed request, with the budget of the ``mlflow-client``
    ConfigMap (``rendering.client.TRAINING_CLIENT_RETRY``) and MLflow's own backoff settings."""

    max_retries: int
    timeout_s: int
    backoff_factor: float
    backoff_jitter: float

    def sleeps(self) -> list[float]:
        """The sleep before each retry, without jitter (see :func:`backoff_sleeps`)."""
        return backoff_sleeps(self.max_retries, self.backoff_factor)


def training_job_policy(budget: ClientRetryBudget = TRAINING_CLIENT_RETRY) -> RetryPolicy:
    """The ConfigMap's budget (retries, timeout, jitter) with MLflow's backoff factor, which the
    ConfigMap leaves at MLflow's default (``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR`` 2 in
    ``mlflow/environment_variables.py``); read from MLflow, not copied."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR

    return RetryPolicy(
        max_retries=budget.max_retries,
        timeout_s=budget.timeout_s,
        backoff_factor=float(MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.default),
        backoff_jitter=budget.backoff_jitter_s,
    )


def backoff_sleeps(max_retries: int, factor: float, cap_s: float = URLLIB3_BACKOFF_MAX_S) -> list[float]:
    """Seconds MLflow's client sleeps before retry 1…``max_retries`` of one call, jitter aside.

    MLflow hands the retries to urllib3 (``mlflow/utils/request_utils.py``,
    ``_cached_get_request_session``: ``Retry(total=max_retries, backoff_factor=…,
    backoff_jitter=…, status_forcelist=429/500/502/503/504/408)``). urllib3's
    ``Retry.get_backoff_time`` sleeps 0 after the first error and ``factor × 2^(n-1)`` after the
    ``n``-th consecutive one, plus ``random() × jitter``, capped at ``DEFAULT_BACKOFF_MAX`` (120 s).
    With MLflow's factor 2 and 7 retries: 0, 4, 8, 16, 32, 64, 120 = 244 s of sleeping.
    """
    return [0.0 if n <= 1 else min(cap_s, factor * 2 ** (n - 1)) for n in range(1, max_retries + 1)]


def metrics_json(
    batch: int, keys: int = METRIC_KEYS, per_batch: int = 100, timestamp_ms: int = 1_700_000_000_000
) -> bytes:
    """The ``metrics`` array of a job's ``batch``-th ``log_batch``: ``keys`` keys × the next steps."""
    steps = per_batch // keys
    metrics = [
        {
            "key": f"loss_{k}",
            "value": 1.0 / (1 + batch * steps + s + k),
            "timestamp": timestamp_ms,
            "step": batch * steps + s,
        }
        for s in range(steps)
        for k in range(keys)
    ]
    return json.dumps(metrics, separators=(",", ":")).encode()


def batch_body(run_id: str, metrics: bytes) -> bytes:
    """A ``runs/log-batch`` body from a pre-encoded ``metrics`` array (the run id is known only
    once the run exists; the rest is encoded before the scenario starts)."""
    return b'{"run_id":"' + run_id.encode() + b'","metrics":' + metrics + b"}"


def params_body(run_id: str, job: int) -> bytes:
    params = [{"key": f"param_{i}", "value": str(job * 100 + i)} for i in range(PARAM_COUNT)]
    return json.dumps({"run_id": run_id, "params": params}, separators=(",", ":")).encode()


def classify(status: int | None, text: str) -> str:
    """One label per kind of failure, so the report counts causes rather than messages."""
    gave_up = _between(text, "too many ", " error responses")
    if gave_up:
        return f"gave up after the retry budget (HTTP {gave_up})"
    lowered = text.lower()
    if "read timed out" in lowered or "timeout" in lowered:
        return "timed out (per-attempt timeout)"
    if "remaining connection slots" in lowered or "too many clients" in lowered or "max_client_conn" in lowered:
        return "database connections exhausted"
    if "queuepool" in lowered:
        return "SQLAlchemy pool timeout"
    if status is None:
        return "connection error: " + (text.split(":")[0][:60] if text else "unknown")
    code = _between(text, '"error_code": "', '"') or _between(text, '"error_code":"', '"')
    return f"HTTP {status}" + (f" {code}" if code else "")


def _between(text: str, start: str, end: str) -> str:
    at = text.find(start)
    if at < 0:
        return ""
    stop = text.find(end, at + len(start))
    return text[at + len(start) : stop] if stop >= 0 else ""


@dataclass
class RequestRecord:
    kind: str
    started_s: float
    """Seconds after the scenario's start."""
    latency_s: float
    """What the job waited for this call: every attempt and backoff sleep included."""
    retries: int
    ok: bool


@dataclass
class JobResult:
    index: int
    records: list[RequestRecord] = field(default_factory=list)
    metrics_ok: int = 0
    logging_started_s: float | None = None
    """When the first training step started (after create and params)."""
    last_batch_s: float | None = None
    """When the last accepted ``log_batch`` returned."""
    finished_s: float | None = None
    """When ``end_run`` returned; None for a failed job."""
    error: str | None = None


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class KindFigures:
    requests: int
    failed: int
    retries: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class ScenarioReport:
    scenario: str
    pooler: str
    jobs: int
    failed_jobs: int
    errors: dict[str, int]
    offered_metrics_per_s: float
    achieved_metrics_per_s: float
    offered_requests_per_s: float
    achieved_requests_per_s: float
    retries: int
    requests_retried: int
    by_kind: dict[str, KindFigures]
    job_s_p50: float
    job_s_p99: float
    nominal_job_s: float
    wall_s: float
    pod_cpu_s: float
    """MLflow server + PgBouncer + nginx: what runs in the server pod."""
    postgres_cpu_s: float
    max_postgres_backends: int
    max_pgbouncer_waiting: int = 0
    """PgBouncer's clients waiting for a server connection, summed over its pools (pgbouncer only)."""


def summarize(
    scenario: Scenario,
    pooler: str,
    results: Iterable[JobResult],
    wall_s: float,
    cpu_s: dict[str, float],
    max_backends: int,
    max_waiting: int = 0,
) -> ScenarioReport:
    """A scenario's figures from its jobs' records.

    Achieved rates are per job, then summed: a job's metrics over its logging period (first
    training step to the last accepted ``log_batch``), its requests over its life (``create_run``
    sent to ``end_run`` answered, or to its failure). An instant server gives exactly the offered
    rates, so the ratio is the server's doing and not the jobs' staggered starts.
    """
    jobs = list(results)
    metrics_rate = 0.0
    requests_rate = 0.0
    durations: list[float] = []
    errors: dict[str, int] = {}
    for job in jobs:
        if job.error:
            errors[job.error] = errors.get(job.error, 0) + 1
        if job.logging_started_s is not None and job.last_batch_s is not None and job.metrics_ok:
            metrics_rate += job.metrics_ok / max(job.last_batch_s - job.logging_started_s, scenario.interval_s)
        if job.records:
            first = job.records[0].started_s
            last = max(r.started_s + r.latency_s for r in job.records)
            ok = sum(1 for r in job.records if r.ok)
            requests_rate += ok / max(last - first, scenario.nominal_job_s)
            if job.finished_s is not None:
                durations.append(last - first)
    records = [r for job in jobs for r in job.records]
    by_kind = {}
    for kind in REQUEST_KINDS:
        of_kind = [r for r in records if r.kind == kind]
        if of_kind:
            latencies = [r.latency_s * 1000 for r in of_kind]
            by_kind[kind] = KindFigures(
                requests=len(of_kind),
                failed=sum(1 for r in of_kind if not r.ok),
                retries=sum(r.retries for r in of_kind),
                p50_ms=percentile(latencies, 0.50),
                p99_ms=percentile(latencies, 0.99),
            )
    return ScenarioReport(
        scenario=scenario.name,
        pooler=pooler,
        jobs=len(jobs),
        failed_jobs=sum(1 for job in jobs if job.error),
        errors=errors,
        offered_metrics_per_s=scenario.offered_metrics_per_s,
        achieved_metrics_per_s=metrics_rate,
        offered_requests_per_s=scenario.offered_requests_per_s,
        achieved_requests_per_s=requests_rate,
        retries=sum(r.retries for r in records),
        requests_retried=sum(1 for r in records if r.retries),
        by_kind=by_kind,
        job_s_p50=percentile(durations, 0.50),
        job_s_p99=percentile(durations, 0.99),
        nominal_job_s=scenario.nominal_job_s,
        wall_s=wall_s,
        pod_cpu_s=sum(v for k, v in cpu_s.items() if k != "postgres"),
        postgres_cpu_s=cpu_s.get("postgres", 0.0),
        max_postgres_backends=max_backends,
        max_pgbouncer_waiting=max_waiting,
    )

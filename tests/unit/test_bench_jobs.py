"""The pure parts of ``python -m mlflowbench.jobs``: the schedule, MLflow's backoff as the jobs'
sessions really do it, failure labels, and how records become a scenario's figures."""

from __future__ import annotations

import itertools
import json

import pytest

from mlflowbench import jobs, jobs_load
from mlflowbench.jobs_plan import (
    BATCH,
    CREATE,
    JobResult,
    RequestRecord,
    RetryPolicy,
    Scenario,
    backoff_sleeps,
    batch_body,
    classify,
    metrics_json,
    percentile,
    scenarios,
    summarize,
    training_job_policy,
)
from rendering.client import TRAINING_CLIENT_RETRY


def test_paced_jobs_start_spread_over_one_interval_and_a_burst_at_once():
    paced = Scenario("p", 500)
    offsets = paced.start_offsets()
    assert len(offsets) == 500 and offsets[0] == 0.0
    assert all(b - a == pytest.approx(0.02) for a, b in itertools.pairwise(offsets))
    assert max(offsets) < paced.interval_s
    assert Scenario("b", 500, burst=True).start_offsets() == [0.0] * 500
    assert paced.offered_metrics_per_s == 5000
    assert paced.nominal_job_s == 120  # 12 log_batch calls, 10 s apart: the 2 minutes
    assert paced.offered_requests_per_s == pytest.approx(500 * 16 / 120)
    assert [s.name for s in scenarios([50, 200], [500])] == ["50 paced", "200 paced", "500 burst"]


def test_the_retry_budget_is_the_configmaps():
    policy = training_job_policy()
    assert (policy.max_retries, policy.timeout_s) == (
        TRAINING_CLIENT_RETRY.max_retries,
        TRAINING_CLIENT_RETRY.timeout_s,
    )
    assert TRAINING_CLIENT_RETRY.env() == {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "600",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "10",
    }
    assert (policy.backoff_factor, policy.backoff_jitter) == (2.0, 10.0)  # MLflow 3.17.2's factor, our jitter


def _sleeps_of_a_job_session(policy: RetryPolicy, failures: int) -> list[float]:
    """What the session a job really uses (MLflow's builder) sleeps after each 503."""
    from urllib3.response import HTTPResponse

    retry = jobs_load.job_session(policy).get_adapter("https://x").max_retries
    sleeps = []
    for _ in range(failures):
        retry = retry.increment(method="POST", url="/api/2.0/mlflow/runs/log-batch", response=HTTPResponse(status=503))
        sleeps.append(retry.get_backoff_time())
    return sleeps


def test_backoff_matches_mlflows_session_exactly_without_jitter():
    from urllib3.exceptions import MaxRetryError

    policy = training_job_policy()
    exact = RetryPolicy(policy.max_retries, policy.timeout_s, policy.backoff_factor, 0.0)
    assert backoff_sleeps(7, 2.0) == [0, 4, 8, 16, 32, 64, 120]
    assert _sleeps_of_a_job_session(exact, 7) == exact.sleeps()
    assert sum(exact.sleeps()) == 244  # mlflowops/preflight.py measured 245.6 s for 7 retries
    with pytest.raises(MaxRetryError):  # the 8th failure ends the call: 7 retries, not more
        _sleeps_of_a_job_session(exact, 8)


def test_backoff_with_mlflows_jitter_stays_within_one_second_of_the_formula():
    policy = training_job_policy()
    for _ in range(5):
        for got, base in zip(_sleeps_of_a_job_session(policy, 7), policy.sleeps(), strict=True):
            assert (base == 0 and got == 0) or base <= got <= min(120, base + policy.backoff_jitter)


def test_each_job_has_its_own_session():
    policy = training_job_policy()
    assert jobs_load.job_session(policy) is not jobs_load.job_session(policy)


def test_bodies_are_valid_log_batch_requests_with_advancing_steps():
    first, second = (json.loads(batch_body("r1", metrics_json(b))) for b in (0, 1))
    assert first["run_id"] == "r1" and len(first["metrics"]) == 100
    assert len({m["key"] for m in first["metrics"]}) == 10
    assert max(m["step"] for m in first["metrics"]) < min(m["step"] for m in second["metrics"])


@pytest.mark.parametrize(
    ("status", "text", "label"),
    [
        (
            None,
            "HTTPSConnectionPool: Max retries exceeded (Caused by ResponseError('too many 503 error responses'))",
            "gave up after the retry budget (HTTP 503)",
        ),
        (None, "HTTPSConnectionPool(host='x'): Read timed out. (read timeout=600)", "timed out (per-attempt timeout)"),
        (403, '{"error_code": "PERMISSION_DENIED", "message": "no"}', "HTTP 403 PERMISSION_DENIED"),
        (400, '{"error_code":"INVALID_PARAMETER_VALUE","message":"x"}', "HTTP 400 INVALID_PARAMETER_VALUE"),
        (500, "FATAL: remaining connection slots are reserved", "database connections exhausted"),
        (None, "Connection refused: [Errno 111]", "connection error: Connection refused"),
    ],
)
def test_failures_are_labelled_by_cause(status: int | None, text: str, label: str):
    assert classify(status, text) == label


def _job(index: int, start: float, latency: float, scenario: Scenario, *, fail_after: int | None = None) -> JobResult:
    """A job as the generator records it, with every call taking ``latency`` seconds."""
    job = JobResult(index)
    t = start
    for kind in (CREATE, "log_params"):
        job.records.append(RequestRecord(kind, t, latency, 0, True))
        t += latency
    job.logging_started_s = t
    for batch in range(scenario.batches):
        t += scenario.interval_s
        if fail_after is not None and batch == fail_after:
            job.records.append(RequestRecord(BATCH, t, latency, 7, False))
            job.error = "gave up after the retry budget (HTTP 503)"
            return job
        job.records.append(RequestRecord(BATCH, t, latency, 1 if batch == 0 else 0, True))
        t += latency
        job.metrics_ok += scenario.metrics_per_batch
        job.last_batch_s = t
    for kind in ("log_artifact", "end_run"):
        job.records.append(RequestRecord(kind, t, latency, 0, True))
        t += latency
    job.finished_s = t
    return job


def test_an_instant_server_achieves_the_offered_rates():
    scenario = Scenario("4 paced", 4)
    results = [_job(i, offset, 0.0, scenario) for i, offset in enumerate(scenario.start_offsets())]
    report = summarize(scenario, "pgbouncer", results, 130.0, {"mlflow": 5.0, "nginx": 1.0, "postgres": 2.0}, 7)
    assert report.achieved_metrics_per_s == pytest.approx(report.offered_metrics_per_s)
    assert report.achieved_requests_per_s == pytest.approx(report.offered_requests_per_s)
    assert (report.failed_jobs, report.errors, report.retries, report.requests_retried) == (0, {}, 4, 4)
    assert (report.pod_cpu_s, report.postgres_cpu_s, report.max_postgres_backends) == (6.0, 2.0, 7)
    assert report.job_s_p50 == pytest.approx(120.0)


def test_a_slow_server_stretches_the_jobs_and_failures_are_counted_by_cause():
    scenario = Scenario("2 burst", 2, burst=True)
    slow = _job(0, 0.0, 5.0, scenario)  # each log_batch waits 5 s: 12 × 15 s instead of 12 × 10 s
    failed = _job(1, 0.0, 5.0, scenario, fail_after=3)
    report = summarize(scenario, "direct", [slow, failed], 200.0, {}, 0)
    assert report.failed_jobs == 1
    assert report.errors == {"gave up after the retry budget (HTTP 503)": 1}
    # From the first training step to the last accepted batch's answer: 12 (or 3) × 15 s.
    assert report.achieved_metrics_per_s == pytest.approx(1200 / (12 * 15) + 300 / (3 * 15))
    assert report.achieved_metrics_per_s < report.offered_metrics_per_s
    assert report.by_kind[BATCH].failed == 1 and report.by_kind[BATCH].retries == 2 + 7
    assert report.by_kind[BATCH].p50_ms == pytest.approx(5000)
    assert report.job_s_p50 == pytest.approx(2 * 5 + 12 * 15 + 2 * 5)  # only the finished job counts


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([], 0.5)) == (50, 99, 0.0)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--processes", "9"], "--processes must be from 4 to 8"),
        (["--poolers", "pgpool"], "--poolers: unknown pooler 'pgpool'"),
        (["--paced", "50,x"], "--paced expects comma-separated job counts"),
        (["--paced", "", "--burst", ""], "nothing to run"),
    ],
)
def test_bad_options_are_one_error_line_before_anything_starts(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
):
    assert jobs.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and fragment in err[0], err


def test_mlflow_reads_the_configmaps_retry_budget_as_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a training pod's MLflow client does with the ``mlflow-client`` ConfigMap (envFrom):
    ``mlflow/utils/rest_utils.py`` reads these variables through ``mlflow.environment_variables``
    when it builds its retrying session; a value MLflow cannot parse would fail every job's first
    request."""
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_BACKOFF_JITTER,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    for name, value in TRAINING_CLIENT_RETRY.env().items():
        monkeypatch.setenv(name, value)
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == TRAINING_CLIENT_RETRY.max_retries
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == TRAINING_CLIENT_RETRY.timeout_s
    assert MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get() == TRAINING_CLIENT_RETRY.backoff_jitter_s == 10.0

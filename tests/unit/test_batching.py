"""BatchingMetricLogger with a recording client: size, byte, time and exit flushes; retries,
exhaustion, rejection and background errors — and that no metric is ever lost silently."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE
from mlflow.protos.service_pb2 import LogBatch
from mlflow.utils.proto_json_utils import message_to_json

from mlflowops.batching import (
    MAX_REQUEST_BYTES,
    REQUEST_OVERHEAD_BYTES,
    BatchingMetricLogger,
    MetricLoggingError,
    estimated_bytes,
)

RUN_ID = "0123456789abcdef0123456789abcdef"


def unavailable() -> MlflowException:
    error = MlflowException("service unavailable", error_code=TEMPORARILY_UNAVAILABLE)
    assert error.get_http_status_code() == 503
    return error


class RecordingClient:
    """Accepts ``log_batch`` calls, failing the first ones as scripted."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.batches: list[list[Metric]] = []
        self.calls = 0

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), *, synchronous: bool = True) -> None:
        assert run_id == RUN_ID and synchronous
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.batches.append(list(metrics))

    @property
    def metrics(self) -> list[tuple[str, int]]:
        return [(m.key, m.step) for batch in self.batches for m in batch]


def logger(client: RecordingClient, **options: Any) -> BatchingMetricLogger:
    defaults: dict[str, Any] = {"flush_interval_s": 3600, "background": False, "register_atexit": False}
    defaults.update(options)
    return BatchingMetricLogger(RUN_ID, client=client, sleep=lambda _: None, **defaults)


def test_flushes_on_size_with_up_to_1000_metrics_per_request() -> None:
    client = RecordingClient()
    with logger(client) as metrics:
        for step in range(1250):
            metrics.log_metrics({"loss": 1.0 / (step + 1), "lr": 0.1}, step=step)
        assert [len(b) for b in client.batches] == [1000, 1000], "size flushes happen while logging"
    assert [len(b) for b in client.batches] == [1000, 1000, 500], "the rest is sent at exit"
    assert client.metrics == [(k, s) for s in range(1250) for k in ("loss", "lr")], "all of them, in order"
    assert metrics.requests_sent == 3 and metrics.metrics_sent == 2500


def test_requests_stay_under_the_byte_cap() -> None:
    client = RecordingClient()
    key = "é" * 250  # the longest valid key, as long as JSON escapes can make it
    with logger(client) as metrics:
        for step in range(1000):
            metrics.log_metric(key, 0.123456789012345, step=step)
    assert sum(len(b) for b in client.batches) == 1000
    assert len(client.batches) > 1
    for batch in client.batches:
        body = message_to_json(LogBatch(run_id=RUN_ID, metrics=[m.to_proto() for m in batch]))
        size = len(body.encode())
        assert size <= MAX_REQUEST_BYTES
        assert size <= REQUEST_OVERHEAD_BYTES + len(batch) * estimated_bytes(key), "the estimate is an upper bound"


def test_flushes_on_time_when_logging() -> None:
    client = RecordingClient()
    metrics = logger(client, flush_interval_s=0.05)
    metrics.log_metric("loss", 1.0, step=0)
    assert client.batches == [] and metrics.pending == 1
    time.sleep(0.06)
    metrics.log_metric("loss", 0.9, step=1)
    assert client.metrics == [("loss", 0), ("loss", 1)]


def test_background_timer_flushes_an_idle_logger() -> None:
    client = RecordingClient()
    metrics = logger(client, flush_interval_s=0.1, background=True)
    metrics.log_metric("loss", 1.0)
    deadline = time.monotonic() + 5
    while metrics.pending and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.metrics == [("loss", 0)]
    metrics.close()


def test_transient_errors_are_retried_with_backoff() -> None:
    delays: list[float] = []
    pool_timeout = MlflowException("QueuePool limit of size 4 reached", error_code=INVALID_PARAMETER_VALUE)
    assert pool_timeout.get_http_status_code() == 400
    client = RecordingClient(unavailable(), ConnectionError("reset"), pool_timeout)
    metrics = BatchingMetricLogger(
        RUN_ID,
        client=client,
        background=False,
        register_atexit=False,
        backoff_s=1.0,
        sleep=delays.append,
    )
    metrics.log_metric("loss", 1.0)
    assert metrics.flush() == 1
    assert client.calls == 4 and metrics.attempts == 4 and metrics.requests_sent == 1
    assert len(delays) == 3 and 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0


def test_exhausted_retries_raise_and_keep_every_metric() -> None:
    client = RecordingClient(*[unavailable()] * 3)
    metrics = logger(client, max_attempts=3)
    for step in range(999):
        metrics.log_metric("loss", 1.0, step=step)
    with pytest.raises(MetricLoggingError, match="after 3 attempt") as raised:
        metrics.log_metric("loss", 1.0, step=999)  # the 1000th triggers the flush
    assert raised.value.pending == 1000 and metrics.pending == 1000
    assert metrics.flush() == 1000, "the server is back: the same metrics go out"
    assert client.metrics == [("loss", s) for s in range(1000)]


def test_a_rejected_batch_is_raised_and_kept() -> None:
    client = RecordingClient(MlflowException("Invalid value", error_code=INVALID_PARAMETER_VALUE))
    metrics = logger(client)
    metrics.log_metrics({"a": 1.0, "b": 2.0})
    with pytest.raises(MetricLoggingError, match="rejected 2 metric") as raised:
        metrics.flush()
    assert raised.value.rejected == 2
    assert [m.key for m in metrics.rejected] == ["a", "b"] and metrics.pending == 0
    assert client.calls == 1, "a permanent error is not retried"


def test_background_failure_is_raised_by_the_next_call() -> None:
    client = RecordingClient(*[unavailable()] * 50)
    metrics = logger(client, flush_interval_s=0.05, background=True, max_attempts=1)
    metrics.log_metric("loss", 1.0, step=0)
    deadline = time.monotonic() + 5
    while metrics._background_error is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(MetricLoggingError):
        metrics.log_metric("loss", 0.5, step=1)
    assert metrics.pending == 2, "the metric logged while raising is buffered too"
    client.failures.clear()
    metrics.close()
    assert client.metrics == [("loss", 0), ("loss", 1)]


def test_exit_paths_flush_or_report(capsys: pytest.CaptureFixture[str]) -> None:
    client = RecordingClient()
    with pytest.raises(RuntimeError), logger(client) as metrics:
        metrics.log_metric("loss", 1.0)
        raise RuntimeError("training crashed")
    assert client.metrics == [("loss", 0)], "metrics logged before a crash are still sent"

    failing = RecordingClient(*[unavailable()] * 5)
    at_exit = logger(failing, max_attempts=2, register_atexit=True)
    at_exit.log_metric("loss", 1.0)
    at_exit._at_exit()  # what atexit runs at interpreter exit
    assert "could not send 1 metric(s)" in capsys.readouterr().err
    assert at_exit.pending == 1


def test_invalid_metrics_fail_at_the_call_site() -> None:
    metrics = logger(RecordingClient())
    for key, value in [("../escape", 1.0), ("a" * 251, 1.0), ("", 1.0), ("bad|char", 1.0), ("ok", "high")]:
        with pytest.raises(ValueError, match="metric"):
            metrics.log_metric(key, value)
    assert metrics.pending == 0
    metrics.log_metric("nan_is_fine", float("nan"))
    assert metrics.pending == 1

"""A batching metric logger for training loops: few requests, no lost metrics.

The guide's ``log_metrics_batched`` buffers 100 steps and then calls ``mlflow.log_metrics`` once
*per step* inside ``mlflow.start_run(run_id=...)``: still one ``log-batch`` request per step,
plus the run's get/update/end requests on every flush. This logger sends up to the server's
limits in one request — 1,000 metrics (``MAX_METRICS_PER_BATCH``) and under the 1 MB request
cap (``MAX_BATCH_LOG_REQUEST_SIZE``) — and flushes

* on size: when a full request's worth is buffered;
* on time: every ``flush_interval_s`` (checked on each log call, and by a background thread so
  an idle phase such as a long evaluation does not hold metrics back);
* at exit: ``close()``, the context manager, and an ``atexit`` hook.

Transient failures (429, 5xx, connection errors, and the 400 MLflow returns for a database
pool timeout) are retried with exponential backoff and jitter, on top of MLflow's own HTTP
retries; then :class:`MetricLoggingError` is raised. Metrics leave the buffer only after the
server accepted them, so a failed flush can simply be retried (the server de-duplicates
identical metrics). A batch the server *rejects* (a permanent 4xx) is moved to ``rejected``
and the error raised — reported, inspectable, never silently dropped. A failure in the
background thread is raised by the next call made from the training code.

Usage::

    with mlflow.start_run() as run, BatchingMetricLogger(run.info.run_id) as metrics:
        for step in range(100_000):
            metrics.log_metrics({"train_loss": loss, "lr": lr}, step=step)
"""

from __future__ import annotations

import atexit
import json
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlflow.entities import Metric

MAX_METRICS_PER_BATCH = 1000
MAX_REQUEST_BYTES = 1_000_000
REQUEST_OVERHEAD_BYTES = 200
"""``{"run_id": ..., "metrics": [...], "params": [], "tags": []}`` around the metrics."""
METRIC_OVERHEAD_BYTES = 200
"""Per metric besides its key: value, timestamp and step as protobuf JSON, field names, and the
optional model id — deliberately generous, so the estimate is an upper bound."""
MAX_KEY_LENGTH = 250


class BatchClient(Protocol):
    """What the logger needs from ``MlflowClient`` (and what a test double provides)."""

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), *, synchronous: bool) -> object: ...


class MetricLoggingError(RuntimeError):
    """Metrics could not be sent. ``pending`` are still buffered and will be retried by the next
    flush; ``rejected`` (permanent errors) are kept on the logger's ``rejected`` list."""

    def __init__(self, message: str, *, pending: int, rejected: int = 0) -> None:
        super().__init__(message)
        self.pending = pending
        self.rejected = rejected


def estimated_bytes(key: str) -> int:
    """Upper bound of one metric's share of the request body (``ensure_ascii`` escapes are the
    longest form a non-ASCII key can take)."""
    return len(json.dumps(key)) + METRIC_OVERHEAD_BYTES


def is_transient(error: BaseException) -> bool:
    from mlflow.exceptions import MlflowException

    if isinstance(error, MlflowException):
        status = error.get_http_status_code()
        if status == 429 or status >= 500:
            return True
        # MLflow answers a database pool timeout with 400 BAD_REQUEST, which its client does not retry.
        return "QueuePool limit" in error.message
    return isinstance(error, OSError)  # connection errors and timeouts, requests' included


class BatchingMetricLogger:
    def __init__(
        self,
        run_id: str | None = None,
        *,
        client: BatchClient | None = None,
        max_batch_metrics: int = MAX_METRICS_PER_BATCH,
        max_batch_bytes: int = MAX_REQUEST_BYTES,
        flush_interval_s: float = 10.0,
        max_attempts: int = 6,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        background: bool = True,
        register_atexit: bool = True,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 1 <= max_batch_metrics <= MAX_METRICS_PER_BATCH:
            raise ValueError(f"max_batch_metrics must be 1..{MAX_METRICS_PER_BATCH}")
        if not REQUEST_OVERHEAD_BYTES + estimated_bytes("x") <= max_batch_bytes <= MAX_REQUEST_BYTES:
            raise ValueError(f"max_batch_bytes must be at most {MAX_REQUEST_BYTES}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if run_id is None:
            import mlflow

            active = mlflow.active_run()
            if active is None:
                raise ValueError("no run_id and no active run: start a run first or pass run_id")
            run_id = active.info.run_id
        if client is None:
            from mlflow.tracking import MlflowClient

            client = MlflowClient()
        self.run_id: str = run_id
        self.client: BatchClient = client
        self.max_batch_metrics = max_batch_metrics
        self.max_batch_bytes = max_batch_bytes
        self.flush_interval_s = flush_interval_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._buffer: list[tuple[Metric, int]] = []
        self._buffer_bytes = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._background_error: MetricLoggingError | None = None
        self._closed = False
        self.rejected: list[Metric] = []
        self.requests_sent = 0
        self.metrics_sent = 0
        self.attempts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if background and flush_interval_s > 0:
            self._thread = threading.Thread(target=self._timer, name=f"metric-flush-{run_id[:8]}", daemon=True)
            self._thread.start()
        self._atexit_registered = register_atexit
        if register_atexit:
            atexit.register(self._at_exit)

    # -- logging -------------------------------------------------------------------------------
    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def log_metric(self, key: str, value: float, step: int = 0, timestamp_ms: int | None = None) -> None:
        self.log_metrics({key: value}, step=step, timestamp_ms=timestamp_ms)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0, timestamp_ms: int | None = None) -> None:
        """Buffer metrics; may flush (size or time). Invalid keys/values raise ``ValueError`` here,
        before they can poison a batch of good metrics."""
        from mlflow.entities import Metric

        if self._closed:
            raise RuntimeError("the metric logger is closed")
        timestamp = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        entries = [
            (Metric(key, _as_float(key, value), timestamp, int(step)), _checked(key)) for key, value in metrics.items()
        ]
        with self._lock:
            self._buffer.extend(entries)
            self._buffer_bytes += sum(size for _, size in entries)
            full = (
                len(self._buffer) >= self.max_batch_metrics
                or self._buffer_bytes + REQUEST_OVERHEAD_BYTES >= self.max_batch_bytes
            )
        self._raise_background_error()
        if full or time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    # -- sending -------------------------------------------------------------------------------
    def flush(self) -> int:
        """Send everything buffered, in order; returns the number of metrics sent. Raises
        :class:`MetricLoggingError` when a batch cannot be sent (it stays buffered)."""
        self._raise_background_error()
        sent = 0
        with self._send_lock:
            while True:
                batch = self._next_batch()
                if not batch:
                    break
                self._send(batch)
                with self._lock:
                    del self._buffer[: len(batch)]
                    self._buffer_bytes -= sum(size for _, size in batch)
                sent += len(batch)
            self._last_flush = time.monotonic()
        return sent

    def _next_batch(self) -> list[tuple[Metric, int]]:
        with self._lock:
            total, count = REQUEST_OVERHEAD_BYTES, 0
            for _, size in self._buffer[: self.max_batch_metrics]:
                if count and total + size > self.max_batch_bytes:
                    break
                total += size
                count += 1
            return self._buffer[:count]

    def _send(self, batch: list[tuple[Metric, int]]) -> None:
        metrics = [metric for metric, _ in batch]
        for attempt in range(1, self.max_attempts + 1):
            self.attempts += 1
            try:
                self.client.log_batch(self.run_id, metrics=metrics, synchronous=True)
            except Exception as error:
                if not is_transient(error):
                    with self._lock:
                        del self._buffer[: len(batch)]
                        self._buffer_bytes -= sum(size for _, size in batch)
                    self.rejected.extend(metrics)
                    raise MetricLoggingError(
                        f"the server rejected {len(metrics)} metric(s) for run {self.run_id}: {_short(error)}; "
                        "they are kept in logger.rejected",
                        pending=self.pending,
                        rejected=len(metrics),
                    ) from error
                if attempt == self.max_attempts:
                    raise MetricLoggingError(
                        f"could not send {len(metrics)} metric(s) for run {self.run_id} after {attempt} attempt(s): "
                        f"{_short(error)}; {self.pending} metric(s) stay buffered",
                        pending=self.pending,
                    ) from error
                delay = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
                self._sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter, not cryptography
                continue
            self.requests_sent += 1
            self.metrics_sent += len(metrics)
            return

    # -- time and exit -------------------------------------------------------------------------
    def _timer(self) -> None:
        while not self._stop.wait(min(self.flush_interval_s, 1.0)):
            if self._background_error is not None or not self.pending:
                continue
            if time.monotonic() - self._last_flush < self.flush_interval_s:
                continue
            try:
                self.flush()
            except MetricLoggingError as error:
                self._background_error = error

    def _raise_background_error(self) -> None:
        error, self._background_error = self._background_error, None
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop the timer and send what is left; raises if it cannot be sent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._atexit_registered:
            atexit.unregister(self._at_exit)
            self._atexit_registered = False
        self._closed = True
        self._background_error = None  # its metrics are still buffered: the flush below retries them
        self.flush()

    def _at_exit(self) -> None:
        try:
            self.close()
        except MetricLoggingError as error:
            sys.stderr.write(f"mlflowops: {error}\n")

    def __enter__(self) -> BatchingMetricLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_float(key: str, value: Any) -> float:
    try:
        return float(value)  # NaN and ±inf are valid: MLflow stores them
    except (TypeError, ValueError):
        raise ValueError(f"metric {key!r}: {value!r} is not a number") from None


def _checked(key: str) -> int:
    """Reject what the server would reject (MLflow's own name rules); returns the size estimate."""
    from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

    if not isinstance(key, str) or not key:
        raise ValueError("a metric key must be a non-empty string")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"metric key {key[:40]!r}…: longer than {MAX_KEY_LENGTH} characters")
    if not validate_param_and_metric_name(key) or path_not_unique(key):
        raise ValueError(f"metric key {key!r}: only letters, digits, _ - . / space and : (no '..', no leading '/')")
    return estimated_bytes(key)


def _short(error: BaseException) -> str:
    return " ".join(str(getattr(error, "message", error)).split())[:300]

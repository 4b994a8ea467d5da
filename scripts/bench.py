"""`make bench`: ingest throughput, auth overhead and concurrency scale of the configuration we
ship, measured side by side in one run on local platforms (loopback only, bounded in time).

Prints a table, and writes JSON, Markdown and a PNG chart to ``--out`` (default
``bench-results/``). Timings on a shared 2-core machine are noisy: compare the ratios of one run.

What each figure means:

* requests: HTTP requests the MLflow client sent (counted in ``mlflow.utils.rest_utils``);
* latency p50/p99: of those requests, client side;
* server CPU: user+system seconds of the MLflow server's process tree (``/proc``);
* Postgres transactions: ``pg_stat_database.xact_commit`` of the tracking DB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform as host
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localplatform import LocalPlatform, PlatformOptions  # noqa: E402
from localplatform.errors import PlatformError  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- measurement plumbing -----------------------------------------------------------------------


class RequestLog:
    """Counts and times every REST call the MLflow client makes (all threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    def install(self) -> None:
        from mlflow.utils import rest_utils

        original = rest_utils.http_request

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                response = original(*args, **kwargs)
            except Exception as error:
                with self.lock:
                    self.latencies.append(time.perf_counter() - start)
                    name = type(error).__name__
                    self.errors[name] = self.errors.get(name, 0) + 1
                raise
            with self.lock:
                self.latencies.append(time.perf_counter() - start)
                if response is not None and response.status_code >= 400:
                    key = f"HTTP {response.status_code}"
                    self.errors[key] = self.errors.get(key, 0) + 1
            return response

        rest_utils.http_request = timed

    def snapshot(self) -> tuple[int, dict[str, int]]:
        with self.lock:
            return len(self.latencies), dict(self.errors)

    def since(self, count: int) -> list[float]:
        with self.lock:
            return self.latencies[count:]


def process_tree_cpu_seconds(root_pid: int) -> float:
    """User+system CPU of a process and all its descendants (uvicorn workers, job runners)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        stack += children.get(pid, [])
    return total


@dataclass
class Measurement:
    scenario: str
    mode: str
    metrics: int
    seconds: float
    requests: int
    errors: dict[str, int]
    p50_ms: float
    p99_ms: float
    server_cpu_s: float
    pg_transactions: int
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    refused_503: int = 0
    """Requests the admission proxy refused with 503 (the client retried them): nginx's log."""
    latencies: list[float] = field(default_factory=list, repr=False)
    """Raw client latencies (s), to merge rounds; not written out."""

    @property
    def metrics_per_s(self) -> float:
        return self.metrics / self.seconds if self.seconds else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class Harness:
    def __init__(self, platform: LocalPlatform, requests: RequestLog):
        self.platform = platform
        self.requests = requests

    def pg_commits(self) -> int:
        import psycopg2

        params: dict[str, Any] = dict(self.platform.database_params("mlflow", role="migrator"))
        with contextlib.closing(psycopg2.connect(**params)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = 'mlflow'")
            row = cursor.fetchone()
            return int(row[0]) if row else 0

    def admission_refusals(self) -> int:
        log = self.platform.layout.log("nginx")
        with contextlib.suppress(OSError), log.open(errors="replace") as lines:
            return sum(1 for line in lines if "limiting connections by zone" in line)
        return 0

    def measure(self, scenario: str, mode: str, metrics: int, work: Callable[[], None], notes: str = "") -> Measurement:
        mlflow_pid = self.platform.component("mlflow").pid or 0
        refused_before = self.admission_refusals()
        count_before, errors_before = self.requests.snapshot()
        cpu_before, commits_before = process_tree_cpu_seconds(mlflow_pid), self.pg_commits()
        start = time.perf_counter()
        work()
        seconds = time.perf_counter() - start
        latencies = self.requests.since(count_before)
        _, errors_after = self.requests.snapshot()
        errors = {k: v - errors_before.get(k, 0) for k, v in errors_after.items() if v - errors_before.get(k, 0)}
        return Measurement(
            scenario,
            mode,
            metrics,
            seconds,
            len(latencies),
            errors,
            _percentile(latencies, 0.50),
            _percentile(latencies, 0.99),
            process_tree_cpu_seconds(mlflow_pid) - cpu_before,
            self.pg_commits() - commits_before,
            notes,
            refused_503=self.admission_refusals() - refused_before,
            latencies=latencies,
        )


def merged(rounds: list[Measurement]) -> Measurement:
    """Rounds of one mode, interleaved with other modes, as one figure."""
    first = rounds[0]
    latencies = [x for r in rounds for x in r.latencies]
    errors: dict[str, int] = {}
    for r in rounds:
        for key, value in r.errors.items():
            errors[key] = errors.get(key, 0) + value
    return Measurement(
        first.scenario,
        first.mode,
        sum(r.metrics for r in rounds),
        sum(r.seconds for r in rounds),
        sum(r.requests for r in rounds),
        errors,
        _percentile(latencies, 0.50),
        _percentile(latencies, 0.99),
        sum(r.server_cpu_s for r in rounds),
        sum(r.pg_transactions for r in rounds),
        f"{first.notes}; {len(rounds)} interleaved rounds".lstrip("; "),
        refused_503=sum(r.refused_503 for r in rounds),
        latencies=latencies,
    )


def in_threads(count: int, body: Callable[[int], None]) -> None:
    failures: list[BaseException] = []

    def run(index: int) -> None:
        try:
            body(index)
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} of {count} client threads failed: {failures[0]!r}")


@contextlib.contextmanager
def platform(state: Path, progress: bool, **options: Any) -> Iterator[LocalPlatform]:
    instance = LocalPlatform(PlatformOptions(state_dir=state, **options), progress=print if progress else None)
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@contextlib.contextmanager
def client_env(instance: LocalPlatform) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(instance.client_env())
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "7"
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# -- scenarios ----------------------------------------------------------------------------------


def guide_log_metrics_batched(run_id: str, metrics_buffer: list[tuple[int, dict[str, float]]], batch_size: int) -> None:
    """The guide's helper, as published (its ``current_run_id`` global made a parameter)."""
    import mlflow

    if len(metrics_buffer) >= batch_size:
        with mlflow.start_run(run_id=run_id):
            for step, metrics in metrics_buffer:
                mlflow.log_metrics(metrics, step=step)
        metrics_buffer.clear()


def logging_modes(h: Harness, threads: int, scale: int) -> list[Measurement]:
    import mlflow
    from mlflow import MlflowClient

    from mlflowops.batching import BatchingMetricLogger

    client = MlflowClient()
    experiment = client.create_experiment(f"bench/ingest/{int(time.time())}")

    def runs(n: int) -> list[str]:
        return [client.create_run(experiment).info.run_id for _ in range(n)]

    results: list[Measurement] = []
    steps = 50 * scale
    ids = runs(threads)

    def per_step(i: int) -> None:
        for s in range(steps):
            client.log_metric(ids[i], "loss", 0.1 * s, step=s)

    results.append(
        h.measure(
            "logging",
            "log_metric per step",
            threads * steps,
            lambda: in_threads(threads, per_step),
        )
    )

    ids = runs(threads)
    steps = 100 * scale

    def guide(i: int) -> None:
        buffer: list[tuple[int, dict[str, float]]] = []
        for s in range(steps):
            buffer.append((s, {"train_loss": 1.0 / (s + 1), "learning_rate": 0.001}))
            guide_log_metrics_batched(ids[i], buffer, 100)
        guide_log_metrics_batched(ids[i], buffer, 1)

    results.append(
        h.measure(
            "logging",
            "guide log_metrics_batched",
            threads * steps * 2,
            lambda: in_threads(threads, guide),
            notes="100-step buffer, 2 metrics/step",
        )
    )

    ids = runs(threads)
    steps = 2000 * scale

    def helper(i: int) -> None:
        with BatchingMetricLogger(ids[i]) as logger:
            for s in range(steps):
                logger.log_metrics({"train_loss": 1.0 / (s + 1), "learning_rate": 0.001}, step=s)

    results.append(
        h.measure(
            "logging",
            "batching helper (mlflowops)",
            threads * steps * 2,
            lambda: in_threads(threads, helper),
            notes="2 metrics/step",
        )
    )

    for size, keys, label in BATCH_SHAPES:
        results.append(log_batch_load(h, client, experiment, threads, size, keys, label, 20 * scale * 1000))

    # One run at a time, like a training process: MLflow's async queue is per process and merges
    # only consecutive entries of the same run, so runs logged from several threads at once would
    # each get one request per metric.
    ids = runs(1)
    steps = 2000 * scale

    def asynchronous() -> None:
        # The client API with a run id: ``mlflow.log_metric(run_id=...)`` would first fetch the
        # run synchronously on every call (one extra request per metric).
        for s in range(steps):
            client.log_metric(ids[0], "loss", 0.1 * s, step=s, synchronous=False)
        mlflow.flush_async_logging()

    results.append(
        h.measure(
            "logging",
            "MLflow async logging",
            steps,
            asynchronous,
            notes="MlflowClient.log_metric(synchronous=False), 1 run, flushed at the end",
        )
    )
    return results


BATCH_SHAPES = (
    (100, 10, "log_batch 100"),
    (1000, 10, "log_batch 1000 (10 keys × 100 steps)"),
    (1000, 1000, "log_batch 1000 (1000 distinct keys)"),
)
REALISTIC_1000, WIDE_1000 = BATCH_SHAPES[1], BATCH_SHAPES[2]


def log_batch_load(
    h: Harness, client: Any, experiment: str, threads: int, size: int, keys: int, label: str, total: int
) -> Measurement:
    """``threads`` runs, each sent ``log_batch`` of ``size`` metrics over ``keys`` keys (steps
    advance per batch, like a training loop), ``total`` metrics in all."""
    from mlflow.entities import Metric

    ids = [client.create_run(experiment).info.run_id for _ in range(threads)]
    batches = max(2, total // (size * threads))
    now = int(time.time() * 1000)

    def batch(i: int) -> None:
        for b in range(batches):
            metrics = [Metric(f"m{j % keys}", float(j), now, b * (size // keys) + j // keys) for j in range(size)]
            client.log_batch(ids[i], metrics=metrics)

    return h.measure("logging", label, threads * batches * size, lambda: in_threads(threads, batch))


def training_job_identity(instance: LocalPlatform, experiment: str) -> dict[str, str]:
    """A non-admin user with EDIT on the experiment, like a training job's: admins skip MLflow's
    permission checks, so measuring as admin would hide part of the cost of auth."""
    import secrets as token

    from mlflowops.authapi import AuthApi

    env = instance.client_env()
    if "MLFLOW_TRACKING_USERNAME" not in env:
        return {}
    api = AuthApi(env["MLFLOW_TRACKING_URI"])
    username, password = f"bench-job-{token.token_hex(4)}", token.token_urlsafe(24)
    api.create_user(username, password)
    api.grant(username, "experiment", experiment, "EDIT")
    return {"MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}


def auth_load(h: Harness, label: str, threads: int, seconds: float, *, as_admin: bool = False) -> Measurement:
    """One ``log_metric`` per request for ``seconds``, as a training job's user (or the admin,
    whom MLflow's permission checks skip): the request rate shows the per-request cost of
    authentication and permission checks."""
    from mlflow import MlflowClient

    experiment = MlflowClient().create_experiment(f"bench/auth/{label}/{uuid.uuid4().hex[:8]}")
    identity = {} if as_admin else training_job_identity(h.platform, experiment)
    saved = {k: os.environ.get(k) for k in identity}
    os.environ.update(identity)  # the client reads credentials per request
    try:
        client = MlflowClient()
        ids = [client.create_run(experiment).info.run_id for _ in range(threads)]
        counts = [0] * threads

        def body(i: int) -> None:
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                client.log_metric(ids[i], "loss", 1.0, step=counts[i])
                counts[i] += 1

        measurement = h.measure("auth", label, 0, lambda: in_threads(threads, body))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    measurement.metrics = sum(counts)
    measurement.notes = "as a non-admin user with EDIT" if identity else ("as the admin" if as_admin else "no users")
    return measurement


def classify(error: Exception) -> str:
    """What a failed job ran into: the database's connection limit, a pool timeout, or the
    client's retry budget running out against the admission proxy (or a server error)."""
    text = str(error)
    if "remaining connection slots" in text or "too many clients" in text or "max_client_conn" in text:
        return f"{type(error).__name__}: database connections exhausted"
    if "QueuePool" in text:
        return f"{type(error).__name__}: SQLAlchemy pool timeout"
    gave_up = re.search(r"too many (\d{3}) error responses", text)
    if gave_up:
        return f"{type(error).__name__}: gave up after MLflow's retries (HTTP {gave_up.group(1)})"
    return type(error).__name__


def concurrency(h: Harness, label: str, jobs: int, deadline_s: float) -> Measurement:
    """``jobs`` simulated training jobs at once: create a run, log 3 batches of 100 metrics."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient()
    experiment = client.create_experiment(f"bench/concurrency/{label}/{jobs}/{int(time.time())}")
    outcome: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(jobs)
    now = int(time.time() * 1000)

    def job(_: int) -> None:
        barrier.wait()
        start = time.perf_counter()
        try:
            run = client.create_run(experiment).info.run_id
            for b in range(3):
                if time.perf_counter() - start > deadline_s:
                    raise TimeoutError("job deadline")
                client.log_batch(run, metrics=[Metric(f"m{j % 10}", 1.0, now, b * 10 + j // 10) for j in range(100)])
            result = "ok"
        except Exception as error:
            result = classify(error)
        with lock:
            outcome[result] = outcome.get(result, 0) + 1

    measurement = h.measure("concurrency", label, jobs * 300, lambda: in_threads(jobs, job))
    measurement.extra = {"jobs": jobs, "outcomes": outcome}
    measurement.metrics = outcome.get("ok", 0) * 300
    return measurement


AUTH_OURS = "basic-auth, our settings (cache 60 s)"
AUTH_OURS_ADMIN = "basic-auth, our settings, as the admin"
AUTH_OFF = "no auth"
AUTH_DEFAULTS = "basic-auth, MLflow defaults (no cache)"
SIDE_BY_SIDE: dict[str, dict[str, Any]] = {
    "stock-store": {"tracking_store": "stock"},
    "no-auth": {"auth": "off"},
    "mlflow-defaults": {"auth": "mlflow-defaults"},
}
"""Variants started next to ``ours`` for the interleaved comparisons (same defaults otherwise)."""


TUNING: dict[str, dict[str, Any]] = {
    "in-flight 1/worker": {"in_flight_per_worker": 1},
    "in-flight 2/worker": {"in_flight_per_worker": 2},
    "in-flight 4/worker (default), 2 workers (default)": {},
    "in-flight 8/worker": {"in_flight_per_worker": 8},
    "1 worker": {"workers": 1},
    "4 workers": {"workers": 4},
}
"""Variants of the defaults (in-flight 4 per worker, 2 workers), each with room for its pools."""
for _options in TUNING.values():
    _options.setdefault("max_connections", 200)


def tuning_load(h: Harness, label: str, threads: int, seconds: float) -> Measurement:
    """``threads`` training loops at once, each sending ``log_batch`` of 100 (10 keys × 10
    steps) back to back for ``seconds``: more than any admission limit here lets through."""
    from mlflow.entities import Metric

    client = _client()
    experiment = _experiment(f"tuning/{label}")
    ids = [client.create_run(experiment).info.run_id for _ in range(threads)]
    sent = [0] * threads
    now = int(time.time() * 1000)

    def loop(i: int) -> None:
        deadline = time.perf_counter() + seconds
        step = 0
        while time.perf_counter() < deadline:
            client.log_batch(ids[i], metrics=[Metric(f"m{j % 10}", 1.0, now, step + j // 10) for j in range(100)])
            step += 10
            sent[i] += 100

    measurement = h.measure("tuning", label, 0, lambda: in_threads(threads, loop))
    measurement.metrics = sum(sent)
    return measurement


PROFILE_FRAMES = {
    "log_batch": ("log_batch (",),
    "executemany (one statement per row or batched)": ("executemany (", "execute_batch (", "do_executemany ("),
    "basic-auth and permission checks": ("mlflow/server/auth/",),
    "request parsing": ("_get_request_message (", "parse_dict ("),
    "auth: loading the user": ("get_user (mlflow/server/auth/",),
    "auth: fetching the whole run to find its experiment": ("SqlAlchemyStore.get_run (mlflow/store/tracking/",),
}


def profile(instance: LocalPlatform, out: Path, work: Callable[[], Any]) -> dict[str, float]:
    """Samples the MLflow server's processes with py-spy while ``work`` runs; returns the share
    of busy samples whose stack passes through each of :data:`PROFILE_FRAMES` (and keeps the
    collapsed stacks in ``out`` for a flame graph)."""
    import signal
    import subprocess

    pid = instance.component("mlflow").pid
    spy = Path(sys.executable).parent / "py-spy"
    if pid is None or not spy.exists():
        return {}
    recorder = subprocess.Popen(
        [
            str(spy),
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached before the load starts
    try:
        work()
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)
    total, hits = 0, dict.fromkeys(PROFILE_FRAMES, 0)
    with contextlib.suppress(OSError), out.open() as lines:
        for line in lines:
            stack, _, count_text = line.rstrip().rpartition(" ")
            if not count_text.isdigit():
                continue
            count = int(count_text)
            total += count
            for name, needles in PROFILE_FRAMES.items():
                if any(needle in stack for needle in needles):
                    hits[name] += count
    return {name: hit / total for name, hit in hits.items()} if total else {}


def _client() -> Any:
    from mlflow import MlflowClient

    return MlflowClient()


def _experiment(purpose: str) -> str:
    return str(_client().create_experiment(f"bench/{purpose}/{uuid.uuid4().hex[:8]}"))


def interleaved(
    requests: RequestLog,
    variants: dict[str, LocalPlatform],
    rounds: int,
    load: Callable[[Harness, str, Any], Measurement],
    shapes: tuple[Any, ...],
) -> list[Measurement]:
    """``load`` on each variant in turn, ``rounds`` times (the order rotates each round), merged
    per variant and shape."""
    collected: dict[tuple[str, int], list[Measurement]] = {}
    labels = list(variants)
    for round_index in range(rounds):
        order = labels[round_index % len(labels) :] + labels[: round_index % len(labels)]
        for shape_index, shape in enumerate(shapes):
            for label in order:
                with client_env(variants[label]):
                    measurement = load(Harness(variants[label], requests), label, shape)
                collected.setdefault((label, shape_index), []).append(measurement)
    return [merged(collected[(label, i)]) for i in range(len(shapes)) for label in labels]


def copy_ceiling(instance: LocalPlatform, rows: int) -> dict[str, float]:
    """Raw COPY of metric-shaped rows into PostgreSQL on the same machine: the ceiling."""
    import io

    import psycopg2

    params: dict[str, Any] = dict(instance.database_params("mlflow", role="migrator"))
    payload = io.StringIO("".join(f"m{i % 10}\t{i * 0.5}\t1700000000000\t{i // 10}\trun0\tf\n" for i in range(rows)))
    with contextlib.closing(psycopg2.connect(**params)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_metrics (key varchar(250), value double precision, timestamp bigint, "
            "step bigint, run_uuid varchar(32), is_nan boolean)"
        )
        start = time.perf_counter()
        cursor.copy_expert("COPY bench_metrics FROM STDIN", payload)
        connection.commit()
        seconds = time.perf_counter() - start
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


# -- output -------------------------------------------------------------------------------------


def markdown(results: list[Measurement], ceiling: dict[str, float], machine: dict[str, str]) -> str:
    lines = [
        f"# Benchmark ({machine['when']}, {machine['cpus']} CPUs, {machine['python']}, MLflow {machine['mlflow']})",
        "",
        "| scenario | mode | metrics | s | metrics/s | req | req/s | p50 ms | p99 ms | server CPU s | PG xacts "
        "| 503 retried | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
        if r.extra.get("outcomes"):
            errors = ", ".join(f"{k}: {v}" for k, v in r.extra["outcomes"].items())
        lines.append(
            f"| {r.scenario} | {r.mode} | {r.metrics} | {r.seconds:.1f} | {r.metrics_per_s:,.0f} | {r.requests} | "
            f"{r.requests_per_s:,.1f} | {r.p50_ms:.0f} | {r.p99_ms:.0f} | {r.server_cpu_s:.1f} | {r.pg_transactions} "
            f"| {r.refused_503} | {errors} |"
        )
    best = max((r.metrics_per_s for r in results if r.scenario == "logging"), default=0.0)
    lines += [
        "",
        f"COPY ceiling: {ceiling['rows_per_s']:,.0f} rows/s; best MLflow ingest {best:,.0f} metrics/s = "
        f"{best / ceiling['rows_per_s']:.1%} of it.",
    ]
    return "\n".join(lines) + "\n"


def summary(results: list[Measurement]) -> list[str]:
    """The figures the issue's targets and the capacity note are about, from this run."""
    from rendering.capacity import MEASURED, Demand, MeasuredCost, ReplicaShape, estimate

    def find(mode: str) -> Measurement | None:
        return next((r for r in results if r.mode == mode), None)

    lines: list[str] = []
    ours, off = find(AUTH_OURS), find(AUTH_OFF)
    admin = find(AUTH_OURS_ADMIN)
    for who, measured in (("a training-job user", ours), ("the admin", admin)):
        if measured and off and off.requests_per_s:
            lines.append(
                f"auth overhead of our settings for {who}: {1 - measured.requests_per_s / off.requests_per_s:.1%} "
                f"of the no-auth throughput ({measured.requests_per_s:.1f} vs {off.requests_per_s:.1f} req/s; "
                f"server CPU {measured.server_cpu_s * 1000 / max(1, measured.requests):.0f} vs "
                f"{off.server_cpu_s * 1000 / max(1, off.requests):.0f} ms per request; target <= 15 %)"
            )
    for shape, target in ((REALISTIC_1000, 15_000), (WIDE_1000, 8_000)):
        batched = find(f"{shape[2]}, set-based store (ours)")
        unbatched = find(f"{shape[2]}, MLflow's store")
        if batched and unbatched and unbatched.metrics_per_s:
            cpu_batched = batched.server_cpu_s * 1e6 / batched.metrics
            cpu_unbatched = unbatched.server_cpu_s * 1e6 / unbatched.metrics
            lines.append(
                f"{shape[2]}: {batched.metrics_per_s:,.0f} metrics/s set-based vs {unbatched.metrics_per_s:,.0f} "
                f"MLflow's store ({batched.metrics_per_s / unbatched.metrics_per_s:.2f}×; server CPU per 1,000 metrics "
                f"{cpu_batched:.0f} vs {cpu_unbatched:.0f} ms;"
                f" target {target:,} metrics/s)"
            )
    for label in ("PgBouncer", "direct to PostgreSQL"):
        for r in results:
            if r.scenario == "concurrency" and r.mode == label:
                outcomes = r.extra.get("outcomes", {})
                failed = sum(v for k, v in outcomes.items() if k != "ok")
                lines.append(f"{r.extra.get('jobs')} concurrent jobs, {label}: {failed} failed ({outcomes})")
    guide, helper = find("guide log_metrics_batched"), find("batching helper (mlflowops)")
    if guide and helper and helper.requests:
        ratio = (guide.requests / guide.metrics) / (helper.requests / helper.metrics)
        lines.append(f"requests per metric, guide helper vs ours: {ratio:.0f}× fewer with ours (target >= 50×)")
    realistic = find(f"{REALISTIC_1000[2]}, set-based store (ours)")
    if ours and ours.requests and realistic and realistic.metrics:
        cost = MeasuredCost(
            cpu_ms_per_request=round(ours.server_cpu_s * 1000 / ours.requests, 1),
            cpu_ms_per_1000_metrics=round(realistic.server_cpu_s * 1e6 / realistic.metrics, 1),
            measured="this run",
        )
        prod = estimate(Demand(150, 20_000), ReplicaShape(2, 2), cost)
        lines.append(
            f"server CPU: {cost.cpu_ms_per_request} ms per small request, {cost.cpu_ms_per_1000_metrics} ms per "
            f"1,000 metrics (rendering/capacity.py has {MEASURED.cpu_ms_per_request} and "
            f"{MEASURED.cpu_ms_per_1000_metrics}); a prod replica (cpu 2, 2 workers) carries "
            f"{prod.requests_per_s_per_replica:.0f} req/s or {prod.metrics_per_s_per_replica:,.0f} metrics/s"
        )
    return lines


def chart(results: list[Measurement], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logging = [r for r in results if r.scenario == "logging"]
    figure, axis = plt.subplots(figsize=(10, 4.5))
    axis.barh([r.mode for r in logging], [r.metrics_per_s for r in logging], color="#1f77b4")
    axis.set_xscale("log")
    axis.set_xlabel("metrics/s (log scale)")
    axis.set_title("MLflow ingest through TLS + basic-auth + PgBouncer (local platform)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--threads", type=int, default=4, help="client threads for the ingest modes")
    parser.add_argument("--scale", type=int, default=1, help="multiply the work of the ingest modes")
    parser.add_argument("--jobs", type=int, nargs="+", default=[50, 200, 500])
    parser.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="Postgres max_connections of both poolers (default: what the shipped pool plan needs, no more)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the side-by-side comparisons")
    parser.add_argument("--auth-seconds", type=float, default=5.0, help="length of one auth round per variant")
    parser.add_argument(
        "--only-concurrency", action="store_true", help="only the concurrency scenario (and the COPY ceiling)"
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    import mlflow

    requests = RequestLog()
    requests.install()
    results: list[Measurement] = []
    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    args.out.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, dict[str, float]] = {}
    say = (lambda _: None) if args.quiet else print
    if args.max_connections is None:
        from localplatform.target import required_max_connections

        args.max_connections = required_max_connections(PlatformOptions(state_dir=work))
    say(f"max_connections {args.max_connections} for ours and for the unpooled comparison")
    try:
        with contextlib.ExitStack() as stack:
            say("ours (basic-auth with cache, PgBouncer, TLS, set-based store)")
            ours = stack.enter_context(platform(work / "ours", False, max_connections=args.max_connections))
            with client_env(ours):
                h = Harness(ours, requests)
                if not args.only_concurrency:
                    results += logging_modes(h, args.threads, args.scale)
                for jobs in args.jobs:
                    say(f"  {jobs} concurrent jobs through PgBouncer")
                    results.append(concurrency(h, "PgBouncer", jobs, deadline_s=120))
                ceiling = copy_ceiling(ours, 200_000)
            if not args.only_concurrency:
                # Side by side: every variant runs at once and the rounds alternate between them, so
                # a noisy neighbour slows all of them alike and the ratios hold.
                side = stack.enter_context(contextlib.ExitStack())
                variants = {"ours": ours}
                for name, options in SIDE_BY_SIDE.items():
                    say(f"starting {name}")
                    variants[name] = side.enter_context(platform(work / name, False, **options))
                say("tracking store: set-based vs MLflow's, log_batch 1000")
                results += interleaved(
                    requests,
                    {"set-based store (ours)": variants["ours"], "MLflow's store": variants["stock-store"]},
                    args.rounds,
                    lambda h, label, shape: log_batch_load(
                        h,
                        _client(),
                        _experiment("plugin"),
                        args.threads,
                        shape[0],
                        shape[1],
                        f"{shape[2]}, {label}",
                        16000 * args.scale,
                    ),
                    shapes=(REALISTIC_1000, WIDE_1000),
                )
                say("profile: where the server's time goes, wide log_batch 1000, set-based vs MLflow's store")
                for label, name in (
                    ("wide log_batch 1000, set-based store (ours)", "ours"),
                    ("wide log_batch 1000, MLflow's store", "stock-store"),
                ):
                    with client_env(variants[name]):
                        h = Harness(variants[name], requests)
                        profiles[label] = profile(
                            variants[name],
                            args.out / f"profile-{name}.collapsed",
                            lambda h=h: log_batch_load(
                                h,
                                _client(),
                                _experiment("profile"),
                                args.threads,
                                WIDE_1000[0],
                                WIDE_1000[1],
                                "profiled",
                                16000 * args.scale,
                            ),
                        )
                with client_env(ours):
                    profiles["auth, one log_metric per request as a training-job user"] = profile(
                        ours,
                        args.out / "profile-auth.collapsed",
                        lambda: auth_load(Harness(ours, requests), "profiled", 8, args.auth_seconds),
                    )
                say("auth: ours vs no auth vs MLflow's defaults, one log_metric per request")
                results += interleaved(
                    requests,
                    {
                        AUTH_OURS: variants["ours"],
                        AUTH_OURS_ADMIN: variants["ours"],
                        AUTH_OFF: variants["no-auth"],
                        AUTH_DEFAULTS: variants["mlflow-defaults"],
                    },
                    args.rounds,
                    lambda h, label, _: auth_load(h, label, 8, args.auth_seconds, as_admin=label == AUTH_OURS_ADMIN),
                    shapes=(None,),
                )
                side.close()
                say("tuning: admission limit and workers under 16 clients sending log_batch 100")
                tuning = {}
                for name, options in TUNING.items():
                    say(f"starting {name}")
                    tuning[name] = stack.enter_context(platform(work / name.replace(" ", "-"), False, **options))
                results += interleaved(
                    requests,
                    tuning,
                    args.rounds,
                    lambda h, label, _: tuning_load(h, label, 16, args.auth_seconds),
                    shapes=(None,),
                )
        say("concurrency straight to PostgreSQL (same max_connections)")
        with (
            platform(work / "direct", False, pooler="direct", max_connections=args.max_connections) as direct,
            client_env(direct),
        ):
            for jobs in args.jobs:
                say(f"  {jobs} concurrent jobs straight to PostgreSQL")
                results.append(concurrency(Harness(direct, requests), "direct to PostgreSQL", jobs, deadline_s=120))
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the platforms are stopped; their data is not needed

    machine = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": str(os.cpu_count()),
        "python": host.python_version(),
        "mlflow": mlflow.__version__,
        "machine": host.machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": machine,
        "results": [
            {
                **{k: v for k, v in asdict(r).items() if k != "latencies"},
                "metrics_per_s": r.metrics_per_s,
                "requests_per_s": r.requests_per_s,
            }
            for r in results
        ],
        "copy_ceiling": ceiling,
        "profiles": profiles,
    }
    lines = summary(results)
    for label, shares in profiles.items():
        lines.append(
            f"profile, {label}: "
            + ", ".join(f"{share:.0%} {name}" for name, share in shares.items())
            + " (share of the server's busy samples)"
        )
    document["summary"] = lines
    (args.out / "results.json").write_text(json.dumps(document, indent=2))
    table = markdown(results, ceiling, machine) + "\n" + "\n".join(f"- {line}" for line in lines) + "\n"
    (args.out / "results.md").write_text(table)
    chart(results, args.out / "ingest.png")
    print(table)
    print(f"written to {args.out}/ (results.json, results.md, ingest.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

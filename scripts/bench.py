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
import sys
import tempfile
import threading
import time
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

    def measure(self, scenario: str, mode: str, metrics: int, work: Callable[[], None], notes: str = "") -> Measurement:
        mlflow_pid = self.platform.component("mlflow").pid or 0
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
    from mlflow.entities import Metric

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

    now = int(time.time() * 1000)
    for size, keys, label in (
        (100, 10, "log_batch 100"),
        (1000, 10, "log_batch 1000 (10 keys × 100 steps)"),
        (1000, 1000, "log_batch 1000 (1000 distinct keys)"),
    ):
        ids = runs(threads)
        batches = max(2, (20 * scale * 1000) // (size * threads))

        def batch(i: int, size: int = size, keys: int = keys, batches: int = batches, ids: list[str] = ids) -> None:
            for b in range(batches):
                metrics = [Metric(f"m{j % keys}", float(j), now, b * (size // keys) + j // keys) for j in range(size)]
                client.log_batch(ids[i], metrics=metrics)

        results.append(h.measure("logging", label, threads * batches * size, lambda: in_threads(threads, batch)))

    ids = runs(threads)
    steps = 500 * scale

    def asynchronous(i: int) -> None:
        for s in range(steps):
            mlflow.log_metric("loss", 0.1 * s, step=s, run_id=ids[i], synchronous=False)
        mlflow.flush_async_logging()

    results.append(
        h.measure(
            "logging",
            "MLflow async logging",
            threads * steps,
            lambda: in_threads(threads, asynchronous),
            notes="log_metric(synchronous=False)",
        )
    )
    return results


def auth_load(h: Harness, label: str, threads: int, seconds: float) -> Measurement:
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.create_experiment(f"bench/auth/{label}/{int(time.time())}")
    ids = [client.create_run(experiment).info.run_id for _ in range(threads)]
    counts = [0] * threads

    def body(i: int) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            client.log_metric(ids[i], "loss", 1.0, step=counts[i])
            counts[i] += 1

    measurement = h.measure("auth", label, 0, lambda: in_threads(threads, body))
    measurement.metrics = sum(counts)
    return measurement


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
            text = str(error)
            result = type(error).__name__ + (": pool timeout" if "QueuePool" in text else "")
            if "too many" in text or "remaining connection slots" in text:
                result += ": too many connections"
        with lock:
            outcome[result] = outcome.get(result, 0) + 1

    measurement = h.measure("concurrency", label, jobs * 300, lambda: in_threads(jobs, job))
    measurement.extra = {"jobs": jobs, "outcomes": outcome}
    measurement.metrics = outcome.get("ok", 0) * 300
    return measurement


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
        "| errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
        if r.extra.get("outcomes"):
            errors = ", ".join(f"{k}: {v}" for k, v in r.extra["outcomes"].items())
        lines.append(
            f"| {r.scenario} | {r.mode} | {r.metrics} | {r.seconds:.1f} | {r.metrics_per_s:,.0f} | {r.requests} | "
            f"{r.requests_per_s:,.1f} | {r.p50_ms:.0f} | {r.p99_ms:.0f} | {r.server_cpu_s:.1f} | {r.pg_transactions} "
            f"| {errors} |"
        )
    best = max((r.metrics_per_s for r in results if r.scenario == "logging"), default=0.0)
    lines += [
        "",
        f"COPY ceiling: {ceiling['rows_per_s']:,.0f} rows/s; best MLflow ingest {best:,.0f} metrics/s = "
        f"{best / ceiling['rows_per_s']:.1%} of it.",
    ]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--max-connections", type=int, default=60, help="Postgres max_connections, both poolers")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    import mlflow

    requests = RequestLog()
    requests.install()
    results: list[Measurement] = []
    work = Path(tempfile.mkdtemp(prefix="mlflow-bench-"))
    say = (lambda _: None) if args.quiet else print
    try:
        say("ingest and auth (ours: basic-auth with cache, PgBouncer, TLS)")
        with platform(work / "ours", False, max_connections=args.max_connections) as ours, client_env(ours):
            h = Harness(ours, requests)
            results += logging_modes(h, args.threads, args.scale)
            results.append(auth_load(h, "basic-auth, our settings (cache 60 s)", 8, 8))
            for jobs in args.jobs:
                say(f"  {jobs} concurrent jobs through PgBouncer")
                results.append(concurrency(h, "PgBouncer", jobs, deadline_s=120))
            ceiling = copy_ceiling(ours, 200_000)
        for label, options in (
            ("no auth", {"auth": "off"}),
            ("basic-auth, MLflow defaults (no cache)", {"auth": "mlflow-defaults"}),
        ):
            say(f"auth: {label}")
            with platform(work / label.split()[0], False, **options) as other, client_env(other):
                results.append(auth_load(Harness(other, requests), label, 8, 8))
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
            {**asdict(r), "metrics_per_s": r.metrics_per_s, "requests_per_s": r.requests_per_s} for r in results
        ],
        "copy_ceiling": ceiling,
    }
    (args.out / "results.json").write_text(json.dumps(document, indent=2))
    table = markdown(results, ceiling, machine)
    (args.out / "results.md").write_text(table)
    chart(results, args.out / "ingest.png")
    print(table)
    auth = {r.mode: r.requests_per_s for r in results if r.scenario == "auth"}
    ours_rps = auth.get("basic-auth, our settings (cache 60 s)", 0.0)
    off_rps = auth.get("no auth", 0.0)
    if off_rps:
        print(f"auth overhead of our settings: {1 - ours_rps / off_rps:.1%} of the no-auth throughput")
    guide = next((r for r in results if r.mode == "guide log_metrics_batched"), None)
    ours_helper = next((r for r in results if r.mode.startswith("batching helper")), None)
    if guide and ours_helper and ours_helper.requests:
        per_metric = (guide.requests / guide.metrics) / (ours_helper.requests / ours_helper.metrics)
        print(f"requests per metric, guide helper vs ours: {per_metric:.0f}× fewer with ours")
    print(f"written to {args.out}/ (results.json, results.md, ingest.png)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Server CPU per 1,000 metrics of ``log_batch``: the set-based tracking store against MLflow's own,
side by side in one run (not part of ``make test``).

Two local platforms, identical except ``tracking_store`` (TLS, basic-auth as the admin, PgBouncer,
workers, pools): rounds alternate between them, so a noisy neighbour on the shared machine slows
both alike. The load comes from separate processes that post pre-encoded REST bodies over HTTPS,
so the client is not what is measured. CPU is user+system time from ``/proc`` of each platform's
own process trees: the MLflow server (parent and workers), PgBouncer, nginx, and PostgreSQL
(postmaster and backends) reported separately.

    .venv/bin/python scripts/store_cpu.py [--rounds 3] [--processes 4] [--requests 12] [--out FILE]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localplatform import LocalPlatform, PlatformOptions  # noqa: E402
from localplatform.errors import PlatformError  # noqa: E402
from rendering.tracking_store import TRACKING_STORES  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STORES = TRACKING_STORES
SHAPES = {"10 keys x 100 steps": (10, 100), "1,000 distinct keys": (1000, 1)}
POD = ("mlflow", "pgbouncer", "nginx")


def tree_cpu_seconds(root_pid: int) -> float:
    """User+system CPU of a process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                children.setdefault(int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(
                    int(entry.name)
                )
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        stack += children.get(pid, [])
    return total


def cpu(platform: LocalPlatform) -> dict[str, float]:
    out = {}
    for name in (*POD, "postgres"):
        pid = platform.component(name).pid
        if pid is None:
            raise PlatformError(f"{name} is not running")
        out[name] = tree_cpu_seconds(pid)
    return out


def send(url: str, authorization: str, ca_file: str, bodies: list[bytes]) -> tuple[int, list[str], float]:
    """One load process: post each pre-encoded body once; (ok, errors, seconds)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = ca_file
    headers = {"Authorization": authorization, "Content-Type": "application/json"}
    ok, errors = 0, []
    started = time.perf_counter()
    for body in bodies:
        response = session.post(f"{url}/api/2.0/mlflow/runs/log-batch", data=body, headers=headers, timeout=120)
        if response.status_code == 200:
            ok += 1
        else:
            errors.append(f"{response.status_code} {response.text[:200]}")
    return ok, errors, time.perf_counter() - started


@dataclass
class Tally:
    metrics: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def per_thousand_ms(self, names: tuple[str, ...]) -> float:
        return sum(self.cpu.get(n, 0.0) for n in names) * 1e6 / self.metrics if self.metrics else 0.0


@dataclass
class Target:
    platform: LocalPlatform
    url: str
    authorization: str
    ca_file: str
    runs: dict[str, str]


def target(platform: LocalPlatform) -> Target:
    env = platform.client_env()
    token = base64.b64encode(f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}".encode()).decode()
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]
    session.headers["Authorization"] = f"Basic {token}"
    url = env["MLFLOW_TRACKING_URI"]
    experiment = session.post(
        f"{url}/api/2.0/mlflow/experiments/create", json={"name": f"store-cpu-{uuid.uuid4().hex[:8]}"}, timeout=60
    )
    experiment.raise_for_status()
    runs = {}
    for shape in SHAPES:
        run = session.post(
            f"{url}/api/2.0/mlflow/runs/create",
            json={"experiment_id": experiment.json()["experiment_id"], "run_name": shape},
            timeout=60,
        )
        run.raise_for_status()
        runs[shape] = run.json()["run"]["info"]["run_id"]
    return Target(platform, url, f"Basic {token}", env["MLFLOW_TRACKING_SERVER_CERT_PATH"], runs)


def bodies(run_id: str, keys: int, steps: int, first_step: int, count: int) -> list[bytes]:
    """``count`` requests of ``keys × steps`` metrics each, every one new (steps advance)."""
    out = []
    for n in range(count):
        base = first_step + n * steps
        metrics = [
            {"key": f"metric_{k:04d}", "value": (k + s) * 0.001, "timestamp": 1_700_000_000_000 + s, "step": s}
            for s in range(base, base + steps)
            for k in range(keys)
        ]
        out.append(json.dumps({"run_id": run_id, "metrics": metrics}).encode())
    return out


@contextlib.contextmanager
def platforms(work: Path) -> Iterator[dict[str, LocalPlatform]]:
    with contextlib.ExitStack() as stack:
        started = {}
        for store in STORES:
            instance = LocalPlatform(PlatformOptions(state_dir=work / store, tracking_store=store))
            stack.callback(instance.stop)
            print(f"starting the {store} platform", flush=True)
            instance.start()
            started[store] = instance
        yield started


def measure(args: argparse.Namespace) -> dict[str, dict[str, Tally]]:
    work = Path(tempfile.mkdtemp(prefix="mlflow-store-cpu-"))
    tallies = {store: {shape: Tally() for shape in SHAPES} for store in STORES}
    with platforms(work) as running, ProcessPoolExecutor(args.processes, mp_context=get_context("spawn")) as pool:
        targets = {store: target(instance) for store, instance in running.items()}
        list(pool.map(abs, range(args.processes)))  # start the load processes before measuring
        step = 0
        for round_ in range(args.rounds):
            for shape, (keys, steps) in SHAPES.items():
                for store in STORES if round_ % 2 == 0 else STORES[::-1]:
                    t = targets[store]
                    loads = [
                        bodies(t.runs[shape], keys, steps, step + p * args.requests * steps, args.requests)
                        for p in range(args.processes)
                    ]
                    before = cpu(t.platform)
                    n = len(loads)
                    results = list(pool.map(send, [t.url] * n, [t.authorization] * n, [t.ca_file] * n, loads))
                    after = cpu(t.platform)
                    tally = tallies[store][shape]
                    tally.metrics += sum(ok for ok, _, _ in results) * keys * steps
                    tally.seconds += max(seconds for _, _, seconds in results)
                    for name in after:
                        tally.cpu[name] = tally.cpu.get(name, 0.0) + after[name] - before[name]
                    tally.errors += [e for _, errors, _ in results for e in errors]
                step += args.processes * args.requests * steps
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    return tallies


def report(tallies: dict[str, dict[str, Tally]]) -> str:
    lines = [
        "| log_batch of 1,000 metrics | store | metrics/s | MLflow server ms / 1,000 | "
        "pod (MLflow+PgBouncer+nginx) ms / 1,000 | PostgreSQL ms / 1,000 | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for shape in SHAPES:
        for store in STORES:
            t = tallies[store][shape]
            rate = t.metrics / t.seconds if t.seconds else 0.0
            lines.append(
                f"| {shape} | {store} | {rate:,.0f} | {t.per_thousand_ms(('mlflow',)):.0f} | "
                f"{t.per_thousand_ms(POD):.0f} | {t.per_thousand_ms(('postgres',)):.0f} | {len(t.errors)} |"
            )
        new, stock = tallies["set-based"][shape], tallies["stock"][shape]
        ratios = [
            stock.per_thousand_ms(names) / new.per_thousand_ms(names) if new.per_thousand_ms(names) else 0.0
            for names in (("mlflow",), POD, ("postgres",))
        ]
        lines.append(f"| {shape} | stock ÷ set-based | | {ratios[0]:.1f}× | {ratios[1]:.1f}× | {ratios[2]:.1f}× | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--requests", type=int, default=12, help="log_batch requests per process and round")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    for name in ("rounds", "processes", "requests"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    try:
        table = report(measure(args))
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

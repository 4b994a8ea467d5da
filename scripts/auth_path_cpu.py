"""Server CPU per small request as a job user: the platform's app (fast auth path) against MLflow's
own ``basic-auth`` app and against no authentication, side by side in one run (not in ``make test``).

One local platform (set-based store, PgBouncer, the rendered auth ini with its credential cache).
Next to its server, two more MLflow servers are started from its own command line and environment
(``tests/store/auth_servers.py``): ``--app-name basic-auth`` ("stock") and no ``--app-name`` ("no
auth"), same workers, same databases, same run. The platform's own server is "ours". Requests go
straight to each server's loopback port (nginx is the same for all three and left out). The load
comes from separate processes posting pre-encoded bodies with keep-alive; rounds alternate the
order of the variants. CPU is user+system of each server's process tree from ``/proc``.

The job user has EDIT on the experiment only (a training job's grant); the run carries 200
latest metrics, 20 params and 10 tags, so stock's ``get_run`` per request has a run to load.

    .venv/bin/python scripts/auth_path_cpu.py [--rounds 4] [--processes 4] [--requests 150] [--out FILE]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from localplatform import LocalPlatform, PlatformOptions  # noqa: E402
from localplatform.errors import PlatformError  # noqa: E402
from mlflowbench.measure import tree_cpu_seconds  # noqa: E402
from tests.store.auth_servers import STOCK_APP, Server, extra_servers  # noqa: E402

JOB_USER, JOB_PASSWORD = "job-user", "job-user-password-0123"
VARIANTS = ("ours", "stock", "no auth")
KINDS = ("log_metric", "set_tag", "get_run")
PATHS = {
    "log_metric": ("POST", "/api/2.0/mlflow/runs/log-metric"),
    "set_tag": ("POST", "/api/2.0/mlflow/runs/set-tag"),
    "get_run": ("GET", "/api/2.0/mlflow/runs/get"),
}


def send(url: str, authorization: str | None, kind: str, bodies: list[bytes]) -> tuple[int, list[str], float]:
    """One load process: send each pre-encoded request once; (ok, errors, seconds)."""
    import requests

    session = requests.Session()
    session.trust_env = False
    headers = {"Host": "localhost", "Content-Type": "application/json"}
    if authorization:
        headers["Authorization"] = authorization
    method, path = PATHS[kind]
    ok, errors = 0, []
    started = time.perf_counter()
    for body in bodies:
        if method == "GET":
            response = session.get(f"{url}{path}?{body.decode()}", headers=headers, timeout=120)
        else:
            response = session.post(f"{url}{path}", data=body, headers=headers, timeout=120)
        if response.status_code == 200:
            ok += 1
        else:
            errors.append(f"{response.status_code} {response.text[:200]}")
    return ok, errors, time.perf_counter() - started


def bodies(kind: str, run_id: str, process: int, round_: int, count: int) -> list[bytes]:
    if kind == "get_run":
        return [f"run_id={run_id}".encode()] * count
    out = []
    for n in range(count):
        step = (round_ * 100 + process) * 100_000 + n
        if kind == "log_metric":
            body = {
                "run_id": run_id,
                "key": f"m{process}",
                "value": n * 0.5,
                "timestamp": 1_700_000_000_000,
                "step": step,
            }
        else:
            body = {"run_id": run_id, "key": f"t{process}", "value": str(step)}
        out.append(json.dumps(body).encode())
    return out


@dataclass
class Tally:
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    errors: list[str] = field(default_factory=list)


def prepare(server: Server, admin: tuple[str, str]) -> str:
    def call(method: str, path: str, body: Mapping[str, object]) -> dict[str, object]:
        response = server.request(method, path, admin, json=body)
        if response.status_code != 200:
            raise PlatformError(f"{path}: {response.status_code} {response.text[:300]}")
        return response.json()

    experiment = str(call("POST", "/api/2.0/mlflow/experiments/create", {"name": "auth-path-cpu"})["experiment_id"])
    run = call("POST", "/api/2.0/mlflow/runs/create", {"experiment_id": experiment})["run"]
    run_id = str(run["info"]["run_id"])  # type: ignore[index]
    metrics = [{"key": f"metric_{k:03d}", "value": k, "timestamp": 1, "step": 0} for k in range(200)]
    params = [{"key": f"param_{k:02d}", "value": str(k)} for k in range(20)]
    tags = [{"key": f"tag_{k:02d}", "value": str(k)} for k in range(10)]
    call(
        "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "metrics": metrics, "params": params, "tags": tags}
    )
    call("POST", "/api/2.0/mlflow/users/create", {"username": JOB_USER, "password": JOB_PASSWORD})
    grant = {"username": JOB_USER, "resource_type": "experiment", "resource_id": experiment, "permission": "EDIT"}
    call("POST", "/api/3.0/mlflow/users/permissions/grant", grant)
    return run_id


def measure(args: argparse.Namespace) -> tuple[dict[tuple[str, str], Tally], str]:
    work = Path(tempfile.mkdtemp(prefix="mlflow-auth-cpu-"))
    platform = LocalPlatform(PlatformOptions(state_dir=work / "platform"))
    tallies = {(v, k): Tally() for v in VARIANTS for k in KINDS}
    job = "Basic " + base64.b64encode(f"{JOB_USER}:{JOB_PASSWORD}".encode()).decode()
    with contextlib.ExitStack() as stack:
        stack.callback(platform.stop)
        print("starting the platform", flush=True)
        platform.start()
        workers = platform.options.workers
        stock, none = stack.enter_context(extra_servers(platform, [STOCK_APP, None], work, workers))
        mlflow_pid = platform.component("mlflow").pid
        port = platform.component("mlflow").port
        assert mlflow_pid is not None and port is not None
        ours = Server("mlflow-platform", f"http://127.0.0.1:{port}", mlflow_pid)
        env = platform.client_env()
        run_id = prepare(ours, (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]))
        servers = {"ours": ours, "stock": stock, "no auth": none}
        pool = stack.enter_context(ProcessPoolExecutor(args.processes, mp_context=get_context("spawn")))
        list(pool.map(abs, range(args.processes)))  # start the load processes before measuring
        for variant, server in servers.items():  # warm-up: credential caches, connections
            auth = None if variant == "no auth" else job
            list(pool.map(send, [server.url] * 2, [auth] * 2, ["get_run"] * 2, [[f"run_id={run_id}".encode()] * 5] * 2))
        for round_ in range(args.rounds):
            for kind in KINDS:
                order = VARIANTS if round_ % 2 == 0 else VARIANTS[::-1]
                for variant in order:
                    server, n = servers[variant], args.processes
                    loads = [bodies(kind, run_id, p, round_, args.requests) for p in range(n)]
                    auth = None if variant == "no auth" else job
                    before = tree_cpu_seconds(server.pid)
                    results = list(pool.map(send, [server.url] * n, [auth] * n, [kind] * n, loads))
                    after = tree_cpu_seconds(server.pid)
                    tally = tallies[(variant, kind)]
                    tally.requests += sum(ok for ok, _, _ in results)
                    tally.seconds += max(seconds for _, _, seconds in results)
                    tally.cpu += after - before
                    tally.errors += [e for _, errors, _ in results for e in errors]
            print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    return tallies, open("/proc/loadavg").read().strip()


def report(tallies: dict[tuple[str, str], Tally], load: str) -> str:
    lines = [
        "| request (job user) | app | requests/s | MLflow server CPU ms / request | errors |",
        "|---|---|---:|---:|---:|",
    ]
    for kind in KINDS:
        for variant in VARIANTS:
            t = tallies[(variant, kind)]
            rate = t.requests / t.seconds if t.seconds else 0.0
            ms = t.cpu * 1000 / t.requests if t.requests else 0.0
            lines.append(f"| {kind} | {variant} | {rate:,.0f} | {ms:.1f} | {len(t.errors)} |")
        ours, stock, none = (tallies[(v, kind)] for v in VARIANTS)
        cpu_ratio = (ours.cpu / ours.requests) / (stock.cpu / stock.requests) if ours.requests and stock.requests else 0
        overhead = 1 - (ours.requests / ours.seconds) / (none.requests / none.seconds) if none.seconds else 0
        lines.append(
            f"| {kind} | ours ÷ stock CPU; overhead (throughput vs no auth) | | {cpu_ratio:.2f}; {overhead:.0%} | |"
        )
    lines.append(f"\nLoad average at the end (/proc/loadavg): {load}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--requests", type=int, default=150, help="requests per process, kind, variant and round")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    args = parser.parse_args(argv)
    for name in ("rounds", "processes", "requests"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be >= 1, got {getattr(args, name)}", file=sys.stderr)
            return 2
    try:
        table = report(*measure(args))
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

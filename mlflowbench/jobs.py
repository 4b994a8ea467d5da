"""Concurrency as users live it: N training jobs against the shipped local platform.

    .venv/bin/python -m mlflowbench.jobs [--paced 50,200,500] [--burst 500] [--poolers pgbouncer,direct]
                                         [--processes 4] [--out docs/bench/jobs]

``make bench-jobs`` runs the defaults (about 25 minutes; not part of ``make test``). Each job
(``jobs_plan``) creates a run, logs its parameters, ``log_batch``es 100 metrics every 10 s for 2
minutes, logs one artifact and ends the run; paced jobs start spread over one interval, a burst
all at once. The jobs run in 4–8 separate generator processes (``jobs_load``), one thread, one
HTTP session (so one connection) and one run per job, with MLflow's own retry session and the
``mlflow-client`` ConfigMap's budget (``rendering.client.TRAINING_CLIENT_RETRY``).

They run as a **job user**: a non-admin created by the platform's team bootstrap
(``mlflowops.bootstrap``, what ``scripts/bootstrap_teams.py`` runs) as an ``EDIT`` member of the
team that owns the experiment, the team declared to the server app (``PlatformOptions.teams``)
as the stack config declares it. Admins skip MLflow's permission checks, so they would hide part
of the server's cost.

Two platforms run side by side, identical except ``PlatformOptions.pooler`` (``pgbouncer`` and
``direct``); the scenarios alternate between them, so a noisy neighbour on the shared machine
slows both alike. Artifacts are ``proxied`` (the upload goes through the server, as the job's
one connection). Per scenario and pooler the report gives offered against achieved rates,
failed jobs by cause, retries, p50/p99 per request type, server CPU (the pod's processes;
PostgreSQL separately), the most PostgreSQL client backends seen, and PgBouncer's most waiting
clients (sampled every 0.5 s).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import platform as host
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from localplatform import LocalPlatform, PlatformOptions
from localplatform.errors import PlatformError
from rendering.ownership import TeamOwnership

from .jobs_load import Target, generate, pause, warm
from .jobs_plan import RetryPolicy, Scenario, ScenarioReport, scenarios, summarize, training_job_policy
from .jobs_report import markdown
from .measure import tree_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
TEAM, PROJECT, KIND = "bench", "jobs", "training"
EXPERIMENT = f"{TEAM}/{PROJECT}/{KIND}"
JOB_USER = "bench-job"
PASSWORD_ENV = "MLFLOWBENCH_JOB_PASSWORD"  # noqa: S105 (a variable name, not a password)
POD = ("mlflow", "pgbouncer", "nginx", "pgbouncer-exporter")
"""The server pod's processes on EKS; PostgreSQL (RDS) is reported apart, S3 is AWS's."""
POOLERS = ("pgbouncer", "direct")


def _cpu(instance: LocalPlatform) -> dict[str, float]:
    out = {}
    for name, handle in instance.components().items():
        if name in (*POD, "postgres") and handle.pid is not None:
            out[name] = tree_cpu_seconds(handle.pid)
    return out


class Sampler:
    """Every 0.5 s during a scenario: PostgreSQL client backends (``pg_stat_activity``, this
    session excluded) and, through PgBouncer, its most waiting clients (the exporter's gauges)."""

    def __init__(self, instance: LocalPlatform) -> None:
        self.instance = instance
        self.max_backends = 0
        self.max_waiting = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        import psycopg2
        import requests

        params: dict[str, Any] = dict(self.instance.database_params("postgres", role="migrator"))
        ports = self.instance.metadata().get("ports")
        metrics_port = ports.get("pgbouncer-metrics") if isinstance(ports, dict) else None
        with contextlib.closing(psycopg2.connect(**params)) as connection:
            connection.autocommit = True
            with connection.cursor() as cursor:
                while not self._stop.wait(0.5):
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    )
                    row = cursor.fetchone()
                    self.max_backends = max(self.max_backends, int(row[0]) if row else 0)
                    if metrics_port:
                        with contextlib.suppress(requests.RequestException):
                            text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
                            self.max_waiting = max(self.max_waiting, _waiting_clients(text))


def _waiting_clients(prometheus_text: str) -> int:
    total = 0.0
    for line in prometheus_text.splitlines():
        if line.startswith("pgbouncer_pools_client_waiting_connections{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def _teams_yaml(path: Path) -> Path:
    """The bootstrap's input: one team owning the benchmark's experiment, the job user an EDIT
    member with a password from the environment (never written anywhere)."""
    document = {
        "version": 1,
        "users": {JOB_USER: {"password_env": PASSWORD_ENV}},
        "teams": {TEAM: {"projects": {PROJECT: [KIND]}, "members": {JOB_USER: "EDIT"}}},
    }
    path.write_text(json.dumps(document))  # JSON is YAML
    path.chmod(0o600)
    return path


@contextlib.contextmanager
def _admin_env(instance: LocalPlatform, extra: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith(("MLFLOW_", "AWS_"))]:
        del os.environ[key]
    os.environ.update(instance.client_env())
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def job_target(instance: LocalPlatform, work: Path, password: str, policy: RetryPolicy) -> Target:
    """Bootstrap the job user and the team's experiment as an operator would, then find the
    experiment as the job user (which also proves the user can read it)."""
    import requests

    from mlflowops import bootstrap

    with _admin_env(instance, {PASSWORD_ENV: password}):
        code = bootstrap.main([str(_teams_yaml(work / "teams.yaml"))])
    if code != 0:
        raise PlatformError(f"the team bootstrap failed with exit status {code}")
    env = instance.client_env()
    token = base64.b64encode(f"{JOB_USER}:{password}".encode()).decode()
    session = requests.Session()
    session.trust_env = False
    response = session.get(
        f"{env['MLFLOW_TRACKING_URI']}/api/2.0/mlflow/experiments/get-by-name",
        params={"experiment_name": EXPERIMENT},
        headers={"Authorization": f"Basic {token}"},
        verify=env["MLFLOW_TRACKING_SERVER_CERT_PATH"],
        timeout=60,
    )
    if response.status_code != 200:
        raise PlatformError(f"the job user cannot read {EXPERIMENT}: HTTP {response.status_code} {response.text[:200]}")
    return Target(
        env["MLFLOW_TRACKING_URI"],
        f"Basic {token}",
        env["MLFLOW_TRACKING_SERVER_CERT_PATH"],
        response.json()["experiment"]["experiment_id"],
        policy,
    )


@contextlib.contextmanager
def platforms(work: Path, poolers: Sequence[str], progress: bool) -> Iterator[dict[str, LocalPlatform]]:
    team = TeamOwnership(TEAM, projects={PROJECT: (KIND,)}, members={JOB_USER: "EDIT"})
    with contextlib.ExitStack() as stack:
        started = {}
        for pooler in poolers:
            options = PlatformOptions(
                state_dir=work / pooler,
                access_mode="proxied",
                pooler=pooler,  # type: ignore[arg-type]
                teams=(team,),
            )
            instance = LocalPlatform(options, progress=print if progress else None)
            stack.callback(instance.stop)
            print(f"starting the {pooler} platform", flush=True)
            instance.start()
            started[pooler] = instance
        yield started


def run_scenario(
    pool: ProcessPoolExecutor, processes: int, instance: LocalPlatform, target: Target, scenario: Scenario, pooler: str
) -> ScenarioReport:
    offsets = scenario.start_offsets()
    shares = [[(i, offsets[i]) for i in range(p, scenario.jobs, processes)] for p in range(processes)]
    shares = [share for share in shares if share]
    t0 = time.time() + 3.0  # every generator has its threads and sessions ready before the start
    before = _cpu(instance)
    with Sampler(instance) as sampler:
        futures = [pool.submit(generate, target, scenario, share, t0) for share in shares]
        results = [job for future in futures for job in future.result()]
    wall = time.time() - t0
    after = _cpu(instance)
    cpu = {name: after[name] - before.get(name, 0.0) for name in after}
    return summarize(scenario, pooler, results, wall, cpu, sampler.max_backends, sampler.max_waiting)


def write(out: Path, reports: Sequence[ScenarioReport], policy: RetryPolicy, machine: dict[str, str]) -> None:
    """``<out>.md`` and ``<out>.json`` with the scenarios measured so far."""
    machine = {**machine, "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(markdown(reports, policy, machine))
    data = {"machine": machine, "policy": asdict(policy), "reports": [asdict(r) for r in reports]}
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")


def parse_sizes(text: str, option: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"error: {option} expects comma-separated job counts, e.g. 50,200,500; got {text!r}") from None
    if any(n < 1 for n in sizes):
        raise SystemExit(f"error: {option} job counts must be >= 1, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlflowbench.jobs", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--paced", default="50,200,500", help="paced job counts, comma-separated ('' for none)")
    parser.add_argument("--burst", default="500", help="burst scenarios' job counts (comma-separated; '' for none)")
    parser.add_argument("--poolers", default=",".join(POOLERS), help="pgbouncer, direct or both (comma-separated)")
    parser.add_argument("--processes", type=int, default=4, help="generator processes, 4 to 8")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds of training between log_batch calls")
    parser.add_argument("--batches", type=int, default=12, help="log_batch calls per job")
    parser.add_argument("--out", type=Path, help="write <out>.md and <out>.json (e.g. docs/bench/jobs)")
    parser.add_argument("--quiet", action="store_true", help="no platform start-up progress")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        paced, burst = parse_sizes(args.paced, "--paced"), parse_sizes(args.burst, "--burst")
    except SystemExit as stop:
        print(stop.code, file=sys.stderr)
        return 2
    poolers = [p for p in args.poolers.split(",") if p]
    problems = [f"--poolers: unknown pooler {p!r}, expected pgbouncer or direct" for p in poolers if p not in POOLERS]
    if not 4 <= args.processes <= 8:
        problems.append(f"--processes must be from 4 to 8, got {args.processes}")
    if not args.interval > 0:
        problems.append(f"--interval must be > 0 seconds, got {args.interval:g}")
    if args.batches < 1:
        problems.append(f"--batches must be >= 1, got {args.batches}")
    if not poolers or not (paced or burst):
        problems.append("nothing to run: give at least one pooler and one scenario")
    if problems:
        print(f"error: {problems[0]}", file=sys.stderr)
        return 2
    plan = scenarios(paced, burst, args.interval, args.batches)
    policy = training_job_policy()
    work = Path(tempfile.mkdtemp(prefix="mlflowbench-jobs-"))
    reports: list[ScenarioReport] = []
    machine = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": str(os.cpu_count()),
        "python": host.python_version(),
        "processes": str(args.processes),
    }
    try:
        with (
            platforms(work, poolers, not args.quiet) as running,
            ProcessPoolExecutor(args.processes, mp_context=get_context("spawn"), initializer=warm) as pool,
        ):
            list(pool.map(pause, [2.0] * args.processes))  # spawn every generator (they start on demand)
            targets = {p: job_target(running[p], work / p, f"job-{os.urandom(12).hex()}", policy) for p in poolers}
            for number, scenario in enumerate(plan):
                for pooler in poolers if number % 2 == 0 else poolers[::-1]:
                    print(f"{scenario.name} jobs, {pooler}: running", flush=True)
                    report = run_scenario(pool, args.processes, running[pooler], targets[pooler], scenario, pooler)
                    print(f"  {report.jobs - report.failed_jobs}/{report.jobs} ok, {report.errors or 'no errors'}")
                    reports.append(report)
                    if args.out:  # after every scenario: a long run cut short keeps what it measured
                        write(args.out, reports, policy, machine)
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(markdown(reports, policy, machine))
    return 0 if all(r.failed_jobs == 0 for r in reports) else 3


if __name__ == "__main__":
    raise SystemExit(main())

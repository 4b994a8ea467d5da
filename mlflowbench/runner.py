"""The run: the platforms side by side, their identities and runs, and the interleaved rounds.

Every variant (:data:`.scenarios.VARIANTS`) is started once with the same options except
``server`` and ``auth``; then, round after round, every cell of the table is measured on its
platform, the servers' order alternating between rounds, so a noisy neighbour on the shared
machine slows both servers alike. A round of one cell is short (a few seconds of saturated load);
its CPU is the difference of two ``/proc`` samples of that platform's process trees.
"""

from __future__ import annotations

import base64
import contextlib
import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from localplatform import LocalPlatform, PlatformOptions
from localplatform.errors import PlatformError
from mlflowops.authapi import CREATE_USER, GRANT_USER_PERMISSION

from . import measure
from .load import Job, LoadProcesses, Outcome, Target
from .scenarios import API, SCENARIOS, Cell, IdentityName, Scenario, Variant

Say = Callable[[str], None]


@dataclass
class Tally:
    """One cell, summed over its rounds."""

    cell: Cell
    requests: int = 0
    failed: int = 0
    seconds: float = 0.0
    cpu_s: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    rounds: int = 0

    def add(self, outcomes: list[Outcome], cpu: dict[str, float]) -> None:
        self.rounds += 1
        self.requests += sum(o.ok for o in outcomes)
        self.failed += sum(o.failed for o in outcomes)
        self.seconds += max((o.elapsed_s for o in outcomes), default=0.0)
        for name, seconds in cpu.items():
            self.cpu_s[name] = self.cpu_s.get(name, 0.0) + seconds
        for outcome in outcomes:
            self.errors += outcome.errors[: max(0, 5 - len(self.errors))]
            self.latencies_s += outcome.latencies_s

    @property
    def metrics(self) -> int:
        return self.requests * self.cell.scenario.metrics_per_request


@dataclass
class Platform:
    """A started variant, with what the load needs to reach it."""

    variant: Variant
    instance: LocalPlatform
    url: str
    ca_file: str
    admin: str | None
    """``Basic …`` of the admin; None without auth."""
    client_env: dict[str, str]
    experiment_id: str = ""
    job_user: str | None = None
    job_user_env: dict[str, str] = field(default_factory=dict)
    runs: dict[tuple[str, IdentityName], str] = field(default_factory=dict)

    def pids(self) -> dict[str, int]:
        out = {}
        for name in measure.COMPONENTS:
            pid = self.instance.component(name).pid
            if pid is None:
                raise PlatformError(f"{self.variant.name}: {name} is not running")
            out[name] = pid
        return out

    def session(self) -> Any:
        import requests

        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        if self.admin:
            session.headers["Authorization"] = self.admin
        return session

    def target(self, cell: Cell) -> Target:
        job = cell.identity == "job user"
        return Target(
            url=self.url,
            ca_file=self.ca_file,
            authorization=self.job_user if job else self.admin,
            run_id=self.runs[(cell.scenario.name, cell.identity)],
            client_env=self.job_user_env if job else self.client_env,
        )


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _post(session: Any, url: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = session.post(f"{url}{path}", json=body, timeout=60)
    if response.status_code != 200:
        raise PlatformError(f"setting up the benchmark: POST {path}: HTTP {response.status_code} {response.text[:200]}")
    return response.json()


def prepare(platform: Platform, identities: tuple[IdentityName, ...], scenarios: tuple[Scenario, ...]) -> None:
    """An experiment, a job user with EDIT on it (basic-auth platforms), and one run per
    scenario and identity; the ``get_run`` runs get a few params, tags and metrics to read."""
    env = platform.client_env
    session = platform.session()
    experiment = _post(session, platform.url, f"{API}/experiments/create", {"name": f"bench/{uuid.uuid4().hex[:8]}"})
    platform.experiment_id = str(experiment["experiment_id"])
    if platform.admin:
        username, password = f"bench-job-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
        _post(session, platform.url, CREATE_USER, {"username": username, "password": password})
        grant = {"resource_type": "experiment", "resource_id": platform.experiment_id, "permission": "EDIT"}
        _post(session, platform.url, GRANT_USER_PERMISSION, {"username": username, **grant})
        platform.job_user = _basic(username, password)
        platform.job_user_env = {**env, "MLFLOW_TRACKING_USERNAME": username, "MLFLOW_TRACKING_PASSWORD": password}
    for scenario in scenarios:
        for identity in identities:
            run = _post(
                session,
                platform.url,
                f"{API}/runs/create",
                {"experiment_id": platform.experiment_id, "run_name": f"{scenario.name} / {identity}"},
            )
            run_id = run["run"]["info"]["run_id"]
            platform.runs[(scenario.name, identity)] = run_id
            if scenario.path.endswith("/runs/get"):
                _post(
                    session,
                    platform.url,
                    f"{API}/runs/log-batch",
                    {
                        "run_id": run_id,
                        "params": [{"key": f"param_{i}", "value": str(i)} for i in range(5)],
                        "tags": [{"key": f"tag_{i}", "value": str(i)} for i in range(5)],
                        "metrics": [{"key": f"metric_{i}", "value": i, "timestamp": 1, "step": 0} for i in range(10)],
                    },
                )


WARM_UP_REQUESTS = 8
"""Per identity, before measuring: each worker's auth cache gets the credentials (the first
request of a user hashes its password, about a hundred times the cost of a cached one)."""


def warm_up(platform: Platform) -> None:
    session = platform.session()
    run_id = next(iter(platform.runs.values()))
    for authorization in {platform.admin, platform.job_user}:
        headers = {"Authorization": authorization} if authorization else {}
        for _ in range(WARM_UP_REQUESTS):
            session.get(f"{platform.url}{API}/runs/get", params={"run_id": run_id}, headers=headers, timeout=60)


@contextlib.contextmanager
def platforms(
    work: Path, variants: tuple[Variant, ...], say: Say, options: dict[str, Any] | None = None
) -> Iterator[dict[Variant, Platform]]:
    """Every variant started at once (most of a start is waiting for PostgreSQL, migrations and
    MLflow's import), and stopped at the end, also on failure."""
    with contextlib.ExitStack() as stack:
        instances = {}
        for variant in variants:
            instance = LocalPlatform(
                PlatformOptions(
                    state_dir=work / variant.name.replace(", ", "-").replace(" ", "-"),
                    server=variant.server,
                    auth=variant.auth,
                    **(options or {}),
                )
            )
            stack.callback(instance.stop)
            instances[variant] = instance
        say(f"starting {', '.join(v.name for v in variants)}")
        with ThreadPoolExecutor(len(instances)) as starting:
            for future in [starting.submit(i.start) for i in instances.values()]:
                future.result()
        yield {variant: attach(variant, instance) for variant, instance in instances.items()}


def attach(variant: Variant, instance: LocalPlatform) -> Platform:
    """A running platform as the benchmark reaches it (its URL, CA and admin from ``mlflow.env``)."""
    env = instance.client_env()
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    return Platform(
        variant=variant,
        instance=instance,
        url=env["MLFLOW_TRACKING_URI"],
        ca_file=env["MLFLOW_TRACKING_SERVER_CERT_PATH"],
        admin=_basic(user, password) if user and password else None,
        client_env=env,
    )


def measure_cell(
    platform: Platform, cell: Cell, load: LoadProcesses, first: int, per_process: int, seconds: float
) -> tuple[list[Outcome], dict[str, float]]:
    """One round of one cell: every load process sends ``cell`` for ``seconds``."""
    target = platform.target(cell)
    jobs = [Job(cell.scenario, target, first + p * per_process, per_process, seconds) for p in range(len(load))]
    load.prepare(jobs)
    pids = platform.pids()
    before, outcomes = load.go(lambda: measure.sample(pids))
    return outcomes, measure.difference(before, measure.sample(pids))


@dataclass
class RunResult:
    tallies: list[Tally]
    load_averages: list[tuple[float, float, float]]
    started: str
    finished: str


def run(
    running: dict[Variant, Platform], table: list[Cell], load: LoadProcesses, rounds: int, seconds: float, say: Say
) -> RunResult:
    """``rounds`` interleaved rounds of every cell of ``table``."""
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    tallies = {cell.key: Tally(cell) for cell in table}
    next_request: dict[str, int] = dict.fromkeys(tallies, 0)
    load_averages = [measure.load_average()]
    for round_ in range(rounds):
        ordered = table if round_ % 2 == 0 else _servers_reversed(table)
        for cell in ordered:
            per_process = max(1, math.ceil(cell.scenario.per_process_rate * seconds))
            outcomes, cpu = measure_cell(
                running[cell.variant], cell, load, next_request[cell.key], per_process, seconds
            )
            next_request[cell.key] += per_process * len(load)
            tallies[cell.key].add(outcomes, cpu)
        load_averages.append(measure.load_average())
        say(f"round {round_ + 1}/{rounds} done (load average {load_averages[-1][0]:.1f})")
    finished = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    return RunResult(list(tallies.values()), load_averages, started, finished)


def _servers_reversed(table: list[Cell]) -> list[Cell]:
    """The same cells, each scenario/identity pair's servers in the opposite order."""
    out: list[Cell] = []
    group: list[Cell] = []
    for cell in [*table, None]:
        if cell is None or (group and (cell.scenario, cell.identity) != (group[0].scenario, group[0].identity)):
            out += group[::-1]
            group = []
        if cell is not None:
            group.append(cell)
    return out


__all__ = ["SCENARIOS", "Platform", "RunResult", "Tally", "attach", "platforms", "prepare", "run", "warm_up"]

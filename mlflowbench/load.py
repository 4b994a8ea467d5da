"""Load from separate processes, so the client is not what is measured.

``LoadProcesses`` keeps N spawned processes for the whole run. For each measurement every process
is first sent its job and encodes all its request bodies (or, for the end-to-end row, builds the
``Metric`` entities) *before* the clock starts; then all start at the same wall-clock instant and
send back to back over one kept-alive HTTPS connection each (``http.client``, verified against the
platform's CA), until the deadline or until their bodies run out. The parent samples the servers'
CPU around that window (:mod:`.measure`), so the load processes' own CPU is never counted.
"""

from __future__ import annotations

import http.client
import os
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .scenarios import Request, Scenario, encode, metric_rows

T = TypeVar("T")
MAX_ERRORS_KEPT = 5
START_DELAY_S = 0.3
"""Between telling the processes to go and the common start instant: every process is waiting."""


@dataclass(frozen=True)
class Target:
    """Where and as whom one process sends."""

    url: str
    """``https://localhost:<port>`` of the platform's nginx."""
    ca_file: str
    authorization: str | None
    """``Basic …`` header value; None without auth."""
    run_id: str
    client_env: dict[str, str] = field(default_factory=dict)
    """The MLflow client's environment (tracking URI, credentials, CA) for the end-to-end row."""


@dataclass(frozen=True)
class Job:
    scenario: Scenario
    target: Target
    first: int
    """Index of this process's first request in the run (see ``scenarios.encode``)."""
    count: int
    seconds: float


@dataclass
class Outcome:
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0


class _Sender:
    """One kept-alive HTTPS connection per platform, reopened after a failure."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str], http.client.HTTPSConnection] = {}

    def connection(self, target: Target) -> http.client.HTTPSConnection:
        key = (target.url, target.ca_file)
        if key not in self.connections:
            parts = urlsplit(target.url)
            context = ssl.create_default_context(cafile=target.ca_file)
            self.connections[key] = http.client.HTTPSConnection(
                parts.hostname or "localhost", parts.port, context=context, timeout=120
            )
        return self.connections[key]

    def send(self, target: Target, request: Request, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = self.connection(target)
        try:
            connection.request(request.method, request.target, body=request.body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            del self.connections[(target.url, target.ca_file)]
            raise


def _prepare(job: Job) -> list[Any]:
    if job.scenario.client == "mlflow":
        from mlflow.entities import Metric

        return [
            [Metric(k, v, t, s) for k, v, t, s in metric_rows(job.scenario, n * job.scenario.steps)]
            for n in range(job.first, job.first + job.count)
        ]
    return encode(job.scenario, job.target.run_id, job.first, job.count)


def _run(job: Job, prepared: list[Any], start_at: float, sender: _Sender) -> Outcome:
    outcome = Outcome()
    client = None
    if job.scenario.client == "mlflow":
        os.environ.update(job.target.client_env)
        from mlflow import MlflowClient

        client = MlflowClient()
    headers = {"Content-Type": "application/json"}
    if job.target.authorization:
        headers["Authorization"] = job.target.authorization
    time.sleep(max(0.0, start_at - time.time()))
    started = time.perf_counter()
    deadline = started + job.seconds
    for item in prepared:
        if time.perf_counter() >= deadline:
            break
        sent = time.perf_counter()
        try:
            if client is not None:
                client.log_batch(job.target.run_id, metrics=item)
                status, body = 200, b""
            else:
                status, body = sender.send(job.target, item, headers)
        except Exception as error:  # a failed request is a result, not a crash of the benchmark
            status, body = 0, f"{type(error).__name__}: {error}".encode()
        outcome.latencies_s.append(time.perf_counter() - sent)
        if status == 200:
            outcome.ok += 1
        else:
            outcome.failed += 1
            if len(outcome.errors) < MAX_ERRORS_KEPT:
                outcome.errors.append(f"{status} {body[:200].decode(errors='replace')}")
    outcome.elapsed_s = time.perf_counter() - started
    return outcome


def _worker(pipe: Connection) -> None:
    sender, job, prepared = _Sender(), None, []
    while True:
        message = pipe.recv()
        if message[0] == "prepare":
            job = message[1]
            prepared = _prepare(job)
            pipe.send("ready")
        elif message[0] == "go" and job is not None:
            pipe.send(_run(job, prepared, message[1], sender))
            job, prepared = None, []
        else:
            return


class LoadProcesses:
    """N load processes (``spawn``: nothing of the parent's state is inherited)."""

    def __init__(self, count: int) -> None:
        context = get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child,), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)

    def __len__(self) -> int:
        return len(self.pipes)

    def prepare(self, jobs: list[Job]) -> None:
        """Each process encodes its job's requests; returns when all are ready."""
        for pipe, job in zip(self.pipes, jobs, strict=True):
            pipe.send(("prepare", job))
        for pipe in self.pipes:
            pipe.recv()

    def go(self, at_start: Callable[[], T]) -> tuple[T, list[Outcome]]:
        """Start every prepared process at the same instant, call ``at_start`` then (the CPU
        sample before the load), and return its value with the processes' outcomes."""
        start_at = time.time() + START_DELAY_S
        for pipe in self.pipes:
            pipe.send(("go", start_at))
        time.sleep(max(0.0, start_at - time.time()))
        value = at_start()
        return value, [pipe.recv() for pipe in self.pipes]

    def close(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("stop",))
            except OSError:
                continue
        for process in self.processes:
            process.join(10)
            if process.is_alive():
                process.kill()


@contextmanager
def load_processes(count: int) -> Iterator[LoadProcesses]:
    processes = LoadProcesses(count)
    try:
        yield processes
    finally:
        processes.close()

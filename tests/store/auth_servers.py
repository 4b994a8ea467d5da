"""Two extra one-worker MLflow servers on the store suite's platform: MLflow's own ``basic-auth``
app ("stock") and the platform's ``mlflow-platform`` app ("ours").

Both are started from the platform server's own command line and environment (read from
``/proc``), with only ``--app-name``, ``--port`` and ``--workers 1`` changed, so they share its
tracking and auth databases (through PgBouncer), its auth ini (same ``auth_cache_ttl_seconds``)
and its teams file. Same data on both sides: a request sent to each must get the same status and
body unless a team-ownership rule says otherwise. One worker each, so "the next request" of an
invalidation test reaches the worker that served the change.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from localplatform import LocalPlatform

STOCK_APP = "basic-auth"
OUR_APP = "mlflow-platform"


@dataclass(frozen=True)
class Server:
    label: str
    url: str
    pid: int

    def request(self, method: str, path: str, auth: tuple[str, str] | None, **kwargs: object) -> requests.Response:
        # The server's --allowed-hosts lists the bare name "localhost" (what nginx forwards).
        return requests.request(method, self.url + path, auth=auth, headers={"Host": "localhost"}, timeout=60, **kwargs)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc(pid: int) -> tuple[list[str], dict[str, str], str, int]:
    root = Path(f"/proc/{pid}")
    argv = root.joinpath("cmdline").read_bytes().decode().rstrip("\0").split("\0")
    env = dict(item.split("=", 1) for item in root.joinpath("environ").read_bytes().decode().split("\0") if "=" in item)
    uid = next(
        int(line.split()[1]) for line in root.joinpath("status").read_text().splitlines() if line.startswith("Uid:")
    )
    return argv, env, os.readlink(root / "cwd"), uid


def _with(argv: list[str], flag: str, value: str) -> list[str]:
    out = list(argv)
    out[out.index(flag) + 1] = value
    return out


@contextmanager
def extra_servers(
    platform: LocalPlatform, apps: Sequence[str | None], logs: Path, workers: int = 1
) -> Iterator[list[Server]]:
    """One server per entry of ``apps``, started at once. ``None``: no ``--app-name`` at all,
    MLflow without authentication (comparisons only)."""
    pid = platform.component("mlflow").pid
    assert pid is not None, "the platform's MLflow server is not running"
    base, env, cwd, uid = _proc(pid)
    assert "--app-name" in base, base
    if "--expose-prometheus" in base:  # its multiprocess directory belongs to the platform's server
        at = base.index("--expose-prometheus")
        del base[at : at + 2]
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    started: list[tuple[subprocess.Popen[bytes], Server, Path]] = []
    try:
        for n, app_name in enumerate(apps):
            port = _free_port()
            argv = list(base)
            if app_name is None:
                at = argv.index("--app-name")
                del argv[at : at + 2]
            else:
                argv = _with(argv, "--app-name", app_name)
            argv = _with(_with(argv, "--port", str(port)), "--workers", str(workers))
            log = logs / f"server-{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(  # the platform's own command line
                    argv, env=env, cwd=cwd, user=uid, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                )
            started.append((process, Server(app_name or "no auth", f"http://127.0.0.1:{port}", process.pid), log))
        deadline = time.monotonic() + 180
        for process, server, log in started:
            while True:
                assert process.poll() is None, f"{server.label} server exited:\n{log.read_text()[-3000:]}"
                try:
                    if server.request("GET", "/health", None).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                assert time.monotonic() < deadline, f"{server.label} not healthy in 180 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
        yield [server for _, server, _ in started]
    finally:
        for process, _, _ in started:
            os.killpg(process.pid, signal.SIGTERM)
        for process, _, _ in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

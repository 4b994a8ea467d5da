"""Fixtures for the ops tools: one local platform (direct artifact access, so the S3 probe has a
real S3 endpoint to talk to) shared by the whole ``tests/ops`` package, and helpers to call a
tool in-process (fast: MLflow is imported once) or as ``python scripts/<tool>.py``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localplatform import LocalPlatform
from tests.local.conftest import start_platform

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PLATFORM_FIXTURES = {"ops_platform", "ops_env", "client"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        in_ops = HERE in Path(str(item.fspath)).parents
        if in_ops and PLATFORM_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.local)


@pytest.fixture(scope="package")
def ops_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    # traversable=False: the service user's files live outside pytest's 0700 base directory,
    # which another pytest run on the machine may reset to 0700 at any moment.
    yield from start_platform(tmp_path_factory, "ops", traversable=False, access_mode="direct")


@pytest.fixture
def ops_env(ops_platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process's environment becomes the platform's client environment (what ``mlflow.env``
    gives a CI job), for in-process tool calls."""
    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "AWS_")):
            monkeypatch.delenv(key)
    env = ops_platform.client_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def client(ops_env: dict[str, str]) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=ops_env["MLFLOW_TRACKING_URI"])


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.out)
        return data

    def assert_one_line_error(self, *fragments: str) -> None:
        """The failure contract: non-zero, exactly one stderr line ``error: ...``, no traceback."""
        assert self.code != 0, self
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one stderr line, got: {self.err!r}"
        assert lines[0].startswith("error: "), lines
        assert "Traceback" not in self.err + self.out
        for fragment in fragments:
            assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Call a tool's ``main(argv)`` in this process and capture what it printed."""

    def call(main: Callable[[Sequence[str]], int], *argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return call


def run_script(name: str, *argv: str, env: Mapping[str, str] | None = None, cwd: Path = ROOT) -> Result:
    """``python scripts/<name>.py ...`` in a fresh interpreter, with exactly ``env`` (plus PATH/HOME)."""
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *argv],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=str(cwd),
        timeout=300,
        check=False,
    )
    return Result(result.returncode, result.stdout, result.stderr)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"

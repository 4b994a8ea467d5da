"""Fixtures for the local-target tests: each module gets its own platform (own state directory
under pytest's tmp dir, own free ports), started once and stopped at the end of the module.
These tests start real processes; a missing program fails them (no skips)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localplatform import LocalPlatform, PlatformOptions
from localplatform.state_dir import remove_relocated

HERE = Path(__file__).resolve().parent
CLIENT_WORKFLOW = HERE / "client_workflow.py"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.local)


def traversable_state_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A fresh state dir the unprivileged service user can reach.

    As root, PostgreSQL/PgBouncer/nginx run as the service user, who must traverse every
    ancestor; pytest creates ``/tmp/pytest-of-root`` with mode 0700. Grant search-only access
    (o+x, no listing) on pytest's own directories — never outside them.
    """
    path = tmp_path_factory.mktemp(name)
    if os.geteuid() == 0:
        base = tmp_path_factory.getbasetemp().parent  # /tmp/pytest-of-<user>
        for directory in [path, *path.parents]:
            if directory == base.parent:
                break
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                directory.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    return path


def start_platform(
    tmp_path_factory: pytest.TempPathFactory, name: str, *, traversable: bool = True, **options: object
) -> Iterator[LocalPlatform]:
    """Start a platform for a module. ``traversable=False`` (as root) leaves pytest's 0700
    directories alone, so the platform must relocate the service user's files; they are
    removed again afterwards."""
    state = traversable_state_dir(tmp_path_factory, name) if traversable else tmp_path_factory.mktemp(name)
    platform = LocalPlatform(PlatformOptions(state_dir=state, **options))  # type: ignore[arg-type]
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()
        remove_relocated(platform.layout)


@pytest.fixture(scope="module")
def run_client() -> Callable[[LocalPlatform, str], dict[str, object]]:
    """Run the client workflow in a fresh interpreter whose environment is exactly
    ``mlflow.env`` (plus PATH/HOME): what a training script gets after sourcing the file."""
    import json

    def run(platform: LocalPlatform, experiment: str) -> dict[str, object]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
            **platform.client_env(),
        }
        result = subprocess.run(
            [sys.executable, str(CLIENT_WORKFLOW), experiment],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
            cwd=str(platform.state_dir),
        )
        assert result.returncode == 0, f"client workflow failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
        line = [ln for ln in result.stdout.splitlines() if ln.startswith("RESULT ")][-1]
        data: dict[str, object] = json.loads(line.removeprefix("RESULT "))
        return data

    return run

"""The first hour of a new user, end to end, exactly as the README tells it (issue 21).

``python -m localplatform up`` (what ``make up`` runs) on a fresh state dir; its output is
what the user follows: the client install for the mode, ``. <state>/mlflow.sh``, the UI and
the artifact root. The training script (``new_user_train.py``) runs in a virtualenv holding only
the README's client install for ``direct`` mode plus the script's libraries (no project code),
with nothing but the sourced ``mlflow.sh`` in its environment (``env -i``, a fresh ``HOME``).
It trains tree models, registers them and sets aliases; then the platform is stopped and
started again and the same virtualenv loads ``models:/…@champion`` and ``@challenger`` and
gets the predictions it trained. Before issue 21 the artifacts were gone after the restart.

Also here, because a real bootstrap is what writes them: the logs hold no SCRAM verifier, after
the bootstrap and after a rotation by the migration Job's runner, and no log is readable by
anyone but its owner.

The client virtualenv is built from PyPI on first use (about 2–3 minutes) and cached under
``~/.cache/mlflow-platform`` keyed by its install line, like the upgrade test's virtualenv.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from localplatform import LocalPlatform, PlatformOptions, context
from localplatform.mlflow_venv import cache_root
from localplatform.state_dir import remove_relocated
from rendering.client import client_install_command
from rendering.scram import scram_sha256_verifier

pytestmark = pytest.mark.timeout(900)

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "new_user_train.py"
README = context.PROJECT_ROOT / "README.md"
SCRIPT_LIBRARIES = ("scikit-learn", "pandas")
"""What the training script itself imports besides MLflow (the README: "plus your script's own
libraries (e.g. `scikit-learn pandas`)")."""
VERIFIER = re.compile(r"SCRAM-SHA-256\$")


def readme_client_install(mode: str) -> list[str]:
    """The packages of the README's client-install row for ``mode``, as a user copies them."""
    match = re.search(rf"^\| `{mode}`[^\n]*\| `pip install ([^`]+)` \|$", README.read_text(), re.MULTILINE)
    assert match, f"the README has no client install for {mode} mode"
    assert f"pip install {match.group(1)}" == client_install_command(mode)  # type: ignore[arg-type]
    return match.group(1).split()


def client_venv() -> Path:
    """A virtualenv with only the documented client install (cached, keyed by what went in)."""
    packages = [*readme_client_install("direct"), *SCRIPT_LIBRARIES]
    python = shutil.which("python3") or "/usr/bin/python3"
    key = hashlib.sha256(json.dumps([packages, python, sys.version_info[:2]]).encode()).hexdigest()[:16]
    venv = cache_root() / f"client-{key}"
    done = venv / ".complete"
    if done.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages]
    result = subprocess.run(pip, capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, f"{' '.join(pip)} failed:\n{result.stderr[-3000:]}"
    done.write_text(" ".join(packages) + "\n")
    return venv


@dataclass
class FirstHour:
    state: Path
    venv: Path
    home: Path
    up_output: str = ""
    trained: dict[str, object] | None = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "localplatform", *args, "--state-dir", str(self.state)],
            capture_output=True,
            text=True,
            check=False,
            cwd=str(context.PROJECT_ROOT),
            timeout=420,
            env={**os.environ, "PYTHONPATH": str(context.PROJECT_ROOT)},
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        return result

    def client(self, command: str) -> dict[str, object]:
        """The training script as a user runs it: a clean environment, ``. mlflow.sh``, the venv."""
        out = self.home / f"{command}.json"
        line = f". {self.state / 'mlflow.sh'} && exec {self.venv / 'bin' / 'python'} {SCRIPT} {command} {out}"
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8"}
        result = subprocess.run(
            ["bash", "-c", line], env=env, cwd=self.home, capture_output=True, text=True, timeout=600, check=False
        )
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        data: dict[str, object] = json.loads(out.read_text())
        return data

    @property
    def platform(self) -> LocalPlatform:
        return LocalPlatform(PlatformOptions(state_dir=self.state))


@pytest.fixture(scope="module")
def first_hour() -> Iterator[FirstHour]:
    venv = client_venv()
    base = Path(tempfile.mkdtemp(prefix="mlflow-first-hour-"))
    base.chmod(0o711)  # the service user may traverse, not list
    (base / "home").mkdir()
    hour = FirstHour(base / "state", venv, base / "home")
    try:
        hour.up_output = hour.cli("up").stdout
        yield hour
    finally:
        platform = hour.platform
        try:
            platform.stop()
        finally:
            remove_relocated(platform.layout)
            shutil.rmtree(base, ignore_errors=True)


def test_up_tells_the_user_what_to_install_source_and_open(first_hour: FirstHour) -> None:
    out = first_hour.up_output
    assert client_install_command("direct") in out
    assert f". {first_hour.state / 'mlflow.sh'}" in out
    assert re.search(r"UI: open https://localhost:\d+ in a browser that trusts \S+/ca/ca\.crt", out)
    assert "artifacts: direct access, root s3://mlflow-local-artifacts/mlflow" in out
    assert stat.S_IMODE((first_hour.state / "mlflow.sh").stat().st_mode) == 0o600


def test_the_guide_workflow_runs_in_a_fresh_client_virtualenv(first_hour: FirstHour) -> None:
    probe = subprocess.run(
        [
            str(first_hour.venv / "bin" / "python"),
            "-c",
            "import importlib.util as u; print(u.find_spec('localplatform'))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(first_hour.home),
    )
    assert probe.stdout.strip() == "None", "the client virtualenv must not see the project"
    trained = first_hour.client("train")
    assert str(trained["tracking_uri"]).startswith("https://localhost:")  # not a local ./mlflow.db
    predictions = trained["predictions"]
    assert isinstance(predictions, dict) and predictions["1"] != predictions["2"]
    first_hour.trained = trained


def _logs(platform: LocalPlatform) -> list[Path]:
    return sorted(p for p in platform.layout.logs.iterdir() if p.is_file())


def _assert_no_verifier_and_private(platform: LocalPlatform) -> None:
    logs = _logs(platform)
    assert {"postgres.log", "db-bootstrap.log", "mlflow.log", "pgbouncer.log"} <= {p.name for p in logs}
    leaked = [p.name for p in logs if VERIFIER.search(p.read_text(errors="replace"))]
    assert leaked == [], f"a SCRAM verifier was written to {leaked}"
    readable = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in logs if p.stat().st_mode & 0o077}
    assert readable == {}, f"logs readable by others: {readable}"
    assert not platform.layout.logs.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH), "the logs dir is listable"


def test_the_bootstrap_writes_no_password_verifier_to_any_log(first_hour: FirstHour) -> None:
    platform = first_hour.platform
    assert "ALTER ROLE" not in (platform.layout.logs / "postgres.log").read_text()
    _assert_no_verifier_and_private(platform)


def _run_password_step(platform: LocalPlatform, verifier: str | None) -> None:
    """The migration Job's runner on the bootstrap plan's role steps only (what a rotation
    re-runs), with the app role's verifier replaced by ``verifier`` when given."""
    document = json.loads(platform.layout.bootstrap_file.read_text())
    steps = document["before_migrations"]
    password_steps = [s for s in steps if s.get("session_settings")]
    assert len(password_steps) == 1 and "PASSWORD 'SCRAM-SHA-256$" in password_steps[0]["sql"]
    if verifier is not None:
        password_steps[0]["sql"] = re.sub(r"PASSWORD '[^']+'", f"PASSWORD '{verifier}'", password_steps[0]["sql"])
    document.update(before_migrations=steps, migrations=[], after_migrations=[])
    plan = platform.layout.mlflow_dir / "rotation.json"
    fd = os.open(plan, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle)
    try:
        result = subprocess.run(
            [sys.executable, str(context.RUN_BOOTSTRAP), str(plan)],
            env={"PATH": "/usr/bin:/bin", "PGPASSFILE": str(platform.layout.migrator_pgpass)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        plan.unlink()
    assert result.returncode == 0, result.stdout + result.stderr
    assert not VERIFIER.search(result.stdout + result.stderr)


def test_a_password_rotation_writes_no_verifier_to_any_log(first_hour: FirstHour) -> None:
    platform = first_hour.platform
    rotated = "rotated-" + os.urandom(12).hex()
    _run_password_step(platform, scram_sha256_verifier(rotated, os.urandom(16)))
    params = {**platform.database_params("mlflow", role="app"), "password": rotated}
    psycopg2.connect(**params, connect_timeout=10).close()  # the rotation happened
    _run_password_step(platform, None)  # and back to the platform's own password (the rendered plan)
    psycopg2.connect(**platform.database_params("mlflow", role="app"), connect_timeout=10).close()
    _assert_no_verifier_and_private(platform)


def test_after_down_and_up_the_model_loads_by_alias(first_hour: FirstHour) -> None:
    assert first_hour.trained is not None, "the training test must have run first"
    url_before = first_hour.platform.metadata().get("url")
    stopped = first_hour.cli("down")
    assert "stopped:" in stopped.stdout
    status = first_hour.cli("status", check=False)
    assert status.returncode == 0 and "platform: stopped" in status.stdout, status.stdout + status.stderr
    first_hour.cli("up")
    assert first_hour.platform.metadata().get("url") == url_before, "mlflow.sh stays valid across restarts"
    loaded = first_hour.client("load")
    served = loaded["served"]
    predictions = first_hour.trained["predictions"]
    assert isinstance(served, dict) and isinstance(predictions, dict)
    assert served["champion"] == pytest.approx(predictions["1"])
    assert served["challenger"] == pytest.approx(predictions["2"])
    _assert_no_verifier_and_private(first_hour.platform)

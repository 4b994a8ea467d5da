"""A virtualenv with another MLflow release, for ``PlatformOptions.mlflow_python``.

Used to start the platform on the previous MLflow minor and upgrade it (tests/upgrade). Built on
demand with pip from PyPI, from ``requirements/previous-mlflow.txt`` (the MLflow pins) plus the
server's package names (``requirements/server.in``) constrained by every other pin of
``requirements.txt``, plus the project's tracking-store plugin (``rendering.tracking_store``,
which the rendered tracking URI names) — the same recipe as the image's Dockerfile — and cached under
``~/.cache/mlflow-platform`` keyed by what went in, so reruns reuse it.

``python -m localplatform.mlflow_venv`` builds it and prints the interpreter's path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from rendering.tracking_store import STORE_SOURCE as PLUGIN_SOURCE

from .errors import PlatformError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PREVIOUS_PINS = PROJECT_ROOT / "requirements" / "previous-mlflow.txt"
SERVER_NAMES = PROJECT_ROOT / "requirements" / "server.in"
PROJECT_PINS = PROJECT_ROOT / "requirements.txt"
CACHE_ENV = "MLFLOW_PLATFORM_CACHE"
_MLFLOW_PACKAGE = re.compile(r"^mlflow(-skinny|-tracing)?(\[[^\]]*\])?==", re.IGNORECASE)


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "mlflow-platform"


def _lines(path: Path) -> list[str]:
    return [line.split("#", 1)[0].strip() for line in path.read_text().splitlines() if line.split("#", 1)[0].strip()]


def previous_mlflow_version() -> str:
    for line in _lines(PREVIOUS_PINS):
        match = re.match(r"^mlflow(\[[^\]]*\])?==(\S+)$", line)
        if match:
            return match.group(2)
    raise PlatformError(f"{PREVIOUS_PINS} pins no mlflow==<version>")


def _constraints() -> str:
    """Every project pin except MLflow's own packages (the previous release brings its own)."""
    return "\n".join(line for line in _lines(PROJECT_PINS) if not _MLFLOW_PACKAGE.match(line)) + "\n"


def _fingerprint(python: str) -> str:
    plugin = [f.read_text() for f in sorted(PLUGIN_SOURCE.rglob("*")) if f.is_file() and f.suffix in (".py", ".toml")]
    material = "\n".join(
        [python, sys.version, PREVIOUS_PINS.read_text(), SERVER_NAMES.read_text(), _constraints(), *plugin]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def _installed_mlflow(python: Path) -> str | None:
    result = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def ensure_previous_mlflow(timeout_s: float = 900) -> Path:
    """The interpreter of the cached virtualenv with the previous MLflow, built if missing.

    A build goes to a temporary directory and is renamed into place only when complete and
    checked, so an interrupted build is never reused.
    """
    base_python = getattr(sys, "_base_executable", sys.executable)
    version = previous_mlflow_version()
    target = cache_root() / f"mlflow-{version}-{_fingerprint(base_python)}"
    python = target / "bin" / "python"
    if python.exists() and _installed_mlflow(python) == version:
        return python
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    constraints = target.parent / f"{target.name}.constraints.txt"
    constraints.write_text(_constraints())
    pip = [str(building / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    steps = [
        [base_python, "-m", "venv", str(building)],
        [
            *pip,
            "install",
            "--constraint",
            str(constraints),
            "--requirement",
            str(PREVIOUS_PINS),
            "--requirement",
            str(SERVER_NAMES),
        ],
        [*pip, "install", "--no-deps", str(PLUGIN_SOURCE)],
    ]
    for argv in steps:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise PlatformError(f"building {target.name} took over {timeout_s:.0f}s: {' '.join(argv[:4])}") from None
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise PlatformError(f"building the MLflow {version} virtualenv failed: {tail}")
    built = _installed_mlflow(building / "bin" / "python")
    if built != version:
        raise PlatformError(f"the virtualenv built for MLflow {version} has {built}")
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    # venv scripts embed the build path; only the interpreter symlink is used, so renaming is safe.
    return python


if __name__ == "__main__":
    print(ensure_previous_mlflow())

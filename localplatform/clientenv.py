"""The client environment: what ``. .local/mlflow.sh`` (or ``set -a; . .local/mlflow.env``)
gives a training script.

Two files with the same values: ``mlflow.env`` is KEY=value (for ``docker --env-file``,
systemd's ``EnvironmentFile=``, python-dotenv), which a shell sources *without exporting*
unless ``set -a`` is on; MLflow then silently falls back to a local ``./mlflow.db`` and reports
success. ``mlflow.sh`` has ``export`` lines, so plain ``. .local/mlflow.sh`` is enough.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from .users import current_user, write_file


def _render(env: Mapping[str, str], use: str, prefix: str) -> str:
    lines = [
        "# MLflow client settings for the local platform (generated; contains a password: keep 0600).",
        f"# Use: {use}",
    ]
    lines += [f"{prefix}{key}={shlex.quote(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def render_env_file(env: Mapping[str, str]) -> str:
    return _render(env, "set -a; . <this file>; set +a", "")


def render_env_script(env: Mapping[str, str]) -> str:
    return _render(env, ". <this file>   (exports each variable; the same values as mlflow.env)", "export ")


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    write_file(path, render_env_file(env), current_user(), 0o600)


def write_env_script(path: Path, env: Mapping[str, str]) -> None:
    write_file(path, render_env_script(env), current_user(), 0o600)


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        parts = shlex.split(raw)
        env[key] = parts[0] if parts else ""
    return env

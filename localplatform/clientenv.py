"""The client environment: what ``set -a; . .local/mlflow.env`` gives a training script."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from .users import current_user, write_file


def render_env_file(env: Mapping[str, str]) -> str:
    lines = [
        "# MLflow client settings for the local platform (generated; contains a password: keep 0600).",
        "# Use: set -a; . <this file>; set +a",
    ]
    lines += [f"{key}={shlex.quote(value)}" for key, value in env.items()]
    return "\n".join(lines) + "\n"


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    write_file(path, render_env_file(env), current_user(), 0o600)


def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        parts = shlex.split(raw)
        env[key] = parts[0] if parts else ""
    return env

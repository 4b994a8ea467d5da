"""Versions of what we run, read from the one place each is pinned.

Python packages are pinned only in ``requirements.txt``; this module reads them from there so
that e.g. the migration Job's name can follow the MLflow version without a second copy.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"


@cache
def pinned_python_versions() -> dict[str, str]:
    """``{normalised package name: version}`` for every ``name==version`` line."""
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(3)
    return pins


def pinned(package: str) -> str:
    name = re.sub(r"[-_.]+", "-", package).lower()
    try:
        return pinned_python_versions()[name]
    except KeyError:
        raise KeyError(f"{package} is not pinned in {REQUIREMENTS.name}") from None


def mlflow_version() -> str:
    return pinned("mlflow")

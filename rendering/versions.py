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


IMAGE_TAG_PATTERN = re.compile(r"^mlflow-(?P<version>[0-9][0-9A-Za-z.+]*)-inputs-[0-9a-f]{8,64}$")
"""Tags CI gives the tracking-server image (.github/workflows/image.yml): the MLflow version it
was built with, then a hash of the image's inputs (``mlflow-3.17.2-inputs-<hash>``)."""


def image_mlflow_version(image: str) -> str | None:
    """The MLflow version a ``repo:tag@sha256:…`` reference was built with, if its tag says.

    Why: after a bump, a stack fed the *previous* image would run the new migration Job name
    with the old MLflow (migrating nothing), and the next real image would then crash-loop on
    "Detected out-of-date database schema". The stack refuses such an image up front.
    """
    reference = image.split("@", 1)[0]
    last = reference.rsplit("/", 1)[-1]
    if ":" not in last:
        return None
    match = IMAGE_TAG_PATTERN.match(last.split(":", 1)[1])
    return match.group("version") if match else None

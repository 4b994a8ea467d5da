"""The one exception the local platform raises for problems a user can fix."""

from __future__ import annotations

import subprocess


class PlatformError(Exception):
    """A one-line, actionable message (what is wrong and how to fix it).

    The CLI prints it without a traceback; tests assert on its text.
    """


def raise_if_failed(result: subprocess.CompletedProcess[str], what: str) -> None:
    """``<what> failed: <last line of stderr>`` when a program the platform runs exits non-zero:
    the last line is the one that says why (initdb, pg_dump, openssl, ``mlflow gc``)."""
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PlatformError(f"{what} failed: {last}")

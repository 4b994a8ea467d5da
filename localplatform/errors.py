"""The one exception the local platform raises for problems a user can fix."""

from __future__ import annotations


class PlatformError(Exception):
    """A one-line, actionable message (what is wrong and how to fix it).

    The CLI prints it without a traceback; tests assert on its text.
    """

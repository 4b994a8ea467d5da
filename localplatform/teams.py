"""Change a running local platform's team-ownership declaration, as a ConfigMap edit would on EKS.

The server app re-reads the file when it changes (``mlflow_platform_server.declaration``), so
nothing restarts. The file is replaced atomically: a worker never reads half a document.
"""

from __future__ import annotations

from collections.abc import Sequence

from rendering.ownership import TeamOwnership, render_ownership_document

from .errors import PlatformError
from .layout import StateLayout
from .users import current_user, write_file


def set_teams(layout: StateLayout, teams: Sequence[TeamOwnership]) -> None:
    if not layout.teams_file.exists():
        raise PlatformError(f"{layout.teams_file} does not exist: start the platform first")
    try:
        document = render_ownership_document(teams)
    except ValueError as error:
        raise PlatformError(str(error)) from None
    write_file(layout.teams_file, document, current_user(), 0o600)

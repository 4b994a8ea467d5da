"""Creating and removing a state directory, and where the service user's files live.

Its own module because three callers remove state dirs (the platform after a failed first start,
``backup.destroy``, the test fixtures) and each must also remove the service user's relocated
files, which live outside the state dir when the service user cannot reach it.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .errors import PlatformError
from .layout import StateLayout
from .users import RunAs, make_dir, unreachable_ancestor, write_file

EXTERNAL_SVC_BASE = Path("/var/lib/mlflow-platform-local")
"""Where the service user's files go when it cannot enter the state dir (a clone under /root)."""


def state_layout(root: Path, svc: RunAs) -> tuple[StateLayout, list[str]]:
    """Decide where the service user's files live (no file is touched); returns the layout and notes.

    Normally in ``<state>/svc`` (the state dir gets mode 0711: the service user may traverse
    it, not list it). If the service user cannot reach the state dir at all — a clone under
    ``/root`` — its files go to ``/var/lib/mlflow-platform-local/<id>`` and ``<state>/svc``
    links there, rather than opening up the user's home directory. Decided before anything is
    created, so that a failed first start knows the relocated directory it must remove.
    """
    notes: list[str] = []
    blocked = None if svc.is_current else unreachable_ancestor(root, svc)
    svc_root = None
    if blocked is not None:
        svc_root = EXTERNAL_SVC_BASE / hashlib.sha256(str(root).encode()).hexdigest()[:16]
        notes.append(f"the service user '{svc.name}' cannot enter {blocked}; its files live in {svc_root}")
    return StateLayout(root, svc_root), notes


def make_state_dir(layout: StateLayout, me: RunAs, svc: RunAs) -> None:
    """Create the state dir and the service user's directory where :func:`state_layout` put it."""
    root, svc_root = layout.root, layout.svc_root
    make_dir(root, me, 0o711 if not svc.is_current and svc_root is None else 0o700)
    for directory in (layout.logs, layout.run, layout.control_dir):
        # logs: the service user may traverse (nginx reopens its log by path), not list;
        # each log is 0600 (users.open_log).
        make_dir(directory, me, 0o711 if directory == layout.logs else 0o700)
    make_dir(layout.mlflow_dir, me)
    if svc_root is not None:
        make_dir(EXTERNAL_SVC_BASE, me, 0o711)
        marker = svc_root / ".state-dir"
        if svc_root.exists() and (not marker.exists() or marker.read_text() != str(root)):
            raise PlatformError(f"{svc_root} belongs to another state dir; remove it to continue")
        if not layout.svc_link.is_symlink() and svc_root.exists() and not (root / "secrets.json").exists():
            shutil.rmtree(svc_root)  # left by an earlier state dir at this path that was deleted
        make_dir(svc_root, svc, 0o700)
        write_file(marker, str(root), svc, 0o600)
        if not layout.svc_link.is_symlink():
            layout.svc_link.symlink_to(svc_root)
    else:
        make_dir(layout.svc, svc, 0o700)


def remove_relocated(layout: StateLayout) -> None:
    """The service user's files outside the state dir, if they were relocated (and only then)."""
    relocated = layout.svc_root
    if relocated is not None and relocated.parent == EXTERNAL_SVC_BASE:
        shutil.rmtree(relocated, ignore_errors=True)


def remove_state_dir(layout: StateLayout) -> None:
    """The state dir and the service user's relocated files."""
    shutil.rmtree(layout.root, ignore_errors=True)
    remove_relocated(layout)

"""The supervisor's status file and safe process identification.

A pid alone can be reused by an unrelated process after a crash, so every recorded pid comes
with its kernel start time (``/proc/<pid>/stat`` field 22); nothing is signalled unless both
still match.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .users import current_user, write_file

PlatformState = Literal["starting", "ready", "failed", "stopping", "stopped"]
ComponentState = Literal["waiting", "starting", "running", "restarting", "done", "failed", "stopped"]


def process_start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is dead for our purposes
        return None
    return int(fields[19])


def is_alive(pid: int | None, start_time: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    current = process_start_time(pid)
    return current is not None and (start_time is None or current == start_time)


@dataclass
class ComponentStatus:
    name: str
    kind: str
    state: ComponentState = "waiting"
    pid: int | None = None
    start_time: int | None = None
    port: int | None = None
    log: str = ""
    restarts: int = 0
    last_exit: int | None = None
    message: str = ""


@dataclass
class PlatformStatus:
    state: PlatformState = "starting"
    message: str = ""
    supervisor_pid: int | None = None
    supervisor_start_time: int | None = None
    components: dict[str, ComponentStatus] = field(default_factory=dict)


def write_status(path: Path, status: PlatformStatus) -> None:
    write_file(path, json.dumps(asdict(status), indent=2), current_user(), 0o644)


def read_status(path: Path) -> PlatformStatus | None:
    try:
        raw = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    components = {name: ComponentStatus(**data) for name, data in raw.pop("components", {}).items()}
    return PlatformStatus(**raw, components=components)


def supervisor_alive(status: PlatformStatus | None) -> bool:
    return status is not None and is_alive(status.supervisor_pid, status.supervisor_start_time)


def signal_if_alive(pid: int | None, start_time: int | None, sig: int) -> bool:
    if not is_alive(pid, start_time) or pid is None:
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True

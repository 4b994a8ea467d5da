"""What ``LocalPlatform`` hands back: the facts of a start (:class:`PlatformInfo`) and one process of
the platform as a test drives it (:class:`ComponentHandle`). Separate from the start/stop logic in
``localplatform.platform`` so each file holds one job.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rendering.mlflow_server import ArtifactAccessMode

from .errors import PlatformError
from .status import ComponentStatus, is_alive, signal_if_alive

if TYPE_CHECKING:
    from .platform import LocalPlatform


@dataclass(frozen=True)
class PlatformInfo:
    url: str
    env_file: Path
    ca_cert: Path
    username: str | None
    access_mode: ArtifactAccessMode
    startup_seconds: float
    notes: list[str] = field(default_factory=list)
    env_script: Path | None = None
    artifact_root: str = ""


@dataclass
class ComponentHandle:
    """One process of the platform, as a test sees it: pid, port, log, and stop/start/kill."""

    name: str
    kind: str
    port: int | None
    log_path: Path
    platform: LocalPlatform

    def _status(self) -> ComponentStatus:
        status = self.platform.status()
        if self.name not in status.components:
            raise PlatformError(f"no component named {self.name}")
        return status.components[self.name]

    @property
    def pid(self) -> int | None:
        st = self._status()
        return st.pid if is_alive(st.pid, st.start_time) else None

    @property
    def state(self) -> str:
        return self._status().state

    @property
    def restarts(self) -> int:
        return self._status().restarts

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the main process (a crash, from the supervisor's view): it restarts it."""
        st = self._status()
        if not signal_if_alive(st.pid, st.start_time, sig) or st.pid is None:
            raise PlatformError(f"{self.name} is not running")
        return st.pid

    def stop(self, timeout_s: float = 60) -> None:
        """Stop it and keep it stopped (the supervisor will not restart it) until ``start()``."""
        self.platform._control(self.name, "stop")
        self.wait_for("stopped", timeout_s)

    def start(self, timeout_s: float = 180) -> None:
        self.platform._control(self.name, "start")
        self.wait_for("running", timeout_s)

    def wait_for(self, state: str, timeout_s: float = 180, *, other_than_pid: int | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self._status()
            if st.state == state and (other_than_pid is None or (st.pid is not None and st.pid != other_than_pid)):
                return
            time.sleep(0.2)
        raise PlatformError(f"{self.name} did not reach state {state} in {timeout_s:.0f}s (now {self.state})")

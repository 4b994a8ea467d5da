"""The ownership declaration file, re-read when it changes: no restart needed.

On EKS the file is a ConfigMap key mounted as a volume; the kubelet swaps the volume's
``..data`` symlink when the ConfigMap changes (eventually, within its sync period), so ``stat``
on the path sees a new inode/mtime. Locally it is a plain file the platform rewrites. Each
request costs one ``stat`` at most every ``CHECK_INTERVAL_S`` per worker, not a parse.

A changed file that does not parse keeps the last good declaration and logs the error naming
the key (a typo in a ConfigMap must not open or close the whole server); a file that is bad at
start-up stops the server, so a broken declaration is never silently "no teams".
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from .ownership import DeclarationError, Ownership, parse_document

ENV_VAR = "MLFLOW_PLATFORM_TEAMS_FILE"
"""Path of the rendered declaration; unset: no teams, so every non-admin create is refused."""
CHECK_INTERVAL_S = 2.0

_logger = logging.getLogger(__name__)


class Declaration:
    def __init__(self, path: str | None, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self._path = path
        self._interval = check_interval_s
        self._lock = threading.Lock()
        self._checked_at = 0.0
        self._signature: tuple[int, int, int] | None = None
        self._current = Ownership()
        self._listeners: list[Callable[[], None]] = []
        if path is not None:
            signature = self._stat()
            if signature is None:
                raise DeclarationError(f"{ENV_VAR}={path}: no such file")
            self._current = self._read()
            self._signature = signature
            self._checked_at = time.monotonic()

    def _stat(self) -> tuple[int, int, int] | None:
        assert self._path is not None
        try:
            st = os.stat(self._path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> Ownership:
        assert self._path is not None
        with open(self._path, encoding="utf-8") as handle:
            text = handle.read()
        try:
            return parse_document(text)
        except DeclarationError as error:
            raise DeclarationError(f"{self._path}: {error}") from None

    def on_reload(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after each successful reload (the fast path drops its cached grants)."""
        self._listeners.append(listener)

    def current(self) -> Ownership:
        if self._path is None:
            return self._current
        now = time.monotonic()
        if now - self._checked_at < self._interval:
            return self._current
        with self._lock:
            self._checked_at = now
            signature = self._stat()
            if signature is None or signature == self._signature:
                return self._current
            try:
                self._current = self._read()
                self._signature = signature
                _logger.info("team ownership declaration reloaded from %s", self._path)
                for listener in self._listeners:
                    listener()
            except (DeclarationError, OSError) as error:
                self._signature = signature  # log once per change, not every interval
                _logger.error("team ownership declaration not reloaded, keeping the previous one: %s", error)
        return self._current

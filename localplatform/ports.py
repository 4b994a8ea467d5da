"""Loopback ports: chosen automatically unless fixed, and checked before anything starts."""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping, Sequence

from .errors import PlatformError

LOOPBACK = "127.0.0.1"


def is_free(port: int) -> bool:
    """Free for a server: like the servers we start, allow reuse of a port in TIME_WAIT."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def _free_port(taken: set[int]) -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port
    raise PlatformError("could not find a free loopback port")


def allocate(
    names: Sequence[str], fixed: Mapping[str, int], previous: Mapping[str, int]
) -> tuple[dict[str, int], list[str]]:
    """Ports by component name.

    ``fixed`` ports (asked for by the user) must be free, or this fails naming the port.
    ``previous`` ports (from the last start of this state dir) are reused when still free, so
    ``mlflow.env`` stays valid across restarts; otherwise a new port is picked and noted.
    """
    ports: dict[str, int] = {}
    notes: list[str] = []
    for name in names:
        if name in fixed:
            port = fixed[name]
            if not is_free(port) or port in ports.values():
                raise PlatformError(
                    f"port {port} on {LOOPBACK} (for {name}) is already in use; free it or choose another port"
                )
            ports[name] = port
    for name in names:
        if name in ports:
            continue
        old = previous.get(name)
        if old is not None and old not in ports.values() and is_free(old):
            ports[name] = old
            continue
        ports[name] = _free_port(set(ports.values()))
        if old is not None:
            notes.append(f"{name}: port {old} is busy now, using {ports[name]}")
    return ports, notes

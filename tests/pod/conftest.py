from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .network import leftover_namespaces


@pytest.fixture(scope="session")
def as_root() -> Iterator[None]:
    """Network and mount namespaces need root (``make test`` runs as root on CI and here).
    After the session, nothing of this run may be left: no namespace, no hosts file."""
    if os.geteuid() != 0:
        pytest.fail("tests/pod needs root: network namespaces, mount namespaces and chroot")
    yield
    prefix = f"mlfp{os.getpid()}-"
    assert leftover_namespaces(prefix) == []
    hosts = Path("/etc/netns")
    assert (sorted(p.name for p in hosts.glob(f"{prefix}*")) if hosts.exists() else []) == []

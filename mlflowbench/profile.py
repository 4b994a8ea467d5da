"""Where the server's time goes: py-spy samples of the MLflow server (parent and workers) while
one cell's load runs, summarised as shares of the busy samples.

py-spy (``requirements``) attaches with ``ptrace`` (root, or ``CAP_SYS_PTRACE``); ``--nonblocking``
so the workers are never paused. Raw output is the collapsed-stack format (one ``a;b;c count``
line per distinct stack), which flame-graph tools read.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "basic-auth and permission checks (MLflow)": ("mlflow/server/auth/",),
    "the platform's server app": ("mlflow_platform_server/",),
    "request parsing (JSON → protobuf)": ("parse_dict (", "_get_request_message ("),
    "the set-based store's statements": ("mlflow_platform_store/",),
    "MLflow's SqlAlchemyStore": ("mlflow/store/tracking/sqlalchemy_store.py",),
    "SQLAlchemy ORM and engine": ("sqlalchemy/",),
    "waiting on PostgreSQL (driver calls)": ("do_execute (", "do_execute_no_params (", "do_commit (", "do_ping ("),
}
"""A sample counts towards every category one of whose needles is in its stack."""


def py_spy() -> Path:
    return Path(sys.executable).parent / "py-spy"


def record(pid: int, out: Path, work: Callable[[], T]) -> T:
    """Run ``work`` while py-spy samples ``pid`` and its subprocesses into ``out`` (raw)."""
    recorder = subprocess.Popen(
        [str(py_spy()), "record", "--pid", str(pid), "--subprocesses", "--rate", "100", "--format", "raw",
         "--output", str(out), "--nonblocking", "--full-filenames"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.5)  # attached to every worker before the load starts
    try:
        return work()
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(60)


IDLE_LEAVES = ("EpollSelector.select (", "Condition.wait (", "Connection._recv (", "_recv_bytes (", "accept (")
"""Leaf frames of threads that wait for work (the event loop, the parent's worker pipes): not busy."""


def stacks(lines: Iterable[str]) -> Counter[str]:
    """Busy samples per distinct stack: idle waits (:data:`IDLE_LEAVES`) left out."""
    counts: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if count.isdigit() and stack and not stack.rsplit(";", 1)[-1].startswith(IDLE_LEAVES):
            counts[stack] += int(count)
    return counts


def summarise(collapsed: Counter[str], top: int = 12) -> dict[str, object]:
    """Shares of the busy samples per :data:`CATEGORIES`, and the ``top`` leaf functions."""
    total = sum(collapsed.values())
    if not total:
        return {"samples": 0, "categories": {}, "leaves": []}
    categories = {
        name: round(sum(n for s, n in collapsed.items() if any(k in s for k in needles)) / total, 3)
        for name, needles in CATEGORIES.items()
    }
    leaves: Counter[str] = Counter()
    for stack, count in collapsed.items():
        leaves[stack.rsplit(";", 1)[-1]] += count
    return {
        "samples": total,
        "categories": categories,
        "leaves": [(frame, round(count / total, 3)) for frame, count in leaves.most_common(top)],
    }

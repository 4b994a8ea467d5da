"""CPU of process trees, read from ``/proc``: what the server costs per unit of work.

A component's CPU is user+system time of its process and every descendant (uvicorn workers,
nginx workers, PostgreSQL backends), plus the ``cutime``/``cstime`` of each: a child that exits
between two samples (a PostgreSQL backend whose connection PgBouncer closed) moves its time into
its parent's ``cutime`` when reaped, so the difference of two samples still counts it once
(proc(5), ``/proc/[pid]/stat`` fields 14–17).

The pod's components are summed for capacity (what one replica's CPU request must cover);
PostgreSQL is reported apart, for sizing the database (RDS), which is not in the pod.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")

POD_COMPONENTS: tuple[str, ...] = ("mlflow", "pgbouncer", "nginx", "pgbouncer-exporter")
"""What runs in the server pod (the local platform's component names): summed for capacity."""
DATABASE_COMPONENT = "postgres"
"""Reported apart: the database is RDS, outside the pod."""
COMPONENTS: tuple[str, ...] = (*POD_COMPONENTS, DATABASE_COMPONENT)


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int
    """utime + stime + cutime + cstime, in clock ticks."""


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line. The command name (field 2) is in parentheses and may hold
    spaces and parentheses itself, so the fields are counted from the *last* ``)``."""
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    # tail fields: 0 state, 1 ppid, ... 11 utime, 12 stime, 13 cutime, 14 cstime
    return ProcStat(
        pid=int(head.split("(", 1)[0]),
        ppid=int(fields[1]),
        ticks=int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14]),
    )


def read_processes(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process visible in ``proc``; ones that exit while being read are skipped."""
    table = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = parse_stat((entry / "stat").read_text())
                table[stat.pid] = stat
    return table


def tree_ticks(table: Mapping[int, ProcStat], root: int) -> int:
    """CPU ticks of ``root`` and all its descendants in ``table`` (0 if ``root`` is gone)."""
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total, stack, seen = 0, [root], set()
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        total += table[pid].ticks
        stack += children.get(pid, [])
    return total


def tree_cpu_seconds(root: int, proc: Path = PROC) -> float:
    """CPU seconds of one process tree (for callers that sample a single server)."""
    return tree_ticks(read_processes(proc), root) / CLOCK_TICKS


def sample(roots: Mapping[str, int], proc: Path = PROC) -> dict[str, float]:
    """CPU seconds of each named process tree, from one read of ``proc``."""
    table = read_processes(proc)
    return {name: tree_ticks(table, pid) / CLOCK_TICKS for name, pid in roots.items()}


def difference(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds of one measurement: the pod's components summed, and the database."""

    pod_s: float
    database_s: float
    by_component: dict[str, float]


def split(cpu: Mapping[str, float]) -> CpuSplit:
    return CpuSplit(
        pod_s=sum(cpu.get(name, 0.0) for name in POD_COMPONENTS),
        database_s=cpu.get(DATABASE_COMPONENT, 0.0),
        by_component=dict(cpu),
    )


def load_average() -> tuple[float, float, float]:
    """The machine's 1/5/15-minute load averages, reported next to the figures."""
    return os.getloadavg()

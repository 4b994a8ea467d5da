"""CloudWatch alarm thresholds for the tracking database, derived from the sizes the stack renders.

The connections alarm fires at a fraction of the *rendered* ``max_connections``
(``rendering.postgres.max_connections_for``, the value the parameter group sets and the pool plan
must fit under); the memory alarm at a fraction of the instance class's memory (the same number
the tuning uses); the storage alarm at a fraction of the allocated storage. Change the instance
class or storage and the alarms follow: no threshold is typed anywhere else.

Why these fractions:

* connections at 80 %: close enough to the ceiling that a burst (a migration, an operator's
  session, a job connecting directly) could hit "too many connections". The pool plan
  (``rendering.pools``) may legitimately reach it at full HPA scale (prod: 5 replicas × 68 + 10
  reserved = 350 of 400); the alarm description states the plan's figure, so a page at full
  scale reads as a capacity signal (raise the instance class or ``database.maxConnections``),
  and below full scale as something outside the plan holding connections.
* freeable memory under 10 %: ``shared_buffers`` takes 25 % and the page cache is expected to
  use most of the rest; under 10 % the OS starts to evict it and queries go to disk.
* free storage under 10 % of the allocation: storage autoscaling grows the volume from there
  (up to ``maxAllocatedStorageGib``); an alarm that stays on means it could not.
* CPU above 80 % for 15 minutes: sustained, not a burst of ``search_runs``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from .pools import CapacityInputs, plan_pools
from .postgres import PostgresTuning, max_connections_for
from .units import GIB

Comparison = Literal["GreaterThanOrEqualToThreshold", "LessThanOrEqualToThreshold"]

CONNECTIONS_FRACTION = 0.8
FREEABLE_MEMORY_FRACTION = 0.1
FREE_STORAGE_FRACTION = 0.1
CPU_PERCENT = 80.0
PERIOD_SECONDS = 300
EVALUATION_PERIODS = 3


@dataclass(frozen=True)
class DatabaseSizes:
    """What the alarms are sized from: the same inputs as the parameter group."""

    instance_id_hint: str
    """Only for descriptions (the instance class)."""
    memory_bytes: int
    allocated_storage_gib: int
    max_connections: int | None = None
    """An explicit ``database.maxConnections``; None derives it from memory, as the tuning does."""
    server_capacity: CapacityInputs | None = None
    """The server's sizes (``database_max_connections`` is ignored: the rendered value is used),
    for the pool plan's connection ceiling in the alarm description."""


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch alarm on an ``AWS/RDS`` metric of the instance."""

    key: str
    """Stable short name: resource names and dashboard widgets use it."""
    metric_name: str
    comparison: Comparison
    threshold: float
    statistic: Literal["Average", "Maximum", "Minimum"]
    unit_label: str
    description: str
    period_seconds: int = PERIOD_SECONDS
    evaluation_periods: int = EVALUATION_PERIODS


def rendered_max_connections(sizes: DatabaseSizes) -> int:
    return max_connections_for(PostgresTuning(memory_bytes=sizes.memory_bytes, max_connections=sizes.max_connections))


def connections_threshold(sizes: DatabaseSizes) -> int:
    return math.floor(rendered_max_connections(sizes) * CONNECTIONS_FRACTION)


def freeable_memory_threshold_bytes(sizes: DatabaseSizes) -> int:
    return math.floor(sizes.memory_bytes * FREEABLE_MEMORY_FRACTION)


def free_storage_threshold_bytes(sizes: DatabaseSizes) -> int:
    return math.floor(sizes.allocated_storage_gib * GIB * FREE_STORAGE_FRACTION)


def planned_connections(sizes: DatabaseSizes) -> int | None:
    """The most connections the pool plan opens at full scale (None without server sizes)."""
    if sizes.server_capacity is None:
        return None
    inputs = dataclasses.replace(sizes.server_capacity, database_max_connections=rendered_max_connections(sizes))
    return plan_pools(inputs).database_connections_at_max_scale


def database_alarms(sizes: DatabaseSizes) -> tuple[AlarmSpec, ...]:
    max_connections = rendered_max_connections(sizes)
    planned = planned_connections(sizes)
    plan = f"; the pool plan opens up to {planned} at full scale" if planned is not None else ""
    return (
        AlarmSpec(
            key="cpu",
            metric_name="CPUUtilization",
            comparison="GreaterThanOrEqualToThreshold",
            threshold=CPU_PERCENT,
            statistic="Average",
            unit_label="%",
            description=f"RDS CPU >= {CPU_PERCENT:g}% for {EVALUATION_PERIODS * PERIOD_SECONDS // 60} min",
        ),
        AlarmSpec(
            key="free-storage",
            metric_name="FreeStorageSpace",
            comparison="LessThanOrEqualToThreshold",
            threshold=float(free_storage_threshold_bytes(sizes)),
            statistic="Minimum",
            unit_label="bytes",
            description=(
                f"RDS free storage <= {FREE_STORAGE_FRACTION:.0%} of the {sizes.allocated_storage_gib} GiB "
                "allocated (autoscaling did not keep up or reached its ceiling)"
            ),
        ),
        AlarmSpec(
            key="freeable-memory",
            metric_name="FreeableMemory",
            comparison="LessThanOrEqualToThreshold",
            threshold=float(freeable_memory_threshold_bytes(sizes)),
            statistic="Minimum",
            unit_label="bytes",
            description=(
                f"RDS freeable memory <= {FREEABLE_MEMORY_FRACTION:.0%} of the "
                f"{sizes.memory_bytes / GIB:g} GiB of {sizes.instance_id_hint}"
            ),
        ),
        AlarmSpec(
            key="connections",
            metric_name="DatabaseConnections",
            comparison="GreaterThanOrEqualToThreshold",
            threshold=float(connections_threshold(sizes)),
            statistic="Maximum",
            unit_label="connections",
            description=(
                f"RDS connections >= {CONNECTIONS_FRACTION:.0%} of the rendered max_connections "
                f"({max_connections}){plan}"
            ),
        ),
    )

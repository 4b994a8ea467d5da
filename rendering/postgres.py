"""PostgreSQL parameters for MLflow's workload, tuned from the memory of the database host.

One function renders the parameter set; the RDS parameter group (``components.database``)
and the local cluster (``localplatform``) both use it. Values are written in each
parameter's *base unit* (8 kB pages for shared_buffers, effective_cache_size and wal_buffers,
kB for work_mem and maintenance_work_mem, MB for max_wal_size, ms for timeouts), which is
what an RDS parameter group expects and what ``postgresql.conf`` reads for a bare number,
so the same strings are valid in both places and ``pg_settings.setting`` reads them back.

Version note: every parameter here exists with the same unit in PostgreSQL 15 (Debian's,
used by the local target) and 16/17 (RDS); ``rds.*`` parameters exist only on RDS and are
mapped or dropped for the local target by :func:`local_postgres_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .units import GIB, KIB, MIB

PAGE_BYTES = 8 * KIB
"""PostgreSQL's block size: the unit of shared_buffers, effective_cache_size and wal_buffers."""

MIN_MAX_CONNECTIONS = 20
MIN_MEMORY_BYTES = 512 * MIB
"""The smallest memory budget the tuning below supports."""
MAX_MAX_CONNECTIONS = 5000
DEFAULT_LOG_MIN_DURATION_STATEMENT_MS = 500
"""Statements slower than this are logged; the default of ``database.logMinDurationStatementMs``."""
DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT_MS = 60_000
"""The default of ``database.idleInTransactionSessionTimeoutMs``."""


@dataclass(frozen=True)
class PgParameter:
    """One parameter: name and value in the base unit. How RDS applies it (static or dynamic) is
    data in :mod:`rendering.rds_parameters`."""

    name: str
    value: str
    rds_only: bool = False


@dataclass(frozen=True)
class PostgresTuning:
    """Inputs of the tuning. ``max_connections`` None means "derive from memory". The defaults are
    the constants above, which ``stackconfig.schema.DatabaseConfig`` declares as its defaults too
    (the local target builds a tuning without a stack config)."""

    memory_bytes: int
    max_connections: int | None = None
    log_min_duration_statement_ms: int = DEFAULT_LOG_MIN_DURATION_STATEMENT_MS
    idle_in_transaction_session_timeout_ms: int = DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT_MS


def default_max_connections(memory_bytes: int) -> int:
    """25 connections per GiB (the guide's 200 at 8 GiB), within [20, 5000].

    Each backend costs a few MB plus work_mem per sort, so connections scale with memory;
    PgBouncer multiplexes clients onto these, so more are rarely useful.
    """
    return max(MIN_MAX_CONNECTIONS, min(MAX_MAX_CONNECTIONS, int(25 * memory_bytes / GIB)))


def max_connections_for(tuning: PostgresTuning) -> int:
    """The rendered max_connections: the value pool sizing elsewhere must fit under."""
    if tuning.max_connections is not None:
        return tuning.max_connections
    return default_max_connections(tuning.memory_bytes)


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def render_postgres_parameters(tuning: PostgresTuning) -> tuple[PgParameter, ...]:
    """The tuned parameter set (see module docstring for units).

    Ratios follow the guide: shared_buffers 25% and effective_cache_size 75% of memory,
    work_mem memory/128, maintenance_work_mem memory/16 (≤ 2 GB), wal_buffers shared_buffers/32
    (≤ 64 MB), max_wal_size memory/2 (1–16 GB). At 8 GiB this reproduces the guide's values.
    """
    memory = tuning.memory_bytes
    if memory < MIN_MEMORY_BYTES:
        raise ValueError(f"memory_bytes={memory} is below the {MIN_MEMORY_BYTES // MIB} MiB this tuning supports")
    shared_buffers = memory // 4
    effective_cache = memory * 3 // 4
    work_mem = _clamp(memory // 128, 4 * MIB, 256 * MIB)
    maintenance_work_mem = min(memory // 16, 2 * GIB)
    wal_buffers = _clamp(shared_buffers // 32, 1 * MIB, 64 * MIB)
    max_wal_size = _clamp(memory // 2, 1 * GIB, 16 * GIB)
    return (
        PgParameter("shared_buffers", str(shared_buffers // PAGE_BYTES)),
        PgParameter("effective_cache_size", str(effective_cache // PAGE_BYTES)),
        PgParameter("work_mem", str(work_mem // KIB)),
        PgParameter("maintenance_work_mem", str(maintenance_work_mem // KIB)),
        PgParameter("wal_buffers", str(wal_buffers // PAGE_BYTES)),
        PgParameter("checkpoint_completion_target", "0.9"),
        PgParameter("max_wal_size", str(max_wal_size // MIB)),
        PgParameter("max_connections", str(max_connections_for(tuning))),
        # SSD-backed storage (gp3, local disks): random reads cost nearly what sequential ones do.
        PgParameter("random_page_cost", "1.1"),
        # A client that dies mid-transaction (killed training job) must not hold locks forever.
        PgParameter(
            "idle_in_transaction_session_timeout",
            str(tuning.idle_in_transaction_session_timeout_ms),
        ),
        # Slow-query and DDL logging: what RDS.36 / CKV2_AWS_30 ask for, and what an operator
        # needs to see a slow search_runs or an unexpected migration.
        PgParameter("log_min_duration_statement", str(tuning.log_min_duration_statement_ms)),
        PgParameter("log_statement", "ddl"),
        PgParameter("password_encryption", "scram-sha-256"),
        # Clients must use TLS (CKV2_AWS_69); its apply type per family: rendering.rds_parameters.
        PgParameter("rds.force_ssl", "1", rds_only=True),
    )


@dataclass(frozen=True)
class LocalMapping:
    """What an RDS-only parameter becomes on a self-managed server, and why."""

    settings: dict[str, str]
    reason: str


# Every rds_only parameter must have an entry: a missing one is an error, not a silent drop.
RDS_ONLY_LOCAL_MAPPINGS: dict[str, LocalMapping] = {
    "rds.force_ssl": LocalMapping(
        settings={"ssl": "on"},
        reason=(
            "RDS enforces TLS with rds.force_ssl; a self-managed server does it with ssl=on "
            "plus 'hostssl'-only rules in pg_hba.conf, which the local target writes."
        ),
    ),
}


def local_postgres_settings(parameters: tuple[PgParameter, ...]) -> dict[str, str]:
    """postgresql.conf settings for a self-managed server from the same parameter set."""
    settings: dict[str, str] = {}
    for parameter in parameters:
        if not parameter.rds_only:
            settings[parameter.name] = parameter.value
            continue
        mapping = RDS_ONLY_LOCAL_MAPPINGS.get(parameter.name)
        if mapping is None:
            raise KeyError(f"RDS-only parameter {parameter.name} has no local mapping")
        settings.update(mapping.settings)
    return settings

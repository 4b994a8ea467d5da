"""Admission control and connection-pool arithmetic, derived together so they always fit.

Measured on this topology (shared/reference/local-topology-findings.md §5): MLflow's own store's
``log_batch`` holds two tracking-DB connections at once (a nested session), so when more
requests are in flight than a worker's SQLAlchemy pool can serve, requests wait on each other
and PgBouncer turns "too many clients" into 30–120 s stalls; MLflow answers pool timeouts with
HTTP 400, which clients never retry. The fix is to admit no more requests per worker than its
pools can always serve, answer the excess with a retryable 503 *before* it reaches MLflow,
and size every pool below from that one number:

* SQLAlchemy, per worker and engine: ``pool_size = c × in_flight``, where ``c`` is the tracking
  connections one request holds at once with the selected store (:data:`CONNECTIONS_PER_REQUEST`:
  2 for MLflow's own, 1 for the set-based store) (tracking and registry each
  have their own engine on the tracking DB; the auth store has one on the auth DB), plus
  ``max_overflow = 1`` because MLflow silently ignores 0.
* PgBouncer, per pod: a server pool of ``workers × in_flight × c`` per database (tracking and
  auth; PgBouncer's ``default_pool_size`` applies to each), so an admitted request never waits
  for a server connection; ``max_client_conn`` covers every SQLAlchemy connection the pod opens.
* RDS: ``max_replicas × databases × (pool + reserve) + reserved ≤ max_connections``.

The same plan sizes the local target and the EKS pods.
"""

from __future__ import annotations

from dataclasses import dataclass

from .tracking_store import TrackingStore

CONNECTIONS_PER_REQUEST: dict[TrackingStore, int] = {"stock": 2, "set-based": 1}
"""Tracking-DB connections one request holds at once, by the server's tracking store.

MLflow's own ``SqlAlchemyStore.log_batch`` (and ``set_tag``) reads the run in an outer session and
writes in nested ones (``_log_metrics``, ``_log_params``, ``_set_tags``: each its own
``ManagedSessionMaker``), so it holds 2. The set-based store writes metrics, params and tags on
the one session that checked the run (``plugins/mlflow-platform-store``, ``_Writer``): 1.
MLflow's other nested calls open the inner session *before* the outer one has run a statement
(``create_run`` → ``get_experiment``), and SQLAlchemy checks a connection out lazily, so they
hold 1. What still nests in the set-based store (MLflow 3.17.2): ``log_inputs`` (datasets),
span logging of traces and ``search_datasets``; such a request waits for the worker's overflow
connection (``SQLALCHEMY_MAX_OVERFLOW``) or PgBouncer's reserve pool, so many of them at once are
slower, not stuck."""
CONNECTIONS_PER_REQUEST_TRACKING = CONNECTIONS_PER_REQUEST["stock"]
"""The most any store holds (kept for callers that size without a store)."""
POOLED_DATABASES = 2
"""The tracking DB and the auth DB, each a PgBouncer pool of the same size."""
TRACKING_DB_ENGINES_PER_WORKER = 2  # tracking store and model-registry store
AUTH_DB_ENGINES_PER_WORKER = 1
SQLALCHEMY_MAX_OVERFLOW = 1
"""MLflow ignores MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW=0 (``if pool_max_overflow:``); 1 is the floor."""
PGBOUNCER_RESERVE_POOL = 2
"""Extra server connections PgBouncer may open for a pool that waited ``reserve_pool_timeout``."""
DEFAULT_RESERVED_CONNECTIONS = 10
"""Left free on the database for migrations, admin sessions and RDS's own superuser slots."""


class PoolSizingError(ValueError):
    """The requested sizes cannot fit; the message says which number to change and to what."""


@dataclass(frozen=True)
class CapacityInputs:
    max_replicas: int
    """Most server pods that can run at once (the HPA maximum, or the fixed replica count)."""
    workers_per_replica: int
    in_flight_per_worker: int
    """Requests one uvicorn worker processes concurrently; the rest get a retryable 503."""
    database_max_connections: int
    reserved_connections: int = DEFAULT_RESERVED_CONNECTIONS
    tracking_store: TrackingStore = "set-based"
    """The server's tracking store (``rendering.tracking_store``): how many connections a request
    holds (:data:`CONNECTIONS_PER_REQUEST`). The default is the store every stack ships."""


@dataclass(frozen=True)
class PoolPlan:
    in_flight_per_worker: int
    in_flight_per_replica: int
    """Admission limit at the per-pod proxy: concurrent requests forwarded to MLflow."""
    sqlalchemy_pool_size: int
    sqlalchemy_max_overflow: int
    pgbouncer_pool_size: int
    """``default_pool_size``: server connections per database and pod."""
    pgbouncer_reserve_pool_size: int
    pgbouncer_max_client_conn: int
    database_connections_per_replica: int
    database_connections_at_max_scale: int
    database_max_connections: int


def plan_pools(inputs: CapacityInputs) -> PoolPlan:
    """The pool plan for ``inputs``, or PoolSizingError if it cannot fit the database."""
    for name, value in (
        ("max_replicas", inputs.max_replicas),
        ("workers_per_replica", inputs.workers_per_replica),
        ("in_flight_per_worker", inputs.in_flight_per_worker),
    ):
        if value < 1:
            raise PoolSizingError(f"{name} must be at least 1, got {value}")
    if inputs.tracking_store not in CONNECTIONS_PER_REQUEST:
        raise PoolSizingError(
            f"tracking_store must be one of {', '.join(CONNECTIONS_PER_REQUEST)}, got {inputs.tracking_store!r}"
        )
    in_flight = inputs.in_flight_per_worker
    workers = inputs.workers_per_replica
    connections = CONNECTIONS_PER_REQUEST[inputs.tracking_store]
    pool_size = connections * in_flight
    server_pool = workers * in_flight * connections
    engines = TRACKING_DB_ENGINES_PER_WORKER + AUTH_DB_ENGINES_PER_WORKER
    client_connections = workers * engines * (pool_size + SQLALCHEMY_MAX_OVERFLOW)
    per_replica = _database_connections_per_replica(workers, in_flight, connections)
    at_max_scale = inputs.max_replicas * per_replica + inputs.reserved_connections
    if at_max_scale > inputs.database_max_connections:
        fitting = _largest_fitting_in_flight(inputs)
        hint = f"lower in_flight_per_worker to {fitting}" if fitting else "lower max_replicas or workers_per_replica"
        raise PoolSizingError(
            f"{inputs.max_replicas} replicas × {per_replica} database connections each + "
            f"{inputs.reserved_connections} reserved = {at_max_scale} > max_connections "
            f"{inputs.database_max_connections}; {hint}, or raise the database's max_connections"
        )
    return PoolPlan(
        in_flight_per_worker=in_flight,
        in_flight_per_replica=workers * in_flight,
        sqlalchemy_pool_size=pool_size,
        sqlalchemy_max_overflow=SQLALCHEMY_MAX_OVERFLOW,
        pgbouncer_pool_size=server_pool,
        pgbouncer_reserve_pool_size=PGBOUNCER_RESERVE_POOL,
        # Headroom for the admin console and a second pod's worth of reconnects during restarts.
        pgbouncer_max_client_conn=2 * client_connections + 10,
        database_connections_per_replica=per_replica,
        database_connections_at_max_scale=at_max_scale,
        database_max_connections=inputs.database_max_connections,
    )


def _database_connections_per_replica(workers: int, in_flight: int, connections: int) -> int:
    """Server connections one pod's PgBouncer may hold: both pools plus their reserves."""
    return POOLED_DATABASES * (workers * in_flight * connections + PGBOUNCER_RESERVE_POOL)


def _largest_fitting_in_flight(inputs: CapacityInputs) -> int:
    for candidate in range(inputs.in_flight_per_worker - 1, 0, -1):
        per_replica = _database_connections_per_replica(
            inputs.workers_per_replica, candidate, CONNECTIONS_PER_REQUEST[inputs.tracking_store]
        )
        if inputs.max_replicas * per_replica + inputs.reserved_connections <= inputs.database_max_connections:
            return candidate
    return 0

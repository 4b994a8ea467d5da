"""Pool arithmetic: every admitted request can always get its connections, and it all fits."""

from __future__ import annotations

import pytest

from rendering.pools import CapacityInputs, PoolSizingError, plan_pools


@pytest.mark.parametrize(("replicas", "workers", "in_flight"), [(1, 1, 1), (1, 2, 4), (5, 2, 8), (3, 4, 6)])
def test_admitted_requests_never_wait_for_a_connection(replicas: int, workers: int, in_flight: int):
    plan = plan_pools(CapacityInputs(replicas, workers, in_flight, database_max_connections=5000))
    # log_batch holds two tracking-DB connections: a worker's pool must serve all its admitted requests.
    assert plan.sqlalchemy_pool_size >= 2 * in_flight
    # The pod's PgBouncer pool must serve every worker's admitted requests at once.
    assert plan.pgbouncer_pool_size >= 2 * workers * in_flight
    assert plan.in_flight_per_replica == workers * in_flight
    # MLflow ignores max_overflow=0, so the plan never renders it.
    assert plan.sqlalchemy_max_overflow >= 1
    # Every SQLAlchemy connection of every engine (tracking, registry, auth) fits max_client_conn.
    assert plan.pgbouncer_max_client_conn >= workers * 3 * (plan.sqlalchemy_pool_size + plan.sqlalchemy_max_overflow)


def test_database_budget_includes_both_pools_reserves_and_headroom():
    plan = plan_pools(CapacityInputs(5, 2, 8, database_max_connections=400))
    assert plan.database_connections_per_replica == 2 * (32 + 2)
    assert plan.database_connections_at_max_scale == 5 * 68 + 10
    assert plan.database_connections_at_max_scale <= 400


def test_exactly_full_fits_and_one_more_does_not():
    plan_pools(CapacityInputs(2, 1, 1, database_max_connections=2 * 8 + 10))
    with pytest.raises(PoolSizingError, match=r"= 26 > max_connections 25"):
        plan_pools(CapacityInputs(2, 1, 1, database_max_connections=2 * 8 + 9))


@pytest.mark.parametrize("field", ["max_replicas", "workers_per_replica", "in_flight_per_worker"])
def test_non_positive_sizes_are_refused(field: str):
    values = {"max_replicas": 1, "workers_per_replica": 1, "in_flight_per_worker": 1, field: 0}
    with pytest.raises(PoolSizingError, match=field):
        plan_pools(CapacityInputs(database_max_connections=100, **values))

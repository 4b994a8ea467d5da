"""Pool arithmetic: every admitted request can always get its connections, and it all fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from rendering.pools import CapacityInputs, PoolSizingError, plan_pools


@pytest.mark.parametrize("store", ["stock", "set-based"])
@pytest.mark.parametrize(("replicas", "workers", "in_flight"), [(1, 1, 1), (1, 2, 4), (5, 2, 8), (3, 4, 6)])
def test_admitted_requests_never_wait_for_a_connection(replicas: int, workers: int, in_flight: int, store: str):
    plan = plan_pools(CapacityInputs(replicas, workers, in_flight, 5000, tracking_store=store))  # type: ignore[arg-type]
    held = {"stock": 2, "set-based": 1}[store]
    # MLflow's log_batch holds two tracking-DB connections, the set-based store's one: a worker's
    # pool must serve all its admitted requests.
    assert plan.sqlalchemy_pool_size >= held * in_flight
    # The pod's PgBouncer pool must serve every worker's admitted requests at once.
    assert plan.pgbouncer_pool_size >= held * workers * in_flight
    assert plan.in_flight_per_replica == workers * in_flight
    # MLflow ignores max_overflow=0, so the plan never renders it.
    assert plan.sqlalchemy_max_overflow >= 1
    # Every SQLAlchemy connection of every engine (tracking, registry, auth) fits max_client_conn.
    assert plan.pgbouncer_max_client_conn >= workers * 3 * (plan.sqlalchemy_pool_size + plan.sqlalchemy_max_overflow)


def test_database_budget_includes_both_pools_reserves_and_headroom():
    plan = plan_pools(CapacityInputs(5, 2, 8, database_max_connections=400, tracking_store="stock"))
    assert plan.database_connections_per_replica == 2 * (32 + 2)
    assert plan.database_connections_at_max_scale == 5 * 68 + 10
    assert plan.database_connections_at_max_scale <= 400


def test_exactly_full_fits_and_one_more_does_not():
    plan_pools(CapacityInputs(2, 1, 1, database_max_connections=2 * 8 + 10, tracking_store="stock"))
    with pytest.raises(PoolSizingError, match=r"= 26 > max_connections 25"):
        plan_pools(CapacityInputs(2, 1, 1, database_max_connections=2 * 8 + 9, tracking_store="stock"))
    plan_pools(CapacityInputs(2, 1, 1, database_max_connections=2 * 6 + 10))
    with pytest.raises(PoolSizingError, match=r"= 22 > max_connections 21"):
        plan_pools(CapacityInputs(2, 1, 1, database_max_connections=2 * 6 + 9))


@pytest.mark.parametrize("field", ["max_replicas", "workers_per_replica", "in_flight_per_worker"])
def test_non_positive_sizes_are_refused(field: str):
    values = {"max_replicas": 1, "workers_per_replica": 1, "in_flight_per_worker": 1, field: 0}
    with pytest.raises(PoolSizingError, match=field):
        plan_pools(CapacityInputs(database_max_connections=100, **values))


@pytest.mark.parametrize(("store", "connections"), [("stock", 2), ("set-based", 1)])
def test_pools_are_sized_for_the_selected_store(store: str, connections: int):
    """MLflow's own store holds two tracking connections per log_batch (a nested session); the
    set-based store writes on the session that checked the run, so it needs half the pools."""
    plan = plan_pools(CapacityInputs(3, 2, 8, database_max_connections=5000, tracking_store=store))  # type: ignore[arg-type]
    assert plan.sqlalchemy_pool_size == connections * 8
    assert plan.pgbouncer_pool_size == connections * 2 * 8
    assert plan.database_connections_per_replica == 2 * (connections * 2 * 8 + 2)
    assert plan.pgbouncer_max_client_conn >= 2 * 3 * (plan.sqlalchemy_pool_size + plan.sqlalchemy_max_overflow)


def test_the_shipped_store_is_the_default_and_a_stock_plan_that_does_not_fit_says_so():
    assert CapacityInputs(1, 1, 1, 100).tracking_store == "set-based"
    # 4 replicas × 2 databases × (2 workers × 4 in flight × c + 2) + 10: 90 with the set-based
    # store (c = 1), 154 with MLflow's (c = 2).
    assert plan_pools(CapacityInputs(4, 2, 4, 100)).database_connections_at_max_scale == 90
    with pytest.raises(PoolSizingError, match=r"= 154 > max_connections 100; lower in_flight_per_worker to 2"):
        plan_pools(CapacityInputs(4, 2, 4, database_max_connections=100, tracking_store="stock"))
    with pytest.raises(PoolSizingError, match=r"tracking_store must be one of stock, set-based, got 'sql'"):
        plan_pools(CapacityInputs(1, 1, 1, 100, tracking_store="sql"))  # type: ignore[arg-type]


def test_the_local_platform_and_the_pod_render_pools_from_the_store_they_run():
    from dataclasses import replace

    from localplatform.options import PlatformOptions
    from localplatform.target import required_max_connections

    shipped = PlatformOptions(state_dir=Path("/nonexistent"))
    assert shipped.store == "set-based"
    stock = replace(shipped, server="stock")
    assert stock.store == "stock"
    assert required_max_connections(stock) > required_max_connections(shipped)
    assert required_max_connections(replace(shipped, tracking_store="stock")) == required_max_connections(stock)

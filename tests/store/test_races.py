"""Races forced into one interleaving with a row lock held by another connection, so each runs
the same way every time: no write may be dropped while the request reports success.

The first test is the regression test for the SQLAlchemy engine plugin this store replaced: with
``executemany_mode=values_plus_batch`` SQLAlchemy stops checking how many rows a multi-row UPDATE
matched, so overwriting two tags while a concurrent request deletes one returned success and
dropped that write (MLflow itself raises). The check is shown to catch it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg2
import pytest
import sqlalchemy
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from localplatform import LocalPlatform
from tests.store.conftest import Stores

WAIT_S = 60


@pytest.fixture
def locker(store_platform: LocalPlatform) -> Iterator[psycopg2.extensions.connection]:
    """The other request: a transaction of its own through PgBouncer, as the application role."""
    connection = psycopg2.connect(**store_platform.database_params("mlflow", role="app", via_pgbouncer=True))
    try:
        yield connection
    finally:
        connection.close()


def plugin_era_store(stores: Stores) -> SqlAlchemyStore:
    """MLflow's store on an engine configured as the removed engine plugin configured it."""
    uri = stores.database_uri + f"&application_name=values-plus-batch-{uuid.uuid4().hex[:8]}"
    SqlAlchemyStore._engine_map[uri] = sqlalchemy.create_engine(
        uri, executemany_mode="values_plus_batch", executemany_batch_page_size=1000, pool_pre_ping=True
    )
    return SqlAlchemyStore(uri, stores.stock.artifact_root_uri)


STORES: dict[str, Callable[[Stores], SqlAlchemyStore]] = {
    "stock": lambda s: s.stock,
    "set-based": lambda s: s.set_based,
}


def in_background(call: Callable[[], None]) -> tuple[threading.Thread, dict[str, object]]:
    result: dict[str, object] = {}

    def run() -> None:
        try:
            call()
            result["ok"] = True
        except MlflowException as error:
            result["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def wait_until_blocked(locker: psycopg2.extensions.connection, table: str) -> None:
    """Until some other session waits for a lock in a statement on ``table``."""
    deadline = time.monotonic() + WAIT_S
    # Autocommit and no ``with probe``: pg_stat_activity is a snapshot per transaction.
    probe = psycopg2.connect(locker.dsn, password=locker.info.password)
    probe.autocommit = True
    try:
        with probe.cursor() as cursor:
            while time.monotonic() < deadline:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
                    (f"%{table}%",),
                )
                row = cursor.fetchone()
                if row and row[0]:
                    return
                time.sleep(0.05)
    finally:
        probe.close()
    raise AssertionError(f"no request waited for a lock on {table} within {WAIT_S}s")


def new_run(store: SqlAlchemyStore) -> str:
    experiment_id = store.create_experiment(f"race-{uuid.uuid4().hex}")
    return store.create_run(experiment_id, "user", 0, [], "race").info.run_id


def overwrite_while_deleted(
    store: SqlAlchemyStore, locker: psycopg2.extensions.connection
) -> tuple[dict[str, object], dict[str, str]]:
    """``log_batch`` overwrites tags a and b; meanwhile another request deletes b."""
    run_id = new_run(store)
    store.log_batch(run_id, [], [], [RunTag("a", "old"), RunTag("b", "old")])
    with locker.cursor() as cursor:
        cursor.execute("SELECT 1 FROM tags WHERE run_uuid = %s AND key = 'b' FOR UPDATE", (run_id,))
        thread, result = in_background(
            lambda: store.log_batch(run_id, [], [], [RunTag("a", "new"), RunTag("b", "new")])
        )
        wait_until_blocked(locker, "tags")
        cursor.execute("DELETE FROM tags WHERE run_uuid = %s AND key = 'b'", (run_id,))
    locker.commit()
    thread.join(WAIT_S)
    tags = {k: v for k, v in store.get_run(run_id).data.tags.items() if k in ("a", "b")}
    return result, tags


@pytest.mark.parametrize("kind", STORES)
def test_a_tag_overwritten_while_it_is_deleted_is_written_or_the_request_fails(
    stores: Stores, locker: psycopg2.extensions.connection, kind: str
) -> None:
    result, tags = overwrite_while_deleted(STORES[kind](stores), locker)
    if kind == "set-based":
        # The delete committed first; the upsert then inserts b: both writes are kept.
        assert result == {"ok": True} and tags == {"a": "new", "b": "new"}
    else:
        assert "error" in result, f"MLflow reported success and kept {tags}"


def test_the_check_catches_the_removed_engine_plugins_silent_drop(
    stores: Stores, locker: psycopg2.extensions.connection
) -> None:
    result, tags = overwrite_while_deleted(plugin_era_store(stores), locker)
    assert result == {"ok": True} and tags == {"a": "new"}, "values_plus_batch dropped b silently"


@pytest.mark.parametrize("call", ["log_batch", "log_param"])
def test_a_param_inserted_meanwhile_with_another_value_is_mlflows_400(
    stores: Stores, locker: psycopg2.extensions.connection, call: str
) -> None:
    store = stores.set_based
    run_id = new_run(store)
    with locker.cursor() as cursor:
        cursor.execute("INSERT INTO params (key, value, run_uuid) VALUES ('p', 'theirs', %s)", (run_id,))
        if call == "log_batch":
            thread, result = in_background(lambda: store.log_batch(run_id, [], [Param("p", "mine")], []))
        else:
            thread, result = in_background(lambda: store.log_param(run_id, Param("p", "mine")))
        wait_until_blocked(locker, "params")
    locker.commit()
    thread.join(WAIT_S)
    error = result.get("error")
    assert isinstance(error, MlflowException) and error.error_code == "INVALID_PARAMETER_VALUE", result
    assert "Changing param values is not allowed" in error.message and "theirs" in error.message
    assert store.get_run(run_id).data.params == {"p": "theirs"}


@pytest.mark.parametrize("kind", STORES)
def test_latest_metrics_compare_against_a_value_committed_meanwhile(
    stores: Stores, locker: psycopg2.extensions.connection, kind: str
) -> None:
    store = STORES[kind](stores)
    run_id = new_run(store)
    store.log_metric(run_id, Metric("loss", 1.0, 10, 10))
    with locker.cursor() as cursor:
        cursor.execute(
            "UPDATE latest_metrics SET step = 100, value = 9.0 WHERE run_uuid = %s AND key = 'loss'", (run_id,)
        )
        thread, result = in_background(lambda: store.log_batch(run_id, [Metric("loss", 5.0, 50, 50)], [], []))
        wait_until_blocked(locker, "latest_metrics")
    locker.commit()
    thread.join(WAIT_S)
    assert result == {"ok": True}
    latest = store.get_run(run_id).data.metrics
    assert latest == {"loss": 9.0}, "the newer value committed meanwhile must stay the latest"
    assert sorted(m.step for m in store.get_metric_history(run_id, "loss")) == [10, 50]

"""Differential tests: the set-based store against MLflow's own ``SqlAlchemyStore``.

Every generated sequence (tests/store/sequences.py) runs on both stores, on fresh runs of the
platform's tracking database through PgBouncer, and must leave identical rows in ``metrics``,
``latest_metrics``, ``params``, ``tags``, ``logged_model_metrics`` and ``runs`` and raise identical
errors (code and message; for errors PostgreSQL raised, its error class and message). The
differences the one-transaction design makes (plugin docstring) are tested as such below.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

from tests.store.conftest import Stores
from tests.store.sequences import MISSING_RUN, Op, Outcome, generate, run_sequence, snapshot

SEEDS = range(24)
LENGTH = 20
EVERY_ERROR = {
    "missing run": "Run with id=",
    "deleted run": "must be in the 'active' state",
    "malformed run id": "for parameter 'run_id'",
    "changed param (batch)": "Params were already logged=",
    "changed param (single)": "Attempted logging new value",
    "duplicate param keys": "Duplicate parameter keys",
    "over-long key": "exceeds the maximum length",
    "bad metric name": "must not resolve to other names",
    "missing tag": "No tag with name",
    "value too long for the database": "(psycopg2.errors.StringDataRightTruncation)",
}
"""Each must occur somewhere in the generated sequences, or the generator has stopped covering it."""


@pytest.fixture(autouse=True)
def _quiet_truncation_warnings() -> None:
    logging.getLogger("mlflow.utils.validation").setLevel(logging.ERROR)


def both(stores: Stores, ops: list[Op], label: str) -> tuple[Outcome, Outcome]:
    """Both stores at once (each on its own runs): the time is the database's round trips."""
    with ThreadPoolExecutor(2) as pool:
        stock = pool.submit(run_sequence, stores.stock, ops, f"{label}-stock")
        new = pool.submit(run_sequence, stores.set_based, ops, f"{label}-new")
        return stock.result(), new.result()


SEEN: Counter[str] = Counter()


@pytest.mark.parametrize("seed", SEEDS)
def test_a_generated_sequence_leaves_the_same_rows_and_errors(stores: Stores, seed: int) -> None:
    ops = generate(seed, LENGTH)
    stock, new = both(stores, ops, f"seed{seed}")
    assert new.errors == stock.errors
    for table in stock.rows:
        assert new.rows[table] == stock.rows[table], f"{table} differs for seed {seed}"
    assert stock.rows["metrics"], "the sequence wrote nothing: it proves nothing"
    for _, _, message in stock.errors:
        SEEN.update(name for name, marker in EVERY_ERROR.items() if marker in message)


def test_the_generated_sequences_cover_every_error_case() -> None:
    """Runs after the sequences (file order); fails if a case never occurred."""
    missing = sorted(name for name in EVERY_ERROR if not SEEN[name])
    assert not missing, f"no generated sequence produced: {missing}"


def test_nan_and_infinities_order_as_mlflow_orders_them(stores: Stores) -> None:
    """NaN is stored as 0 with is_nan, so NaN and 0.0 at the same (step, timestamp) tie and the
    first logged wins; +inf is stored as the largest double and ties with it."""
    from tests.store.sequences import MetricSpec

    def batch(*specs: tuple[str, float, int, int]) -> Op:
        return Op("log_batch", metrics=tuple(MetricSpec(k, v, t, s) for k, v, t, s in specs))

    ops = [
        batch(("a", math.nan, 1, 1), ("a", 0.0, 1, 1)),
        batch(("b", 0.0, 1, 1), ("b", math.nan, 1, 1)),
        batch(("c", math.inf, 1, 1)),
        batch(("c", 1.7976931348623157e308, 1, 1), ("c", -math.inf, 2, 0)),
        batch(("d", 5.0, 3, 9), ("d", 1.0, 1, 2)),
        batch(("d", 7.0, 2, 9)),  # same step, older timestamp: not latest
        batch(("d", 4.0, 3, 9)),  # same step and timestamp, smaller value: not latest
    ]
    stock, new = both(stores, ops, "nan-inf")
    assert new.rows == stock.rows and new.errors == stock.errors == []
    latest = {row[1]: row[2:] for row in new.rows["latest_metrics"]}
    assert latest["a"] == (0.0, 1, 1, True) and latest["b"] == (0.0, 1, 1, False)
    assert latest["c"] == (1.7976931348623157e308, 1, 1, False)
    assert latest["d"] == (5.0, 3, 9, False)


def _run(store: SqlAlchemyStore, name: str) -> tuple[str, str]:
    experiment_id = store.create_experiment(f"{name}-{uuid.uuid4().hex}")
    return experiment_id, store.create_run(experiment_id, "user", 0, [], name).info.run_id


def test_a_request_that_fails_part_way_leaves_nothing_where_mlflow_keeps_its_first_parts(stores: Stores) -> None:
    """The documented difference: one transaction. A run name too long for ``runs.name`` fails
    the batch in both stores with the same database error; MLflow has committed the params and
    metrics before its tags fail, the set-based store has not."""
    results = {}
    for label, store in (("stock", stores.stock), ("new", stores.set_based)):
        _, run_id = _run(store, "partial")
        with pytest.raises(MlflowException) as raised:
            store.log_batch(run_id, [Metric("m", 1.0, 1, 1)], [Param("p", "1")], [RunTag("mlflow.runName", "n" * 300)])
        assert raised.value.error_code == "BAD_REQUEST"
        assert "(psycopg2.errors.StringDataRightTruncation) value too long" in raised.value.message
        names = {run_id: "run0"}
        results[label] = snapshot(store, names, 0)
    assert results["stock"]["params"] == [("run0", "p", "1")] and len(results["stock"]["metrics"]) == 1
    assert results["new"]["params"] == [] and results["new"]["metrics"] == []


@pytest.mark.parametrize(
    "second",
    [
        pytest.param(lambda model: Metric("acc", 2.0, 5, 5, model_id=model), id="same-key-other-value"),
        pytest.param(lambda model: Metric("acc", 1.0, 6, 6, model_id="m-" + "0" * 32), id="unknown-model"),
    ],
)
def test_a_refused_logged_model_metric_is_an_error_in_both(stores: Stores, second: Callable[[str], Metric]) -> None:
    for store in (stores.stock, stores.set_based):
        experiment_id, run_id = _run(store, "model-metric")
        model = store.create_logged_model(experiment_id, name="m").model_id
        store.log_batch(run_id, [Metric("acc", 1.0, 5, 5, model_id=model)], [], [])
        with pytest.raises(MlflowException) as raised:
            store.log_batch(run_id, [second(model)], [], [])
        assert raised.value.error_code == "BAD_REQUEST", f"{type(store).__name__}: {raised.value.message[:300]}"


def test_concurrent_writers_end_in_the_same_rows(stores: Stores) -> None:
    """Eight writers on one run at once (shared keys, interleaved steps, re-logs, their own
    params and tags): no error in either store and the same rows."""
    outcomes = {}
    for label, store in (("stock", stores.stock), ("new", stores.set_based)):
        _, run_id = _run(store, "concurrent")
        errors: list[str] = []

        def writer(n: int, store: SqlAlchemyStore = store, run_id: str = run_id, errors: list[str] = errors) -> None:
            try:
                for round_ in range(6):
                    metrics = [Metric(f"k{k}", float(n * round_ - k), 1000 + round_, 8 * round_ + n) for k in range(5)]
                    store.log_batch(
                        run_id, metrics + metrics[:2], [Param(f"p{n}-{round_}", "v")], [RunTag(f"t{n}", str(round_))]
                    )
                    store.log_metric(run_id, Metric("k0", float(n), 2000 + n, 8 * round_ + n))
            except MlflowException as error:
                errors.append(error.message)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == [], f"{label}: {errors[:3]}"
        outcomes[label] = snapshot(store, {run_id: "run0"}, 0)
    for table in ("metrics", "latest_metrics", "params", "tags"):
        assert outcomes["new"][table] == outcomes["stock"][table], table
    assert len(outcomes["new"]["metrics"]) == 8 * 6 * 6


def test_a_missing_run_is_the_same_error_for_every_write(stores: Stores) -> None:
    calls: list[Callable[[SqlAlchemyStore], object]] = [
        lambda s: s.log_batch(MISSING_RUN, [Metric("m", 1.0, 1, 1)], [], []),
        lambda s: s.log_batch(MISSING_RUN, [], [], []),
        lambda s: s.log_metric(MISSING_RUN, Metric("m", 1.0, 1, 1)),
        lambda s: s.log_param(MISSING_RUN, Param("p", "v")),
        lambda s: s.set_tag(MISSING_RUN, RunTag("t", "v")),
    ]
    for call in calls:
        errors = []
        for store in (stores.stock, stores.set_based):
            with pytest.raises(MlflowException) as raised:
                call(store)
            errors.append((raised.value.error_code, raised.value.message))
        assert errors[0] == errors[1] == ("RESOURCE_DOES_NOT_EXIST", f"Run with id={MISSING_RUN} not found")

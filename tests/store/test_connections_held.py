"""How many tracking-DB connections one request holds at once, per store: what
``rendering.pools.CONNECTIONS_PER_REQUEST`` sizes every pool from.

Counted with SQLAlchemy's pool events on each store's own engine (checkout/checkin), so the
figure is the store's behaviour, not an estimate: MLflow's ``log_batch`` holds two (the run's
session while nested ones write), the set-based store's writes one."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mlflow.entities import DatasetInput, Metric, Param, RunTag
from mlflow.entities.dataset import Dataset
from sqlalchemy import event

from rendering import pools
from rendering.pools import CONNECTIONS_PER_REQUEST
from tests.store.conftest import Stores


@contextmanager
def most_held(store: object) -> Iterator[list[int]]:
    """``[most]``: the most connections of ``store``'s engine checked out at once inside the block."""
    engine = store.engine  # type: ignore[attr-defined]
    held, most = [0], [0]

    def checkout(*_: object) -> None:
        held[0] += 1
        most[0] = max(most[0], held[0])

    def checkin(*_: object) -> None:
        held[0] -= 1

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        yield most
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)


def _writes(store: object, run_id: str) -> dict[str, Callable[[], None]]:
    now = int(time.time() * 1000)
    return {
        "log_batch": lambda: store.log_batch(  # type: ignore[attr-defined]
            run_id,
            metrics=[Metric(f"m{i % 10}", float(i), now, i // 10) for i in range(100)],
            params=[Param("p", "1")],
            tags=[RunTag("t", "1")],
        ),
        "log_metric": lambda: store.log_metric(run_id, Metric("single", 1.0, now, 0)),  # type: ignore[attr-defined]
        "log_param": lambda: store.log_param(run_id, Param("q", "2")),  # type: ignore[attr-defined]
        "set_tag": lambda: store.set_tag(run_id, RunTag("u", "3")),  # type: ignore[attr-defined]
        "create_run": lambda: store.create_run(  # type: ignore[attr-defined]
            store.get_run(run_id).info.experiment_id,
            "bench",
            now,
            [],
            None,  # type: ignore[attr-defined]
        ),
    }


@pytest.mark.parametrize("name", ["stock", "set_based"])
def test_each_write_holds_what_the_pool_plan_gives_its_store(stores: Stores, name: str):
    store = getattr(stores, name)
    experiment = store.create_experiment(f"connections-{uuid.uuid4().hex[:8]}")
    run_id = store.create_run(experiment, "u", int(time.time() * 1000), [], None).info.run_id
    allowed = CONNECTIONS_PER_REQUEST["stock" if name == "stock" else "set-based"]
    held = {}
    for operation, write in _writes(store, run_id).items():
        with most_held(store) as most:
            write()
        held[operation] = most[0]
    assert max(held.values()) <= allowed, held
    if name == "stock":
        assert held["log_batch"] == 2, "MLflow's nested log_batch sessions: the reason stock pools are doubled"


def test_what_still_nests_in_the_set_based_store_is_what_the_pool_plan_names(stores: Stores):
    """``log_inputs`` (MLflow's, inherited) still holds two: the docstring of
    ``CONNECTIONS_PER_REQUEST`` lists it; if MLflow stops nesting here, update the list."""
    store = stores.set_based
    experiment = store.create_experiment(f"connections-{uuid.uuid4().hex[:8]}")
    run_id = store.create_run(experiment, "u", int(time.time() * 1000), [], None).info.run_id
    dataset = Dataset(name="d", digest="abc", source_type="local", source="/tmp/d")
    with most_held(store) as most:
        store.log_inputs(run_id, [DatasetInput(dataset, [])])
    assert most[0] == 2
    assert "``log_inputs``" in Path(pools.__file__).read_text(), "rendering/pools.py must name what still nests"

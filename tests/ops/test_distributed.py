"""The distributed-training helper (``mlflowops.distributed``) with real worker *processes*
logging at the same time into their own child runs on the local platform: no metric lost,
steps in order per child, the parent's aggregate computed from what the server stored, and the
refusals (a failed worker, a missing metric, a missing worker)."""

from __future__ import annotations

import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from mlflowops import distributed

from .conftest import unique
from .distributed_worker import loss, train

pytestmark = pytest.mark.timeout(600)

WORKERS = 3
STEPS = 400


def test_worker_processes_log_into_their_own_child_runs(client: Any) -> None:
    experiment_id = client.create_experiment(unique("ops-distributed"))
    parent_id = distributed.start_parent(client, experiment_id, "distributed-training")
    context = multiprocessing.get_context("spawn")  # fresh interpreters, as separate hosts would be
    barrier = context.Manager().Barrier(WORKERS)
    with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
        futures = [pool.submit(train, parent_id, worker, STEPS, barrier) for worker in range(WORKERS)]
        run_ids = [future.result(timeout=300) for future in futures]

    assert len(set(run_ids)) == WORKERS
    children = distributed.children(client, parent_id)
    assert sorted(c.info.run_name for c in children) == [f"worker-{w}" for w in range(WORKERS)]
    for child in children:
        worker = int(child.data.tags[distributed.WORKER_TAG])
        assert child.info.status == "FINISHED" and child.info.run_id == run_ids[worker]
        history = client.get_metric_history(child.info.run_id, "train_loss")
        by_step = sorted(history, key=lambda m: m.step)
        assert [m.step for m in by_step] == list(range(STEPS)), "no metric lost or duplicated"
        assert [m.value for m in by_step] == pytest.approx([loss(worker, s) for s in range(STEPS)])
        stamps = [m.timestamp for m in by_step]
        assert stamps == sorted(stamps), "steps were logged in order within the child"
        assert len(client.get_metric_history(child.info.run_id, "step_seen")) == STEPS
        assert child.data.metrics["train_loss"] == pytest.approx(loss(worker, STEPS - 1)), "latest = last step"

    logged = distributed.aggregate(client, parent_id, {"train_loss": ("mean", "max")}, expected_workers=WORKERS)
    finals = [loss(w, STEPS - 1) for w in range(WORKERS)]
    assert logged == pytest.approx(
        {"workers": WORKERS, "train_loss_mean": statistics.fmean(finals), "train_loss_max": max(finals)}
    )
    parent = client.get_run(parent_id)
    assert distributed.PARENT_TAG not in parent.data.tags
    assert parent.data.metrics["train_loss_mean"] == pytest.approx(statistics.fmean(finals))


def test_restart_reuses_the_child_and_aggregation_refuses_partial_results(client: Any) -> None:
    experiment_id = client.create_experiment(unique("ops-distributed"))
    parent_id = distributed.start_parent(client, experiment_id, "elastic")
    options = {"client": client, "background": False, "register_atexit": False}
    with pytest.raises(RuntimeError, match="node lost"), distributed.worker_run(parent_id, 0, **options) as first:
        first.metrics.log_metrics({"train_loss": 0.9}, step=0)
        raise RuntimeError("node lost")
    assert client.get_run(first.run_id).info.status == "FAILED"
    assert client.get_metric_history(first.run_id, "train_loss")[0].value == 0.9, "flushed before FAILED"
    with pytest.raises(distributed.AggregationError, match="workers not FINISHED: worker-0"):
        distributed.aggregate(client, parent_id, {"train_loss": ("mean",)})

    with distributed.worker_run(parent_id, 0, **options) as again:  # the restarted worker
        again.metrics.log_metrics({"train_loss": 0.5}, step=1)
    assert again.run_id == first.run_id, "a restart continues its child run, no duplicate"
    with distributed.worker_run(parent_id, 1, **options) as other:
        other.metrics.log_metrics({"val_loss": 0.4}, step=0)
    with pytest.raises(distributed.AggregationError, match="train_loss: not logged by worker-1"):
        distributed.aggregate(client, parent_id, {"train_loss": ("mean",)})
    with pytest.raises(distributed.AggregationError, match=r"expected 3 worker runs .* found 2"):
        distributed.aggregate(client, parent_id, {"val_loss": ("mean",)}, expected_workers=3)
    with pytest.raises(ValueError, match="unknown aggregate"):
        distributed.aggregate(client, parent_id, {"val_loss": ("avg",)})
    assert "workers" not in client.get_run(parent_id).data.metrics, "nothing logged by a refused aggregate"

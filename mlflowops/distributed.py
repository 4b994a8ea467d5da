"""Distributed training without the guide's warning 4 (many workers logging into one run).

Each worker logs into its *own* child run under one parent run; when the workers are done the
launcher aggregates chosen metrics into the parent from what the server stored (not from
local variables, which a crashed or remote worker never returns). Works across processes and
machines: workers need only the parent's run id (pass it as an argument or environment
variable, as ``torchrun``/``accelerate`` pass ``RANK``).

    parent_id = start_parent(client, experiment_id, "distributed-training")
    # in each worker process, with its rank:
    with worker_run(parent_id, rank) as worker:          # child run "worker-<rank>"
        for step in ...:
            worker.metrics.log_metrics({"train_loss": loss}, step=step)
    # back in the launcher, after every worker exited:
    aggregate(client, parent_id, {"train_loss": ("mean", "min")}, expected_workers=world_size)
    client.set_terminated(parent_id)

Metrics go through :class:`~mlflowops.batching.BatchingMetricLogger` (few requests, retries,
nothing dropped). A restarted worker (elastic training) reuses its child run, found by the
``worker_id`` tag, instead of adding a duplicate that would be counted twice. A worker that
raises ends its child run ``FAILED``; :func:`aggregate` refuses to aggregate over missing,
unfinished or failed workers or a missing metric, since a mean over the survivors looks like a
result and is not one.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .batching import BatchingMetricLogger

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PARENT_TAG = "mlflow.parentRunId"
WORKER_TAG = "worker_id"
AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "mean": statistics.fmean,
    "min": min,
    "max": max,
    "sum": sum,
    "median": statistics.median,
}


class AggregationError(RuntimeError):
    """The children do not support an aggregate: a worker is missing, unfinished or lacks a metric."""


@dataclass
class WorkerRun:
    run_id: str
    worker_id: int
    metrics: BatchingMetricLogger


def _client(client: MlflowClient | None) -> MlflowClient:
    if client is not None:
        return client
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def start_parent(client: MlflowClient, experiment_id: str, run_name: str, tags: Mapping[str, str] | None = None) -> str:
    """The parent run (RUNNING until the launcher ends it)."""
    return str(client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {})).info.run_id)


def children(client: MlflowClient, parent_run_id: str) -> list[Any]:
    """Every child run of the parent (all pages)."""
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    found: list[Any] = []
    token: str | None = None
    while True:
        page: Any = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent_run_id}'",
            max_results=1000,
            page_token=token,
        )
        found += list(page)
        token = page.token
        if not token:
            return found


@contextmanager
def worker_run(
    parent_run_id: str, worker_id: int, *, client: MlflowClient | None = None, **logger_options: Any
) -> Iterator[WorkerRun]:
    """A worker's child run, with a batching logger bound to it. Ends the run FINISHED (FAILED
    if the body raised) after every buffered metric was sent."""
    client = _client(client)
    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}' AND tags.{WORKER_TAG} = '{worker_id}'"
    existing: Any = client.search_runs([experiment_id], filter_string=query, max_results=1)
    if existing:
        run_id = str(existing[0].info.run_id)
        client.update_run(run_id, status="RUNNING")
    else:
        tags = {PARENT_TAG: parent_run_id, WORKER_TAG: str(worker_id)}
        run_id = str(client.create_run(experiment_id, run_name=f"worker-{worker_id}", tags=tags).info.run_id)
    logger = BatchingMetricLogger(run_id, client=client, **logger_options)
    status = "FAILED"
    try:
        yield WorkerRun(run_id, worker_id, logger)
        status = "FINISHED"
    finally:
        try:
            logger.close()
        finally:
            client.set_terminated(run_id, status=status)


def aggregate(
    client: MlflowClient,
    parent_run_id: str,
    metrics: Mapping[str, Sequence[str]],
    *,
    expected_workers: int | None = None,
) -> dict[str, float]:
    """Log ``<metric>_<aggregate>`` (e.g. ``train_loss_mean``) over the children's latest values
    into the parent, plus ``workers``; returns what it logged."""
    for key, functions in metrics.items():
        unknown = [f for f in functions if f not in AGGREGATES]
        if unknown:
            raise ValueError(f"{key}: unknown aggregate(s) {unknown}; expected {', '.join(AGGREGATES)}")
    runs = children(client, parent_run_id)
    if expected_workers is not None and len(runs) != expected_workers:
        raise AggregationError(f"expected {expected_workers} worker runs under {parent_run_id}, found {len(runs)}")
    if not runs:
        raise AggregationError(f"no worker runs under {parent_run_id}")
    unfinished = sorted(r.info.run_name for r in runs if r.info.status != "FINISHED")
    if unfinished:
        raise AggregationError(f"workers not FINISHED: {', '.join(unfinished)}")
    values: dict[str, float] = {"workers": float(len(runs))}
    for key, functions in metrics.items():
        missing = sorted(r.info.run_name for r in runs if key not in r.data.metrics)
        if missing:
            raise AggregationError(f"{key}: not logged by {', '.join(missing)}")
        latest = [float(r.data.metrics[key]) for r in runs]
        for function in functions:
            values[f"{key}_{function}"] = float(AGGREGATES[function](latest))
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client.log_batch(parent_run_id, metrics=[Metric(k, v, now, 0) for k, v in values.items()])
    return values

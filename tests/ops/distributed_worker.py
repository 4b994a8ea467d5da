"""One training worker process for ``test_distributed.py``: imports only what a real worker
would (MLflow and ``mlflowops``), waits for its siblings, then logs as fast as it can."""

from __future__ import annotations

from typing import Any

from mlflowops.distributed import worker_run


def loss(worker_id: int, step: int) -> float:
    return 1.0 / (step + 1) + 0.01 * worker_id


def train(parent_run_id: str, worker_id: int, steps: int, barrier: Any) -> str:
    # Small batches and a short flush interval: many concurrent log-batch requests per worker.
    with worker_run(parent_run_id, worker_id, max_batch_metrics=40, flush_interval_s=0.2) as worker:
        barrier.wait(timeout=120)
        for step in range(steps):
            worker.metrics.log_metrics({"train_loss": loss(worker_id, step), "step_seen": float(step)}, step=step)
        return worker.run_id

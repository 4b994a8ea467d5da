#!/usr/bin/env python3
"""A training loop that logs per-step metrics through ``BatchingMetricLogger``.

Point it at a tracking server with the standard client environment, e.g. the local platform::

    set -a; . .local/mlflow.env; set +a
    python examples/train_with_batching.py --experiment demo --steps 1000

Two metrics per step for 1,000 steps become 2 ``log-batch`` requests (1,000 metrics each)
instead of the 1,000+ that ``mlflow.log_metrics`` per step (or the guide's helper) sends. The
"training" is arithmetic, so the example runs anywhere; replace ``train_step`` with yours.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mlflow

from mlflowops.batching import BatchingMetricLogger


def train_step(step: int) -> float:
    """Stand-in for a real optimiser step: a decaying, slightly noisy loss."""
    return 2.0 * math.exp(-step / 300) + 0.05 * math.sin(step / 7) + 0.1


def learning_rate(step: int, steps: int, base: float = 3e-4) -> float:
    return base * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1)))  # cosine schedule


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="examples/batching/demo", help="experiment name (created if absent)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--flush-interval", type=float, default=10.0, help="seconds between time-based flushes")
    args = parser.parse_args()

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run() as run:
        mlflow.log_params({"steps": args.steps, "optimizer": "sgd-cosine"})
        # The context manager flushes what is left when the loop ends (or raises); atexit covers
        # a script that forgets. A metric that cannot be sent raises instead of vanishing.
        with BatchingMetricLogger(run.info.run_id, flush_interval_s=args.flush_interval) as metrics:
            loss = float("nan")
            for step in range(args.steps):
                loss = train_step(step)
                metrics.log_metrics({"train_loss": loss, "learning_rate": learning_rate(step, args.steps)}, step=step)
        mlflow.log_metric("final_train_loss", loss)
    summary = {
        "run_id": run.info.run_id,
        "log_batch_requests": metrics.requests_sent,
        "metrics_sent": metrics.metrics_sent,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The training step `ml-pipeline.yml` calls: a stand-in for a team's own ``ml/train.py``.

It keeps the contract the workflow relies on, which a real training script must keep too:

* one run in ``--experiment-name``, tagged with the git commit and data version;
* the training data logged with ``mlflow.log_input(..., context="training")`` (what
  ``validate.py --min-data-coverage`` measures);
* the metrics the validation gate reads: ``test_ndcg`` (NDCG@10 on a held-out query set) and
  ``inference_latency_p99_ms`` (measured on single-row predictions);
* the model registered as ``--model-name``, and the run id and version written to
  ``$RUNNER_TEMP/mlflow_run_id`` and ``$RUNNER_TEMP/mlflow_model_version`` for the next steps
  (``$RUNNER_TEMP`` is emptied per job on GitHub's runners; the guide's fixed ``/tmp`` paths are
  shared between jobs on a self-hosted runner).

The model is a small linear ranker on synthetic data (sklearn), so the template runs anywhere.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.pandas_dataset import from_pandas
from mlflow.models import infer_signature
from mlflow.sklearn import log_model
from sklearn.linear_model import Ridge
from sklearn.metrics import ndcg_score

FEATURES = ["f0", "f1", "f2", "f3"]


def make_data(seed: int, queries: int, per_query: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(queries * per_query, len(FEATURES))), columns=FEATURES)
    frame["relevance"] = frame[FEATURES].to_numpy() @ np.array([1.5, -2.0, 0.5, 3.0]) + rng.normal(
        scale=0.5, size=len(frame)
    )
    frame["query"] = np.repeat(np.arange(queries), per_query)
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment-name", required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--git-sha", default="unknown")
    parser.add_argument("--data-version", default="unknown")
    parser.add_argument("--queries", type=int, default=60)
    args = parser.parse_args()

    train, test = make_data(1, args.queries), make_data(2, 20)
    mlflow.set_experiment(args.experiment_name)
    with mlflow.start_run(tags={"git_commit": args.git_sha, "data_version": args.data_version}) as run:
        dataset = from_pandas(
            train, source=f"s3://datasets/product-ranking/{args.data_version}.parquet", name="ranking_train"
        )
        mlflow.log_input(dataset, context="training")
        model = Ridge(alpha=1.0).fit(train[FEATURES], train["relevance"])
        mlflow.log_params({"model_type": "ridge", "alpha": 1.0, "feature_count": len(FEATURES)})

        scores = model.predict(test[FEATURES])
        true = test["relevance"].to_numpy().reshape(-1, 10)
        gains = true - true.min(axis=1, keepdims=True)  # NDCG needs non-negative relevance
        ndcg = float(ndcg_score(gains, scores.reshape(-1, 10), k=10))
        latencies = []
        for i in range(200):
            row = test[FEATURES].iloc[[i % len(test)]]
            start = time.perf_counter()
            model.predict(row)
            latencies.append((time.perf_counter() - start) * 1000)
        mlflow.log_metrics({"test_ndcg": ndcg, "inference_latency_p99_ms": float(np.percentile(latencies, 99))})

        sample = test[FEATURES].head(5)
        info = log_model(
            model,
            name="model",
            signature=infer_signature(sample, model.predict(sample)),
            registered_model_name=args.model_name,
            pip_requirements=[],
        )
    out = Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir())
    (out / "mlflow_run_id").write_text(run.info.run_id)
    (out / "mlflow_model_version").write_text(str(info.registered_model_version))
    print(f"run {run.info.run_id}: test_ndcg={ndcg:.3f}, model {args.model_name} v{info.registered_model_version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

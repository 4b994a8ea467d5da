"""The guide's workflows, as a user of the platform runs them (``mlflow-production-guide.txt``).

The code follows the guide's snippets closely; where a snippet is wrong it is fixed here and the
fix is named, so the tests exercise what the guide *means*:

* ``train_model``: sklearn's ``GradientBoostingRegressor``, a tree ensemble boosted round by
  round like the guide's XGBoost (not a dependency), with the metrics of each round from
  ``staged_predict``; ``artifact_path=`` is ``name=`` in MLflow 3; ``pip_requirements=[]`` skips
  the slow requirement inference; MLflow 3.17 saves sklearn models with skops and refuses a tree
  model unless its tree type is trusted, so ``log_model`` gets ``SKOPS_TRUSTED_TYPES`` (the
  README's advice).
* ``log_metrics_batched``: the guide re-enters ``start_run(run_id=current_run_id)`` per flush and
  still sends one request per step; here a flush is *one* ``log_batch`` request.
* ``promote_model``: the guide does ``model_version + 1`` on a string and uses the deprecated
  ``datetime.utcnow()``; its champion guard raises ``ValueError`` inside a ``try`` that turns
  every error into "No challenger alias set".
* ``cleanup_old_runs``: unchanged in substance (dry run first, top N protected).
* ``distributed_training``: the child-runs logic now lives in ``mlflowops.distributed``; the
  parent's aggregate is ``train_loss_mean`` (and ``workers``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.ensemble import GradientBoostingRegressor

from mlflowops import distributed

FEATURES = ("f0", "f1", "f2", "f3")
SKOPS_TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]
"""What ``mlflow.sklearn.log_model`` must be told to trust for any scikit-learn tree model: it
saves in the skops format and checks the file loads with only trusted types
(``mlflow/sklearn/__init__.py``, ``_save_model``); the list is stored in the ``MLmodel``."""


# -- Multi-team experiment organization ------------------------------------------------------


@dataclass(frozen=True)
class ExperimentConfig:
    team: str
    project: str
    experiment_type: str

    @property
    def experiment_name(self) -> str:
        return f"{self.team}/{self.project}/{self.experiment_type}"


def setup_experiment(config: ExperimentConfig) -> str:
    """Create or get the experiment, with tags for discoverability; make it the active one."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(config.experiment_name)
    if experiment is None:
        experiment_id = client.create_experiment(
            name=config.experiment_name,
            tags={
                "team": config.team,
                "project": config.project,
                "type": config.experiment_type,
                "owner": f"{config.team}-lead@company.com",
            },
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


# -- Training: params, dataset input, per-epoch metrics, a model with a signature ------------


def make_data(seed: int, rows: int = 400) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))
    target = frame @ np.array([1.5, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=rows)
    return frame, pd.Series(target, name="relevance")


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model: GradientBoostingRegressor
    history: list[dict[str, float]]
    final: dict[str, float]
    model_uri: str


def train_model(config: dict[str, Any]) -> TrainResult:
    """The guide's ``train_model``: one run, everything about the training recorded in it."""
    train_df: pd.DataFrame = config["train_df"]
    target: pd.Series = config["target"]
    split = int(len(train_df) * 0.8)
    x_train, x_val = train_df.iloc[:split], train_df.iloc[split:]
    y_train, y_val = target.iloc[:split], target.iloc[split:]
    with mlflow.start_run(
        run_name=f"gbt-{config['epochs']}r-{config['learning_rate']}lr",
        tags={
            "team": "recommendation",
            "project": "product-ranking",
            "environment": "staging",
            "git_commit": config.get("git_sha", "unknown"),
            "data_version": config.get("data_version", "v1"),
        },
    ) as run:
        mlflow.log_params(
            {
                "model_type": "gradient-boosted-trees",
                "learning_rate": config["learning_rate"],
                "epochs": config["epochs"],
                "max_depth": config["max_depth"],
                "eval_metric": "rmse",
                "training_data_path": config["data_path"],
                "feature_count": len(FEATURES),
            }
        )
        dataset = mlflow.data.from_pandas(
            train_df.assign(relevance=target), source=config["data_path"], name="product_ranking_train"
        )
        mlflow.log_input(dataset, context="training")

        model = GradientBoostingRegressor(
            n_estimators=config["epochs"],
            learning_rate=config["learning_rate"],
            max_depth=config["max_depth"],
            random_state=0,
        ).fit(x_train, y_train)
        history: list[dict[str, float]] = []
        stages = zip(model.staged_predict(x_train), model.staged_predict(x_val), strict=True)
        for epoch, (train_pred, val_pred) in enumerate(stages):  # one boosting round = one "epoch"
            metrics = {
                "train_loss": float(np.mean((train_pred - y_train) ** 2)),
                "val_loss": float(np.mean((val_pred - y_val) ** 2)),
            }
            metrics["val_score"] = 1.0 / (1.0 + metrics["val_loss"])
            history.append(metrics)
            mlflow.log_metrics(metrics, step=epoch)

        final = {"test_rmse": float(np.sqrt(history[-1]["val_loss"])), "inference_latency_p99_ms": 1.5}
        mlflow.log_metrics(final)

        sample = x_val.head(20)
        signature = mlflow.models.infer_signature(sample, model.predict(sample))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            registered_model_name=config.get("registered_model_name"),
            pip_requirements=[],
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        importances = dict(zip(FEATURES, model.feature_importances_.tolist(), strict=True))
        mlflow.log_dict({"feature_importances": importances}, "importance.json")
        return TrainResult(run.info.run_id, model, history, final, info.model_uri)


# -- Batch metric logging --------------------------------------------------------------------


def log_metrics_batched(
    client: MlflowClient, run_id: str, buffer: list[tuple[int, dict[str, float]]], batch_size: int = 100
) -> int:
    """Flush ``buffer`` as ONE ``log_batch`` request once it holds ``batch_size`` steps.
    Returns the number of requests sent (0 or 1)."""
    if len(buffer) < batch_size:
        return 0
    now = int(time.time() * 1000)
    metrics = [Metric(key, value, now, step) for step, values in buffer for key, value in values.items()]
    client.log_batch(run_id, metrics=metrics)
    buffer.clear()
    return 1


# -- Distributed training: one child run per worker ------------------------------------------


def distributed_training(experiment_id: str, workers: int, steps: int) -> tuple[str, dict[str, float]]:
    """The guide's GOOD pattern through the platform's helper (``mlflowops.distributed``): a
    parent run, each worker in its own child run (here in threads; ``tests/ops/test_distributed``
    runs them as processes), then the parent aggregates from what the server stored. Returns the
    parent run id and each worker's final loss by run id."""
    client = MlflowClient()
    parent_id = distributed.start_parent(client, experiment_id, "distributed-training")

    def worker(worker_id: int) -> tuple[str, float]:
        with distributed.worker_run(parent_id, worker_id, client=client, max_batch_metrics=25) as child:
            loss = 0.0
            for step in range(steps):
                loss = 1.0 / (step + 1) + 0.01 * worker_id
                child.metrics.log_metrics({"train_loss": loss}, step=step)
            client.log_param(child.run_id, "worker_id", worker_id)
            return child.run_id, loss

    with ThreadPoolExecutor(max_workers=workers) as pool:
        finals = dict(pool.map(worker, range(workers)))
    distributed.aggregate(client, parent_id, {"train_loss": ("mean",)}, expected_workers=workers)
    client.set_terminated(parent_id)
    return parent_id, finals


# -- Model registry: aliases and the candidate -> challenger -> champion promotion -----------


def _now() -> str:
    return datetime.now(UTC).isoformat()


def promote_model(model_name: str, version: str, target_alias: str) -> None:
    """The guide's ``promote_model`` with its validation gates and audit tags."""
    client = MlflowClient()
    mv = client.get_model_version(name=model_name, version=str(version))
    if target_alias == "challenger":
        if mv.tags.get("validation_status") != "passed":
            raise ValueError(
                f"Model version {version} has not passed validation. "
                f"Current status: {mv.tags.get('validation_status', 'unknown')}"
            )
    elif target_alias == "champion":
        try:
            current_challenger = client.get_model_version_by_alias(name=model_name, alias="challenger")
        except MlflowException:
            raise ValueError("No challenger alias set. Run shadow mode first.") from None
        if current_challenger.version != str(version):
            raise ValueError(
                f"Version {version} is not the current challenger. "
                f"Current challenger is version {current_challenger.version}"
            )
        try:
            old_champion = client.get_model_version_by_alias(name=model_name, alias="champion")
        except MlflowException:
            old_champion = None  # no existing champion
        if old_champion is not None:
            client.set_model_version_tag(model_name, old_champion.version, "archived_at", _now())
            client.delete_registered_model_alias(name=model_name, alias="champion")
    client.set_registered_model_alias(name=model_name, alias=target_alias, version=str(version))
    client.set_model_version_tag(model_name, str(version), f"promoted_to_{target_alias}_at", _now())


# -- Cleanup ---------------------------------------------------------------------------------


def cleanup_old_runs(
    experiment_name: str, max_age_days: float = 90, keep_top_n: int = 10, dry_run: bool = True
) -> list[str]:
    """The guide's cleanup: delete runs that ended before the cutoff, except the top N by
    ``val_score``. Returns the ids it deleted (or would delete)."""
    client = MlflowClient()
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return []
    cutoff_ms = int((datetime.now() - timedelta(days=max_age_days)).timestamp() * 1000)
    runs = client.search_runs(experiment_ids=[experiment.experiment_id], order_by=["metrics.val_score DESC"])
    protected = {r.info.run_id for r in runs[:keep_top_n]}
    chosen = []
    for run in runs:
        if run.info.run_id in protected:
            continue
        if run.info.end_time and run.info.end_time < cutoff_ms:
            if not dry_run:
                client.delete_run(run.info.run_id)
            chosen.append(run.info.run_id)
    return chosen


def write_blob(path: Path, size: int, seed: int = 7) -> Path:
    path.write_bytes(np.random.default_rng(seed).bytes(size))
    return path

"""A new user's training script, run in a fresh virtualenv holding only the README's client
install (no project code, no pytest), after ``. .local/mlflow.sh``.

``python new_user_train.py train OUT.json``: the guide's workflow with a tree model — two
registered versions of a gradient-boosted tree regressor (``skops_trusted_types`` as the README
says), aliases ``champion`` and ``challenger``, predictions on a holdout written to OUT.json.
``python new_user_train.py load OUT.json``: load both aliases and write their predictions.
Only the environment configures it: no URI, credential or CA appears here.
"""

from __future__ import annotations

import json
import sys

import mlflow
import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from sklearn.ensemble import GradientBoostingRegressor

MODEL = "first-hour-ranker"
FEATURES = ["f0", "f1", "f2", "f3"]


def data(seed: int, rows: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    return frame, frame.to_numpy() @ np.array([1.5, -2.0, 0.5, 3.0]) + rng.normal(scale=0.1, size=rows)


def train() -> dict[str, object]:
    mlflow.set_experiment("recommendation-team/product-ranking/first-hour")
    holdout, _ = data(99, 20)
    predictions: dict[str, list[float]] = {}
    for version, (rounds, rate) in enumerate([(20, 0.3), (8, 0.1)], start=1):
        frame, target = data(version, 300)
        with mlflow.start_run(run_name=f"gbt-{rounds}r"):
            mlflow.log_params({"rounds": rounds, "learning_rate": rate})
            model = GradientBoostingRegressor(n_estimators=rounds, learning_rate=rate, random_state=0)
            model.fit(frame, target)
            for step, predicted in enumerate(model.staged_predict(frame)):
                mlflow.log_metric("train_mse", float(np.mean((predicted - target) ** 2)), step=step)
            mlflow.sklearn.log_model(
                model,
                name="model",
                registered_model_name=MODEL,
                signature=mlflow.models.infer_signature(frame.head(5), model.predict(frame.head(5))),
                skops_trusted_types=["sklearn.tree._tree.Tree"],
                pip_requirements=[],
            )
        predictions[str(version)] = model.predict(holdout).tolist()
    client = MlflowClient()
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.set_registered_model_alias(MODEL, "challenger", "2")
    return {"tracking_uri": mlflow.get_tracking_uri(), "predictions": predictions}


def load() -> dict[str, object]:
    holdout, _ = data(99, 20)
    served = {
        alias: np.asarray(mlflow.pyfunc.load_model(f"models:/{MODEL}@{alias}").predict(holdout)).tolist()
        for alias in ("champion", "challenger")
    }
    return {"tracking_uri": mlflow.get_tracking_uri(), "served": served}


if __name__ == "__main__":
    command, out = sys.argv[1], sys.argv[2]
    result = train() if command == "train" else load()
    with open(out, "w", encoding="utf-8") as handle:
        json.dump(result, handle)

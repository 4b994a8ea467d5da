"""A training script's view of the platform, run by the tests in a clean interpreter whose
environment is exactly ``mlflow.env``: a run with a param, a metric and an artifact, a
registered model, and everything read back. Prints one ``RESULT <json>`` line."""

from __future__ import annotations

import json
import os
import sys
import tempfile

import mlflow
from mlflow.tracking import MlflowClient


class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def main(experiment: str) -> None:
    assert os.environ["MLFLOW_TRACKING_URI"].startswith("https://")
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in os.environ
    mlflow.set_experiment(experiment)
    client = MlflowClient()
    model_name = f"{experiment}-model"
    with mlflow.start_run() as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("loss", 0.25, step=1)
        workdir = tempfile.mkdtemp()
        path = os.path.join(workdir, "notes.txt")
        with open(path, "w") as handle:
            handle.write("artifact body")
        mlflow.log_artifact(path)
        mlflow.pyfunc.log_model(
            name="model", python_model=Echo(), registered_model_name=model_name, pip_requirements=[]
        )
    fetched = client.get_run(run.info.run_id)
    downloaded = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="notes.txt")
    with open(downloaded) as handle:
        body = handle.read()
    version = client.get_model_version(model_name, "1")
    client.set_registered_model_alias(model_name, "champion", "1")
    model = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    print(
        "RESULT "
        + json.dumps(
            {
                "run_id": run.info.run_id,
                "experiment_id": run.info.experiment_id,
                "artifact_uri": run.info.artifact_uri,
                "metrics": fetched.data.metrics,
                "params": fetched.data.params,
                "artifacts": [f.path for f in client.list_artifacts(run.info.run_id)],
                "artifact_body": body,
                "model_version_source": version.source,
                "prediction": list(model.predict([3, 4])),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])

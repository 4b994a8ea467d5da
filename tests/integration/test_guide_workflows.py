"""The guide's workflows end to end, in BOTH artifact access modes, through nginx's TLS endpoint
with the generated CA and basic-auth, with exactly the client environment of ``mlflow.env``.

The module-scoped platform is parametrized: all tests run on a *direct* platform (clients write
artifacts to S3 themselves), then on a *proxied* one (only the server talks to S3). Every test
reads back from the server what it wrote; none merely checks that nothing raised."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sklearn.ensemble import GradientBoostingRegressor

from localplatform import LocalPlatform

from .conftest import client_environment, module_platform
from .guide_workflows import (
    FEATURES,
    SKOPS_TRUSTED_TYPES,
    ExperimentConfig,
    TrainResult,
    cleanup_old_runs,
    distributed_training,
    log_metrics_batched,
    make_data,
    promote_model,
    setup_experiment,
    train_model,
    write_blob,
)

pytestmark = [
    pytest.mark.timeout(900),
    # MLflow 3.17's dataset digest calls a pandas API that pandas 4 will change; not ours to fix.
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),
]

MODEL_NAME = "product-ranking-gbt"
SEARCH = ExperimentConfig("recommendation-team", "product-ranking", "hyperparameter-search")
OTHER_TEAM = ExperimentConfig("fraud-team", "transaction-scoring", "model-comparison")
ABLATION = ExperimentConfig("recommendation-team", "product-ranking", "feature-ablation")


@pytest.fixture(scope="module", params=["direct", "proxied"])
def platform(request: pytest.FixtureRequest) -> Iterator[LocalPlatform]:
    yield from module_platform(f"workflows-{request.param}", access_mode=request.param)


@pytest.fixture(scope="module")
def env(platform: LocalPlatform) -> Iterator[dict[str, str]]:
    with client_environment(platform) as values:
        yield values


@dataclass(frozen=True)
class Trained:
    experiment_id: str
    versions: dict[str, TrainResult]  # model version -> its training
    holdout: pd.DataFrame


@pytest.fixture(scope="module")
def trained(env: dict[str, str]) -> Trained:
    """The guide's training workflow twice: two registered versions of one model."""
    experiment_id = setup_experiment(SEARCH)
    versions = {}
    for version, (seed, learning_rate, epochs) in enumerate([(1, 0.3, 6), (2, 0.1, 4)], start=1):
        frame, target = make_data(seed)
        versions[str(version)] = train_model(
            {
                "train_df": frame,
                "target": target,
                "learning_rate": learning_rate,
                "epochs": epochs,
                "max_depth": 3,
                "data_path": f"s3://datasets/product-ranking/train-{seed}.parquet",
                "git_sha": f"abc{seed}",
                "data_version": f"2026110{seed}",
                "registered_model_name": MODEL_NAME,
            }
        )
    holdout, _ = make_data(99, rows=25)
    return Trained(experiment_id, versions, holdout)


# -- experiments named team/project/type, with tags ------------------------------------------


def test_the_client_uses_tls_with_the_generated_ca_and_no_insecure_flag(env: dict[str, str]) -> None:
    assert env["MLFLOW_TRACKING_URI"].startswith("https://localhost:")
    assert Path(env["MLFLOW_TRACKING_SERVER_CERT_PATH"]).is_file()
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in env
    assert mlflow.get_tracking_uri() == env["MLFLOW_TRACKING_URI"]


def test_experiments_follow_the_team_project_type_convention(env: dict[str, str]) -> None:
    client = MlflowClient()
    first = setup_experiment(SEARCH)
    assert setup_experiment(SEARCH) == first, "create-or-get must return the same experiment"
    other = setup_experiment(OTHER_TEAM)
    experiment = client.get_experiment_by_name("recommendation-team/product-ranking/hyperparameter-search")
    assert experiment is not None and experiment.experiment_id == first
    assert {k: v for k, v in experiment.tags.items() if not k.startswith("mlflow.")} == {
        "team": "recommendation-team",
        "project": "product-ranking",
        "type": "hyperparameter-search",
        "owner": "recommendation-team-lead@company.com",
    }
    found = client.search_experiments(filter_string="tags.team = 'recommendation-team'")
    assert first in {e.experiment_id for e in found} and other not in {e.experiment_id for e in found}
    by_prefix = client.search_experiments(filter_string="name LIKE 'fraud-team/%'")
    assert [e.experiment_id for e in by_prefix] == [other]


# -- a training run: params, tags, per-epoch metrics, dataset, artifacts ---------------------


def test_training_run_records_params_tags_and_per_epoch_metrics(trained: Trained) -> None:
    client = MlflowClient()
    result = trained.versions["1"]
    run = client.get_run(result.run_id)
    assert run.info.experiment_id == trained.experiment_id
    assert run.info.run_name == "gbt-6r-0.3lr" and run.info.status == "FINISHED"
    assert run.data.params["learning_rate"] == "0.3" and run.data.params["feature_count"] == "4"
    assert run.data.params["training_data_path"] == "s3://datasets/product-ranking/train-1.parquet"
    assert {k: run.data.tags[k] for k in ("team", "project", "environment", "git_commit", "data_version")} == {
        "team": "recommendation",
        "project": "product-ranking",
        "environment": "staging",
        "git_commit": "abc1",
        "data_version": "20261101",
    }
    for key in ("train_loss", "val_loss", "val_score"):
        history = client.get_metric_history(result.run_id, key)
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(6))
        by_step = {m.step: m.value for m in history}
        assert by_step == pytest.approx({epoch: h[key] for epoch, h in enumerate(result.history)})
    assert run.data.metrics["test_rmse"] == pytest.approx(result.final["test_rmse"])
    assert run.data.metrics["val_loss"] == pytest.approx(result.history[-1]["val_loss"])  # latest value
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"], "the model must actually learn"
    importance = mlflow.artifacts.load_dict(f"runs:/{result.run_id}/importance.json")
    expected = dict(zip(FEATURES, result.model.feature_importances_.tolist(), strict=True))
    assert importance["feature_importances"] == pytest.approx(expected)


def test_the_pandas_dataset_is_logged_as_a_training_input(trained: Trained) -> None:
    run = MlflowClient().get_run(trained.versions["1"].run_id)
    assert run.inputs is not None and len(run.inputs.dataset_inputs) == 1
    dataset_input = run.inputs.dataset_inputs[0]
    dataset = dataset_input.dataset
    assert dataset.name == "product_ranking_train"
    assert {t.key: t.value for t in dataset_input.tags}["mlflow.data.context"] == "training"
    assert dataset.source_type in ("s3", "uri") and "train-1.parquet" in dataset.source
    frame, target = make_data(1)
    expected = mlflow.data.from_pandas(
        frame.assign(relevance=target), source="s3://elsewhere/copy.parquet", name="copy"
    )
    assert dataset.digest == expected.digest, "the digest identifies the exact data"
    assert sorted(c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]) == sorted([*FEATURES, "relevance"])
    assert json.loads(dataset.profile)["num_rows"] == 400


def test_log_batch_sends_params_tags_and_many_steps_at_once(env: dict[str, str]) -> None:
    client = MlflowClient()
    experiment_id = setup_experiment(SEARCH)
    run = client.create_run(experiment_id, run_name="batched-logging")
    client.log_batch(
        run.info.run_id,
        params=[Param("optimizer", "adam"), Param("batch_size", "256")],
        tags=[RunTag("stage", "pretraining")],
    )
    buffer: list[tuple[int, dict[str, float]]] = []
    requests_sent = 0
    for step in range(250):
        buffer.append((step, {"train_loss": 1.0 / (step + 1), "learning_rate": 0.001 * 0.99**step}))
        requests_sent += log_metrics_batched(client, run.info.run_id, buffer, batch_size=100)
    requests_sent += log_metrics_batched(client, run.info.run_id, buffer, batch_size=1)
    client.set_terminated(run.info.run_id)
    assert requests_sent == 3, "250 steps in batches of 100: three requests"
    fetched = client.get_run(run.info.run_id)
    assert fetched.data.params == {"optimizer": "adam", "batch_size": "256"}
    assert fetched.data.tags["stage"] == "pretraining"
    history = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted(m.step for m in history) == list(range(250))
    assert {m.step: m.value for m in history}[199] == pytest.approx(1.0 / 200)
    assert len(client.get_metric_history(run.info.run_id, "learning_rate")) == 250
    with pytest.raises(MlflowException, match=r"(?i)changing param values is not allowed"):
        client.log_batch(run.info.run_id, params=[Param("optimizer", "sgd")])  # params are immutable
    client.log_batch(run.info.run_id, metrics=[Metric("late", 1.0, 0, 0)])
    assert client.get_run(run.info.run_id).data.metrics["late"] == 1.0


def test_artifacts_land_in_the_bucket_and_large_ones_round_trip(
    env: dict[str, str], platform: LocalPlatform, tmp_path: Path
) -> None:
    client = MlflowClient()
    experiment_id = setup_experiment(SEARCH)
    blob = write_blob(tmp_path / "weights.bin", 24 * 1024 * 1024)
    with mlflow.start_run(experiment_id=experiment_id, run_name="large-artifact") as run:
        mlflow.log_artifact(str(blob), artifact_path="checkpoints")
    expected_prefix = "s3://" if platform.options.access_mode == "direct" else "mlflow-artifacts:/"
    assert run.info.artifact_uri.startswith(expected_prefix)
    listed = client.list_artifacts(run.info.run_id, "checkpoints")
    assert [(f.path, f.file_size) for f in listed] == [("checkpoints/weights.bin", blob.stat().st_size)]
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="checkpoints/weights.bin", dst_path=str(tmp_path / "down")
    )
    assert hashlib.sha256(Path(local).read_bytes()).digest() == hashlib.sha256(blob.read_bytes()).digest()
    # Wherever the client sent it, the object is in the platform's bucket.
    s3 = platform.s3_access()
    bucket = platform.s3_client()
    key = f"mlflow/{experiment_id}/{run.info.run_id}/artifacts/checkpoints/weights.bin"
    assert bucket.head_object(Bucket=s3["bucket"], Key=key)["ContentLength"] == blob.stat().st_size


# -- the model registry: signature, versions, aliases, tags, promotion -----------------------


def test_registered_versions_carry_their_signature(trained: Trained) -> None:
    client = MlflowClient()
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
    for version, result in trained.versions.items():
        mv = client.get_model_version(MODEL_NAME, version)
        assert mv.run_id == result.run_id and mv.status == "READY"
        info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}/{version}")
        assert info.signature is not None
        assert info.signature.inputs.input_names() == list(FEATURES)
        assert [t.name for t in info.signature.inputs.input_types()] == ["double"] * 4
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/1")
    # A tree model, saved with skops and its trusted tree type, loads back as itself.
    flavor = model.metadata.flavors["sklearn"]
    assert flavor["serialization_format"] == "skops" and flavor["skops_trusted_types"] == SKOPS_TRUSTED_TYPES
    native = mlflow.sklearn.load_model(f"models:/{MODEL_NAME}/1")
    assert isinstance(native, GradientBoostingRegressor) and len(native.estimators_) == 6
    with pytest.raises(MlflowException, match=r"(?i)missing inputs|f3"):
        model.predict(trained.holdout.drop(columns=["f3"]))  # the signature is enforced


def test_aliases_drive_the_candidate_challenger_champion_promotion(trained: Trained) -> None:
    client = MlflowClient()
    holdout = trained.holdout
    expected = {v: r.model.predict(holdout) for v, r in trained.versions.items()}
    assert not np.allclose(expected["1"], expected["2"]), "the two versions must be distinguishable"

    def served(alias: str) -> np.ndarray:
        return np.asarray(mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{alias}").predict(holdout))

    # CI: version 1 validated, becomes candidate, challenger, then champion.
    client.set_registered_model_alias(MODEL_NAME, "candidate", "1")
    client.set_model_version_tag(MODEL_NAME, "1", "validation_status", "passed")
    client.set_model_version_tag(MODEL_NAME, "1", "approved_by", "ml-lead@company.com")
    promote_model(MODEL_NAME, "1", "challenger")
    promote_model(MODEL_NAME, "1", "champion")
    # Version 2 is not validated yet: the gate refuses it; nor can it skip the challenger step.
    with pytest.raises(ValueError, match=r"has not passed validation"):
        promote_model(MODEL_NAME, "2", "challenger")
    with pytest.raises(ValueError, match=r"is not the current challenger"):
        promote_model(MODEL_NAME, "2", "champion")
    client.set_model_version_tag(MODEL_NAME, "2", "validation_status", "passed")
    promote_model(MODEL_NAME, "2", "challenger")

    assert client.get_registered_model(MODEL_NAME).aliases == {"candidate": "1", "champion": "1", "challenger": "2"}
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == "1"
    np.testing.assert_allclose(served("champion"), expected["1"])
    np.testing.assert_allclose(served("challenger"), expected["2"])

    # Shadow mode went well: the challenger becomes champion, the old champion is archived.
    promote_model(MODEL_NAME, "2", "champion")
    assert client.get_registered_model(MODEL_NAME).aliases["champion"] == "2"
    np.testing.assert_allclose(served("champion"), expected["2"])
    tags_1 = client.get_model_version(MODEL_NAME, "1").tags
    tags_2 = client.get_model_version(MODEL_NAME, "2").tags
    assert tags_1["validation_status"] == "passed" and tags_1["approved_by"] == "ml-lead@company.com"
    assert {"promoted_to_challenger_at", "promoted_to_champion_at", "archived_at"} <= set(tags_1)
    assert {"promoted_to_challenger_at", "promoted_to_champion_at"} <= set(tags_2) and "archived_at" not in tags_2
    with pytest.raises(MlflowException, match=r"(?i)not found|does not exist|RESOURCE_DOES_NOT_EXIST"):
        client.get_model_version_by_alias(MODEL_NAME, "no-such-alias")


# -- distributed training, search, cleanup ---------------------------------------------------


def test_distributed_training_uses_one_child_run_per_worker(env: dict[str, str]) -> None:
    client = MlflowClient()
    experiment_id = setup_experiment(SEARCH)
    parent_id, finals = distributed_training(experiment_id, workers=3, steps=60)
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.info.run_name for c in children) == ["worker-0", "worker-1", "worker-2"]
    assert {c.info.run_id for c in children} == set(finals)
    for child in children:
        history = client.get_metric_history(child.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == list(range(60)), "no lost or duplicated steps"
        assert child.data.metrics["train_loss"] == pytest.approx(finals[child.info.run_id])
        assert child.info.status == "FINISHED"
    parent = client.get_run(parent_id)
    assert "mlflow.parentRunId" not in parent.data.tags
    assert parent.data.metrics["workers"] == 3
    assert parent.data.metrics["train_loss_mean"] == pytest.approx(float(np.mean(list(finals.values()))))
    assert parent.info.status == "FINISHED"


def test_search_orders_runs_and_cleanup_deletes_all_but_the_best(env: dict[str, str]) -> None:
    client = MlflowClient()
    experiment_id = setup_experiment(ABLATION)
    scores = {"drop-f0": 0.62, "drop-f1": 0.91, "drop-f2": 0.48, "drop-f3": 0.77, "all-features": 0.85}
    ids = {}
    for name, score in scores.items():
        with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
            mlflow.log_metric("val_score", score)
            mlflow.log_param("ablation", name)
        ids[name] = run.info.run_id

    ranked = client.search_runs([experiment_id], order_by=["metrics.val_score DESC"])
    assert [r.info.run_name for r in ranked] == sorted(scores, key=scores.__getitem__, reverse=True)
    ascending = client.search_runs([experiment_id], order_by=["metrics.val_score ASC"], max_results=2)
    assert [r.info.run_name for r in ascending] == ["drop-f2", "drop-f0"]
    by_param = client.search_runs(
        [experiment_id], filter_string="metrics.val_score > 0.7", order_by=["params.ablation"]
    )
    assert [r.info.run_name for r in by_param] == ["all-features", "drop-f1", "drop-f3"]

    would = cleanup_old_runs(ABLATION.experiment_name, max_age_days=0, keep_top_n=2, dry_run=True)
    assert set(would) == {ids["drop-f3"], ids["drop-f0"], ids["drop-f2"]}
    assert all(client.get_run(i).info.lifecycle_stage == "active" for i in ids.values()), "a dry run deletes nothing"
    deleted = cleanup_old_runs(ABLATION.experiment_name, max_age_days=0, keep_top_n=2, dry_run=False)
    assert set(deleted) == set(would)
    for name, run_id in ids.items():
        stage = client.get_run(run_id).info.lifecycle_stage
        assert stage == ("active" if name in ("drop-f1", "all-features") else "deleted"), name
    active = client.search_runs([experiment_id], order_by=["metrics.val_score DESC"])
    assert [r.info.run_name for r in active] == ["drop-f1", "all-features"]
    gone = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert {r.info.run_id for r in gone} == set(deleted)
    client.restore_run(ids["drop-f3"])  # deletion is soft until `mlflow gc`
    assert client.get_run(ids["drop-f3"]).info.lifecycle_stage == "active"

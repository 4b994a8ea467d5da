"""validate.py --min-data-coverage on the local platform: coverage measured from the runs'
``mlflow.log_input`` training datasets against the champion's, as the guide's training code
logs them (``mlflow.data.from_pandas(...)``, ``context="training"``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlflowops import coverage, validation

from .conftest import Result, unique

pytestmark = [pytest.mark.timeout(600), pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")]

COLUMNS = ["f0", "f1", "f2", "relevance"]


def add_version(
    client: Any,
    name: str,
    experiment_id: str,
    rows: int | None,
    columns: list[str] = COLUMNS,
    context: str = "training",
) -> str:
    """A version whose run logged a ``rows`` x ``columns`` pandas dataset (none when rows is None)."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag, Metric

    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[Metric("test_ndcg", 0.5, int(time.time() * 1000), 0)])
    if rows is not None:
        frame = pd.DataFrame(np.arange(rows * len(columns)).reshape(rows, len(columns)) * 1.0, columns=columns)
        dataset = mlflow.data.from_pandas(frame, source=f"s3://datasets/{name}/{rows}.parquet", name="train")
        tag = InputTag(coverage.CONTEXT_TAG, context)
        client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags=[tag])])
    client.set_terminated(run_id)
    mv = client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run_id)
    return str(mv.version)


@pytest.fixture
def model(client: Any) -> tuple[str, str]:
    name = unique("cov-model")
    client.create_registered_model(name)
    return name, client.create_experiment(unique("ops-coverage"))


def validate(invoke: Callable[..., Result], name: str, version: str, minimum: str, *extra: str) -> Result:
    argv = ["--model-uri", f"models:/{name}/{version}", "--min-data-coverage", minimum, *extra]
    return invoke(validation.main, *argv)


def test_coverage_against_the_champion_passes_and_fails(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name, experiment = model
    champion = add_version(client, name, experiment, rows=400)
    client.set_registered_model_alias(name, "champion", champion)
    full = add_version(client, name, experiment, rows=420)
    short = add_version(client, name, experiment, rows=360)  # a missing upstream partition: 90 %
    dropped = add_version(client, name, experiment, rows=400, columns=["f0", "f1", "relevance"])

    ok = validate(invoke, name, full, "0.95", "--require", "test_ndcg>=0.45", "--json")
    assert ok.code == 0, ok
    assert ok.json["data_coverage"]["value"] == 1.0 and ok.json["passed"] is True
    tags = client.get_model_version(name, full).tags
    assert tags["data_coverage"] == "1"
    assert tags["validation_requirements"] == "test_ndcg>=0.45; data_coverage>=0.95"

    few = validate(invoke, name, short, "0.95")
    few.assert_one_line_error("data_coverage=0.9: 360 rows vs 400 for champion v1", "below --min-data-coverage 0.95")
    assert few.code == 1 and client.get_model_version(name, short).tags["validation_status"] == "failed"
    assert validate(invoke, name, short, "0.9").code == 0, "0.9 of the rows meets a 0.9 gate"

    cols = validate(invoke, name, dropped, "0.95", "--dry-run", "--json")
    assert cols.code == 1 and cols.json["data_coverage"]["value"] == pytest.approx(0.75)
    assert "missing columns f2" in cols.json["reasons"][0]


def test_a_run_without_a_training_dataset_fails(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name, experiment = model
    client.set_registered_model_alias(name, "champion", add_version(client, name, experiment, rows=100))
    none = add_version(client, name, experiment, rows=None)
    evaluation_only = add_version(client, name, experiment, rows=100, context="evaluation")
    for version in (none, evaluation_only):
        result = validate(invoke, name, version, "0.5")
        result.assert_one_line_error("logged no training dataset")
        assert result.code == 1


def test_no_champion_is_reported_not_invented(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name, experiment = model
    first = add_version(client, name, experiment, rows=10)
    result = validate(invoke, name, first, "0.95", "--json")
    assert result.code == 0, result
    assert result.json["data_coverage"]["value"] is None
    assert "no champion yet" in result.json["data_coverage"]["detail"]
    assert "data_coverage" not in client.get_model_version(name, first).tags


def test_coverage_formula_and_bad_flag(invoke: Any) -> None:
    base = coverage.TrainingData(400, frozenset({"a", "b", "c", "d"}), ("t@1",))
    assert coverage.measure(coverage.TrainingData(800, base.columns | {"e"}, ()), base) == 1.0
    assert coverage.measure(coverage.TrainingData(200, frozenset({"a", "b"}), ()), base) == 0.25
    for bad in ("1.5", "most"):
        result = invoke(validation.main, "--model-uri", "models:/m/1", "--min-data-coverage", bad)
        result.assert_one_line_error(f"--min-data-coverage '{bad}': expected a number between 0 and 1")
        assert result.code == 2

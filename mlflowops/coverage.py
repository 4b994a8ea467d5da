"""Data coverage for ``validate.py --min-data-coverage``: how much of the data the production
model was trained on the new version was trained on too.

What is measured comes from what the guide's training code logs and nothing else:
``mlflow.log_input(mlflow.data.from_pandas(...), context="training")`` records, per dataset, a
schema (the column names) and a profile (``num_rows``; MLflow 3.17's
``mlflow/data/pandas_dataset.py``, ``PandasDataset.profile``, holds only ``num_rows`` and
``num_elements``). There are no null counts in that profile, so coverage here is about *how
much data and which columns*, the failure a scheduled retrain actually meets (a missing upstream
partition, a dropped feature column):

    coverage = min(1, rows / baseline_rows) * |columns ∩ baseline_columns| / |baseline_columns|

where rows and columns are summed / united over the run's ``training``-context dataset inputs,
and the baseline is the same for the run behind the current ``champion``. 1.0 means "at least as
many rows and every column the champion had"; 0.95 tolerates 5 % fewer rows.

A version whose run logged no training dataset fails (coverage cannot be shown, so it is not
assumed). With no champion yet there is nothing in production to lose: coverage is not measured
and the gate says so, rather than inventing a baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TRAINING_CONTEXT = "training"
CONTEXT_TAG = "mlflow.data.context"


@dataclass(frozen=True)
class TrainingData:
    """What a run's ``training`` dataset inputs say about the data: rows and column names."""

    rows: int
    columns: frozenset[str]
    datasets: tuple[str, ...]
    """``name@digest`` of each training dataset, for the report."""


@dataclass(frozen=True)
class Coverage:
    value: float | None
    """None when there is no baseline (no champion yet)."""
    reason: str | None
    """Why the gate fails (None when it passes)."""
    detail: str


def training_data(client: MlflowClient, run_id: str) -> TrainingData | None:
    """Sum of the run's ``training``-context dataset inputs; None when it logged none."""
    run = client.get_run(run_id)
    inputs: Any = run.inputs.dataset_inputs if run.inputs is not None else []
    rows, columns, names = 0, set[str](), []
    for dataset_input in inputs:
        tags = {t.key: t.value for t in dataset_input.tags}
        if tags.get(CONTEXT_TAG) != TRAINING_CONTEXT:
            continue
        dataset = dataset_input.dataset
        names.append(f"{dataset.name}@{dataset.digest}")
        profile = json.loads(dataset.profile or "{}")
        rows += int(profile.get("num_rows", 0))
        schema = json.loads(dataset.schema or "{}")
        columns.update(str(c["name"]) for c in schema.get("mlflow_colspec", []) if "name" in c)
    if not names:
        return None
    return TrainingData(rows, frozenset(columns), tuple(names))


def measure(candidate: TrainingData, baseline: TrainingData) -> float:
    """The formula in the module docstring."""
    if baseline.rows <= 0 or not baseline.columns:
        return 1.0 if candidate.rows > 0 else 0.0
    row_share = min(1.0, candidate.rows / baseline.rows)
    column_share = len(candidate.columns & baseline.columns) / len(baseline.columns)
    return row_share * column_share


def evaluate(
    client: MlflowClient, run_id: str | None, champion_run_id: str | None, champion_version: str | None, minimum: float
) -> Coverage:
    """The ``--min-data-coverage`` gate for the run behind a version."""
    if run_id is None:
        return Coverage(None, "data coverage: the version has no source run", "no run")
    candidate = training_data(client, run_id)
    if candidate is None:
        reason = f"data coverage: run {run_id} logged no training dataset (mlflow.log_input(..., context='training'))"
        return Coverage(None, reason, "no training dataset")
    if champion_version is None:
        return Coverage(None, None, "no champion yet: data coverage not measured (nothing in production to compare)")
    if champion_run_id is None:
        return Coverage(None, f"data coverage: champion v{champion_version} has no source run", "no baseline run")
    baseline = training_data(client, champion_run_id)
    if baseline is None:
        reason = f"data coverage: champion v{champion_version}'s run {champion_run_id} logged no training dataset"
        return Coverage(None, reason, "no baseline dataset")
    value = measure(candidate, baseline)
    missing = sorted(baseline.columns - candidate.columns)
    detail = f"data_coverage={value:.4g}: {candidate.rows} rows vs {baseline.rows} for champion v{champion_version}" + (
        f", missing columns {', '.join(missing)}" if missing else ""
    )
    if value < minimum:
        return Coverage(value, f"{detail}; below --min-data-coverage {minimum:g}", detail)
    return Coverage(value, None, detail)

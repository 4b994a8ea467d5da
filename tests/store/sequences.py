"""Request sequences for the differential tests, and running one against a tracking store.

A sequence is a list of :class:`Op`; :func:`run_sequence` applies it to a fresh experiment with
two runs (``run0`` active, ``run1`` deleted) and one logged model, records every error as
(code, message) with generated ids replaced by their names, and returns the rows the sequence left
in ``metrics``, ``latest_metrics``, ``params``, ``tags``, ``logged_model_metrics`` and ``runs``,
normalized the same way. Two stores agree on a sequence when both results are equal.

Generation (:func:`generate`) draws from small pools on purpose, so keys, steps, timestamps and
values collide: out-of-order steps, ties on (step, timestamp) between NaN and 0, ±inf next to the
largest double, identical re-logs, duplicates in one batch, param changes, every run state.
"""

from __future__ import annotations

import math
import random
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from sqlalchemy import text

MISSING_RUN = "0123456789abcdef0123456789abcdef"
"""A well-formed run id no run has."""
INVALID_RUN = "not a run id"
MODEL = "{model}"
"""Placeholder for the sequence's logged model id in metric specs."""

METRIC_KEYS = ("loss", "acc", "m/2")
PARAM_KEYS = ("lr", "depth", "opt")
PARAM_VALUES = ("0.1", "0.2", "x" * 6001)
TAG_KEYS = ("team", "note", "mlflow.runName")
TAG_VALUES = ("a", "b", "", "v" * 9000)
RUN_NAMES = ("a", "b", "")
"""In a batch a run name too long for ``runs.name`` fails after MLflow has committed the rest of the
batch (a documented difference, tested on its own); ``set_tag`` alone gets the long one too."""
VALUES = (0.0, 1.5, -1.5, 2.0, math.nan, math.inf, -math.inf, 1.7976931348623157e308, -1.7976931348623157e308)
BAD_METRIC_KEYS = ("../up", "x" * 251)
BAD_PARAM_KEYS = ("bad key!", "k" * 251)


@dataclass(frozen=True)
class MetricSpec:
    key: str
    value: float
    timestamp: int
    step: int
    model: bool = False


@dataclass(frozen=True)
class Op:
    """One store call. ``run`` is ``run0``/``run1`` or a literal id (missing, invalid)."""

    kind: str  # log_batch | log_metric | log_param | set_tag | delete_tag
    run: str = "run0"
    metrics: tuple[MetricSpec, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@dataclass
class Outcome:
    errors: list[tuple[int, str, str]] = field(default_factory=list)
    """(op index, error code, normalized message) for every op that raised."""
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)


def _metric(spec: MetricSpec, model_id: str) -> Metric:
    return Metric(spec.key, spec.value, spec.timestamp, spec.step, model_id=model_id if spec.model else None)


def apply(store: SqlAlchemyStore, op: Op, ids: dict[str, str]) -> None:
    run_id = ids.get(op.run, op.run)
    if op.kind == "log_batch":
        store.log_batch(
            run_id,
            [_metric(m, ids["model"]) for m in op.metrics],
            [Param(k, v) for k, v in op.params],
            [RunTag(k, v) for k, v in op.tags],
        )
    elif op.kind == "log_metric":
        store.log_metric(run_id, _metric(op.metrics[0], ids["model"]))
    elif op.kind == "log_param":
        store.log_param(run_id, Param(*op.params[0]))
    elif op.kind == "set_tag":
        store.set_tag(run_id, RunTag(*op.tags[0]))
    elif op.kind == "delete_tag":
        store.delete_tag(run_id, op.tags[0][0])
    else:
        raise AssertionError(f"unknown op {op.kind}")


def normalize(value: object, names: dict[str, str]) -> object:
    if isinstance(value, str):
        for real, name in names.items():
            value = value.replace(real, name)
    return value


TABLES: dict[str, str] = {
    "metrics": 'SELECT run_uuid, key, value, "timestamp", step, is_nan FROM metrics WHERE run_uuid = ANY(:runs)',
    "latest_metrics": (
        'SELECT run_uuid, key, value, "timestamp", step, is_nan FROM latest_metrics WHERE run_uuid = ANY(:runs)'
    ),
    "params": "SELECT run_uuid, key, value FROM params WHERE run_uuid = ANY(:runs)",
    "tags": "SELECT run_uuid, key, value FROM tags WHERE run_uuid = ANY(:runs)",
    "logged_model_metrics": (
        "SELECT run_id, model_id, metric_name, metric_timestamp_ms, metric_step, metric_value, experiment_id = :exp, "
        "dataset_uuid, dataset_name, dataset_digest FROM logged_model_metrics WHERE run_id = ANY(:runs)"
    ),
    "runs": "SELECT run_uuid, name, status, lifecycle_stage FROM runs WHERE run_uuid = ANY(:runs)",
}


def error_text(message: str) -> str:
    """MLflow's own messages as they are; for an error PostgreSQL raised, its class and first line
    (the SQL around it is the ORM's in one store and a set-based statement in the other)."""
    found = re.search(r"\(psycopg2\.[A-Za-z.]+\) [^\n]*", message)
    return found.group(0) if found else message


def snapshot(store: SqlAlchemyStore, names: dict[str, str], experiment: int) -> dict[str, list[tuple[Any, ...]]]:
    runs = [real for real, name in names.items() if name.startswith("run")]
    rows: dict[str, list[tuple[Any, ...]]] = {}
    with store.engine.connect() as connection:
        for table, query in TABLES.items():
            found = connection.execute(text(query), {"runs": runs, "exp": experiment}).all()
            rows[table] = sorted(
                (tuple(normalize(v, names) for v in row) for row in found), key=lambda r: tuple(map(repr, r))
            )
    return rows


def run_sequence(store: SqlAlchemyStore, ops: Sequence[Op], label: str) -> Outcome:
    experiment_id = store.create_experiment(f"diff-{label}-{uuid.uuid4().hex[:12]}")
    ids = {}
    for name in ("run0", "run1"):
        run = store.create_run(experiment_id, "user", 0, [], name)
        ids[name] = run.info.run_id
    store.delete_run(ids["run1"])
    ids["model"] = store.create_logged_model(experiment_id, name="model").model_id
    names = {ids["run0"]: "run0", ids["run1"]: "run1", ids["model"]: "model"}
    outcome = Outcome()
    for index, op in enumerate(ops):
        try:
            apply(store, op, ids)
        except MlflowException as error:
            outcome.errors.append((index, error.error_code, error_text(str(normalize(error.message, names)))))
    outcome.rows = snapshot(store, names, int(experiment_id))
    return outcome


def _metric_specs(rng: random.Random, count: int, model_counter: Callable[[], int]) -> tuple[MetricSpec, ...]:
    specs = []
    for _ in range(count):
        if rng.random() < 0.15:
            # A logged-model metric: unique (key, timestamp, step) per spec, so two of them never
            # share logged_model_metrics' primary key with different values (a documented
            # difference, tested on its own); identical re-logs come from repeating a spec.
            n = model_counter()
            specs.append(MetricSpec(rng.choice(METRIC_KEYS), rng.choice(VALUES), 10_000 + n, n, model=True))
            continue
        specs.append(MetricSpec(rng.choice(METRIC_KEYS), rng.choice(VALUES), rng.randint(0, 2), rng.randint(0, 3)))
    if specs and rng.random() < 0.3:
        specs.append(rng.choice(specs))  # a duplicate within the request
    rng.shuffle(specs)
    return tuple(specs)


def _tag(rng: random.Random, run_names: Sequence[str]) -> tuple[str, str]:
    key = rng.choice(TAG_KEYS)
    return key, rng.choice(run_names if key == "mlflow.runName" else TAG_VALUES)


def generate(seed: int, length: int) -> list[Op]:
    """A random sequence; mostly valid requests on ``run0``, with every error case mixed in."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    counter = iter(range(1_000_000))
    ops: list[Op] = []
    history: list[Op] = []
    for _ in range(length):
        roll = rng.random()
        run = rng.choices(["run0", "run1", MISSING_RUN], weights=[0.85, 0.08, 0.07])[0]
        if history and roll < 0.08:
            ops.append(rng.choice(history))  # the same request again: identical re-log
            continue
        if roll < 0.5:
            params = tuple(
                dict((rng.choice(PARAM_KEYS), rng.choice(PARAM_VALUES)) for _ in range(rng.randint(0, 2))).items()
            )
            if rng.random() < 0.05:
                params += ((params[0][0], "dup"),) if params else (("lr", "0.1"), ("lr", "0.1"))
            if rng.random() < 0.04:
                params += ((rng.choice(BAD_PARAM_KEYS), "v"),)
            tags = tuple(_tag(rng, RUN_NAMES) for _ in range(rng.randint(0, 3)))
            metrics = _metric_specs(rng, rng.randint(0, 6), lambda: next(counter))
            if rng.random() < 0.04:
                metrics += (MetricSpec(rng.choice(BAD_METRIC_KEYS), 1.0, 0, 0),)
            op = Op("log_batch", INVALID_RUN if rng.random() < 0.03 else run, metrics, params, tags)
        elif roll < 0.7:
            spec = _metric_specs(rng, 1, lambda: next(counter))[0]
            if rng.random() < 0.04:
                spec = MetricSpec(rng.choice(BAD_METRIC_KEYS), 1.0, 0, 0, model=rng.random() < 0.5)
            op = Op("log_metric", run, metrics=(spec,))
        elif roll < 0.82:
            key = rng.choice(PARAM_KEYS + BAD_PARAM_KEYS[:1]) if rng.random() < 0.05 else rng.choice(PARAM_KEYS)
            op = Op("log_param", run, params=((key, rng.choice(PARAM_VALUES)),))
        elif roll < 0.94:
            op = Op("set_tag", run, tags=(_tag(rng, TAG_VALUES),))
        else:
            op = Op("delete_tag", run, tags=((rng.choice(TAG_KEYS), ""),))
        ops.append(op)
        history.append(op)
    return ops

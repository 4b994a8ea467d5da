"""``SetBasedSqlAlchemyStore``: MLflow's ``SqlAlchemyStore`` with the metric/param/tag writes of
``log_batch``, ``log_metric``, ``log_param`` and ``set_tag`` done as a few set-based statements in
one transaction. Everything else (reads, runs, experiments, traces, ``delete_tag``) is MLflow's.

Read against MLflow 3.17.2's ``mlflow/store/tracking/sqlalchemy_store.py``: the validation calls,
their order, the error messages and codes are the same as there; the differential tests
(``tests/store``) run generated request sequences against both stores and compare rows and errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg2.extensions
from mlflow.entities import Metric, Param, RunTag
from mlflow.entities.lifecycle_stage import LifecycleStage
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    RESOURCE_DOES_NOT_EXIST,
)
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME
from mlflow.utils.validation import (
    _validate_batch_log_data,
    _validate_batch_log_limits,
    _validate_metric,
    _validate_param,
    _validate_param_keys_unique,
    _validate_run_id,
    _validate_tag,
)

from . import statements as sql
from .statements import MetricRow


class _Writer:
    """One transaction's statements on one connection (a managed MLflow session)."""

    def __init__(self, session: Any, run_id: str) -> None:
        self.run_id = run_id
        self.connection = session.connection()
        raw = self.connection.connection.dbapi_connection
        # The cursor is only for psycopg2's quoting (mogrify); nothing runs on it.
        self.literals = sql.Literals(raw.cursor(), psycopg2.extensions.encodings[raw.encoding])

    def execute(self, statement: str, parameters: tuple[object, ...] | None = None) -> list[Any]:
        """Through SQLAlchemy, so driver errors become the same MlflowException codes as the ORM's
        (deadlocks: TEMPORARILY_UNAVAILABLE, retried by ``_run_with_deadlock_retry``)."""
        if parameters is None:
            result = self.connection.execution_options(no_parameters=True).exec_driver_sql(statement)
        else:
            result = self.connection.exec_driver_sql(statement, parameters)
        return list(result) if result.returns_rows else []

    def execute_values(self, statement: str, rows: Sequence[Sequence[object]]) -> list[Any]:
        return self.execute(statement.format(values=self.literals.values_list(rows)))

    def active_run(self) -> int:
        """The run's experiment id; MLflow's errors for a missing or deleted run."""
        found = self.execute(sql.SELECT_RUN, (self.run_id,))
        if not found:
            raise MlflowException(f"Run with id={self.run_id} not found", RESOURCE_DOES_NOT_EXIST)
        stage, experiment_id = found[0]
        if stage != LifecycleStage.ACTIVE:
            raise MlflowException(
                f"The run {self.run_id} must be in the 'active' state. Current state is {stage}.",
                INVALID_PARAMETER_VALUE,
            )
        return int(experiment_id)

    def params(self, params: Sequence[Param], single: bool) -> None:
        """Insert new params; an existing key with another value is MLflow's error, also when the
        other value was inserted concurrently (MLflow itself answers that race with a 500)."""
        if not params:
            return
        existing = self._param_values([p.key for p in params])
        self._refuse_changes(params, existing, single)
        new = sorted((p for p in params if p.key not in existing), key=lambda p: p.key)
        if not new:
            return
        rows = [(p.key, p.value, self.run_id) for p in new]
        inserted = {row[0] for row in self.execute_values(sql.INSERT_PARAMS, rows)}
        raced = [p for p in new if p.key not in inserted]
        if raced:
            self._refuse_changes(raced, self._param_values([p.key for p in raced]), single)

    def _param_values(self, keys: list[str]) -> dict[str, str]:
        return dict(self.execute(sql.SELECT_PARAMS, (self.run_id, keys)))

    def _refuse_changes(self, params: Sequence[Param], existing: dict[str, str], single: bool) -> None:
        changed = [
            {"key": p.key, "old_value": existing[p.key], "new_value": p.value}
            for p in params
            if p.key in existing and existing[p.key] != p.value
        ]
        if not changed:
            return
        if single:
            first = changed[0]
            raise MlflowException(
                "Changing param values is not allowed. Param with key='{}' was already"
                " logged with value='{}' for run ID='{}'. Attempted logging new value"
                " '{}'.".format(first["key"], first["old_value"], self.run_id, first["new_value"]),
                INVALID_PARAMETER_VALUE,
            )
        raise MlflowException(
            f"Changing param values is not allowed. Params were already logged='{changed}' for run ID='{self.run_id}'.",
            INVALID_PARAMETER_VALUE,
        )

    def metrics(self, metrics: Sequence[Metric]) -> None:
        """``metrics`` rows (identical re-logs ignored) and one ``latest_metrics`` upsert."""
        if not metrics:
            return
        rows = []
        for metric in metrics:
            is_nan, value = sql.sanitize(metric.value)
            rows.append(MetricRow(metric.key, value, metric.timestamp, metric.step, is_nan))
        unique = sorted(sql.unique_metric_rows(rows), key=lambda r: (r.key, r.timestamp, r.step, r.value, r.is_nan))
        self.execute_values(
            sql.INSERT_METRICS, [(r.key, r.value, r.timestamp, r.step, r.is_nan, self.run_id) for r in unique]
        )
        latest = sql.latest_per_key(rows)
        self.execute_values(
            sql.UPSERT_LATEST_METRICS,
            [(r.key, r.value, r.timestamp, r.step, r.is_nan, self.run_id) for r in latest],
        )

    def model_metrics(self, metrics: Sequence[Metric], experiment_id: int) -> None:
        """What MLflow's ``_log_model_metrics`` writes for metrics that name a logged model. A key
        already there with another value is refused (MLflow: an IntegrityError, 400)."""
        wanted = list(dict.fromkeys(m for m in metrics if m.model_id is not None))
        if not wanted:
            return
        rows = [
            (
                m.model_id,
                m.key,
                m.timestamp,
                m.step,
                sql.sanitize(m.value)[1],
                experiment_id,
                self.run_id,
                None,
                m.dataset_name,
                m.dataset_digest,
            )
            for m in wanted
        ]
        rows.sort(key=lambda r: (str(r[0]), str(r[1]), int(r[2] or 0), int(r[3] or 0)))  # lock order
        inserted = {tuple(row) for row in self.execute_values(sql.INSERT_LOGGED_MODEL_METRICS, rows)}
        for row in rows:
            if tuple(row[:4]) in inserted:
                continue
            held = self.execute(
                "SELECT metric_value FROM logged_model_metrics WHERE model_id = %s AND metric_name = %s "
                "AND metric_timestamp_ms = %s AND metric_step = %s AND run_id = %s",
                (*row[:4], self.run_id),
            )
            if held and held[0][0] != row[4]:
                raise MlflowException(
                    f"Metric '{row[1]}' of logged model '{row[0]}' at step {row[3]} and timestamp {row[2]} "
                    f"was already logged with value {held[0][0]}; attempted {row[4]}",
                    BAD_REQUEST,
                )

    def tags(self, tags: Sequence[RunTag]) -> None:
        """Upsert the last value of each key. ``mlflow.runName`` also renames the run, and like
        MLflow's ``update_run_info`` an empty name changes nothing."""
        if not tags:
            return
        names = [t.value for t in tags if t.key == MLFLOW_RUN_NAME and t.value]
        pairs = [(t.key, t.value) for t in tags if t.key != MLFLOW_RUN_NAME]
        for name in names:  # each, in order, as MLflow does: a name too long for runs.name fails here
            self.execute(sql.UPDATE_RUN_NAME, (name, self.run_id))
        if names:
            pairs.append((MLFLOW_RUN_NAME, names[-1]))
        chosen = sql.last_value_per_key(pairs)
        if chosen:
            self.execute_values(sql.UPSERT_TAGS, [(k, v, self.run_id) for k, v in chosen])


class SetBasedSqlAlchemyStore(SqlAlchemyStore):
    """MLflow's store; only the four write paths below are replaced. PostgreSQL + psycopg2 only."""

    def __init__(self, db_uri: str, default_artifact_root: str | None) -> None:
        super().__init__(db_uri, default_artifact_root)
        if self.engine.dialect.name != "postgresql" or self.engine.dialect.driver != "psycopg2":
            raise MlflowException(
                f"the set-based tracking store needs postgresql+psycopg2, got "
                f"{self.engine.dialect.name}+{self.engine.dialect.driver}"
            )

    def _write(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
        single_param: bool = False,
        validate_after_run_check: Metric | None = None,
    ) -> None:
        """One transaction, in MLflow's order: run check, params, metrics, model metrics, tags."""
        with self.ManagedSessionMaker(read_only=False) as session:
            writer = _Writer(session, run_id)
            experiment_id = writer.active_run()
            if validate_after_run_check is not None:
                m = validate_after_run_check
                _validate_metric(m.key, m.value, m.timestamp, m.step, path="")
            writer.params(params, single_param)
            writer.metrics(metrics)
            writer.model_metrics(metrics, experiment_id)
            writer.tags(tags)

    def _write_with_retry(self, run_id: str, **kwargs: Any) -> None:
        """The whole transaction is redriven on a deadlock, as MLflow redrives ``_log_metrics``."""
        self._run_with_deadlock_retry(self._write, run_id, **kwargs)

    def log_batch(self, run_id: str, metrics: list[Metric], params: list[Param], tags: list[RunTag]) -> None:
        _validate_run_id(run_id)
        metrics, params, tags = _validate_batch_log_data(metrics, params, tags)
        _validate_batch_log_limits(metrics, params, tags)
        _validate_param_keys_unique(params)
        try:
            self._write_with_retry(run_id, metrics=metrics, params=params, tags=tags)
        except MlflowException:
            raise
        except Exception as e:
            raise MlflowException(str(e), INTERNAL_ERROR) from e

    def log_metric(self, run_id: str, metric: Metric) -> None:
        # MLflow checks the run before validating a metric that names a logged model, after otherwise.
        if metric.model_id is None:
            _validate_metric(metric.key, metric.value, metric.timestamp, metric.step, path="")
            self._write_with_retry(run_id, metrics=[metric])
        else:
            self._write_with_retry(run_id, metrics=[metric], validate_after_run_check=metric)

    def log_param(self, run_id: str, param: Param) -> None:
        param = _validate_param(param.key, param.value)
        self._write_with_retry(run_id, params=[param], single_param=True)

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        tag = _validate_tag(tag.key, tag.value)
        self._write_with_retry(run_id, tags=[tag])

"""The set-based statements and the in-memory reductions they need, as plain functions.

Why reductions in Python first: PostgreSQL refuses ``INSERT … ON CONFLICT DO UPDATE`` that
touches the same row twice in one statement ("command cannot affect row a second time"), so each
upsert gets one row per conflict key, chosen exactly as MLflow's row-at-a-time loop would end up:

* ``latest_metrics``: MLflow keeps the incoming metric only if ``(step, timestamp, value)`` is
  *strictly* greater than what it holds (``SqlAlchemyStore._update_latest_metrics_if_necessary``),
  comparing the *stored* value (NaN stored as 0 with ``is_nan``, ±inf as ±max double). A fold with
  strict ``>`` keeps the first of equal candidates, so the reduction does the same, and the
  statement's ``WHERE`` applies the same strict comparison against the row already there.
* ``tags``: MLflow's ``_set_tags`` lets the last value of a key in one batch win.

Values are rendered as psycopg2 renders them (:class:`Literals`; strings by psycopg2 itself) into
one multi-row ``VALUES`` list, and the statement is executed through SQLAlchemy, so driver errors
reach MLflow's session handling (deadlock retries, error codes) exactly as the ORM's would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_DOUBLE = 1.7976931348623157e308


@dataclass(frozen=True)
class MetricRow:
    """One ``metrics`` row as MLflow stores it (value sanitized, ``is_nan`` separate)."""

    key: str
    value: float
    timestamp: int
    step: int
    is_nan: bool

    def order(self) -> tuple[int, int, float]:
        """MLflow's "more recent" order for ``latest_metrics``."""
        return (self.step, self.timestamp, self.value)


def sanitize(value: float) -> tuple[bool, float]:
    """MLflow's ``SqlAlchemyStore.sanitize_metric_value``: NaN -> (True, 0), ±inf -> ±max double."""
    if math.isnan(value):
        return True, 0.0
    if math.isinf(value):
        return False, MAX_DOUBLE if value > 0 else -MAX_DOUBLE
    return False, float(value)


def unique_metric_rows(rows: Iterable[MetricRow]) -> list[MetricRow]:
    """Distinct rows by the ``metrics`` primary key (all columns), first occurrence kept: what
    MLflow's insert-then-recover path leaves in the table for duplicates in one request."""
    return list(dict.fromkeys(rows))


def latest_per_key(rows: Iterable[MetricRow]) -> list[MetricRow]:
    """One candidate per key: the first row with the greatest ``(step, timestamp, value)``.
    Sorted by key so concurrent requests lock ``latest_metrics`` rows in the same order."""
    best: dict[str, MetricRow] = {}
    for row in rows:
        held = best.get(row.key)
        if held is None or row.order() > held.order():
            best[row.key] = row
    return [best[key] for key in sorted(best)]


def last_value_per_key(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The last value given for each key, sorted by key (stable lock order)."""
    last: dict[str, str] = {}
    for key, value in pairs:
        last[key] = value
    return sorted(last.items())


class Literals:
    """SQL literals exactly as psycopg2 adapts them, without a ``mogrify`` call per value.

    Why: rendering 1,000 rows with ``cursor.mogrify`` per row took about a fifth of the server's
    samples for a 1,000-key ``log_batch``. ``None``, ``bool``, ``int`` and finite ``float`` are
    rendered here the way psycopg2's adapters render them (``NULL``, ``true``/``false``, ``str()``,
    ``repr()``, a space before a minus sign); strings and everything else go through psycopg2's own
    quoting for this connection, once per distinct string (keys and run ids repeat)."""

    def __init__(self, cursor: Any, codec: str) -> None:
        self.cursor = cursor
        self.codec = codec
        """The connection's client encoding as a Python codec name."""
        self.quoted: dict[str, str] = {}

    def __call__(self, value: object) -> str:
        if value is None:
            return "NULL"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if type(value) is int or (type(value) is float and math.isfinite(value)):
            text = repr(value)
            return " " + text if text[0] == "-" else text
        if type(value) is str:
            found = self.quoted.get(value)
            if found is None:
                found = self.quoted[value] = self._adapt(value)
            return found
        return self._adapt(value)

    def _adapt(self, value: object) -> str:
        return self.cursor.mogrify("%s", (value,)).decode(self.codec)

    def values_list(self, rows: Sequence[Sequence[object]]) -> str:
        """``(…),(…),…`` for a multi-row ``VALUES``."""
        return ",".join("(" + ",".join([self(v) for v in row]) + ")" for row in rows)


INSERT_METRICS = (
    'INSERT INTO metrics (key, value, "timestamp", step, is_nan, run_uuid) VALUES {values} ON CONFLICT DO NOTHING'
)
"""Re-logging an identical metric (same primary key: every column) stays a silent no-op."""

UPSERT_LATEST_METRICS = (
    'INSERT INTO latest_metrics AS held (key, value, "timestamp", step, is_nan, run_uuid) VALUES {values} '
    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = EXCLUDED.value, "
    '"timestamp" = EXCLUDED."timestamp", step = EXCLUDED.step, is_nan = EXCLUDED.is_nan '
    'WHERE (EXCLUDED.step, EXCLUDED."timestamp", EXCLUDED.value) > (held.step, held."timestamp", held.value)'
)
"""MLflow's ordering rule as one statement. A concurrent writer's row is locked and the ``WHERE``
re-evaluated against its committed version (READ COMMITTED upsert), so no update is lost."""

INSERT_PARAMS = "INSERT INTO params (key, value, run_uuid) VALUES {values} ON CONFLICT DO NOTHING RETURNING key"
"""Keys not returned were inserted concurrently by someone else; the store re-reads and compares."""

SELECT_PARAMS = "SELECT key, value FROM params WHERE run_uuid = %s AND key = ANY(%s)"

UPSERT_TAGS = (
    "INSERT INTO tags (key, value, run_uuid) VALUES {values} "
    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = EXCLUDED.value"
)

INSERT_LOGGED_MODEL_METRICS = (
    "INSERT INTO logged_model_metrics (model_id, metric_name, metric_timestamp_ms, metric_step, "
    "metric_value, experiment_id, run_id, dataset_uuid, dataset_name, dataset_digest) VALUES {values} "
    "ON CONFLICT DO NOTHING RETURNING model_id, metric_name, metric_timestamp_ms, metric_step"
)

SELECT_RUN = "SELECT lifecycle_stage, experiment_id FROM runs WHERE run_uuid = %s"

UPDATE_RUN_NAME = "UPDATE runs SET name = %s WHERE run_uuid = %s"

"""The store renders SQL literals itself (speed); they must be exactly what psycopg2 renders."""

from __future__ import annotations

import math

import psycopg2
import psycopg2.extensions
from mlflow_platform_store.statements import Literals

from localplatform import LocalPlatform

VALUES: list[object] = [
    None, True, False, 0, -1, 2**62, -(2**62), 0.0, -0.0, 1.5, -1.5, 1e-300, -1e-300, 1.7976931348623157e308,
    -1.7976931348623157e308, 0.1 + 0.2, 5e-324, math.inf, -math.inf, math.nan, "", "plain", "it's", "back\\slash",
    "naïve ✓", "%s %(x)s", "a\nb", "x" * 300,
]  # fmt: skip


def test_literals_are_psycopg2s_own(store_platform: LocalPlatform) -> None:
    connection = psycopg2.connect(**store_platform.database_params("mlflow", role="app", via_pgbouncer=True))
    try:
        cursor = connection.cursor()
        literals = Literals(cursor, psycopg2.extensions.encodings[connection.encoding])
        for value in VALUES:
            assert literals(value) == cursor.mogrify("%s", (value,)).decode(), repr(value)
        rows = [VALUES[i : i + 4] for i in range(0, len(VALUES), 4)]
        expected = b",".join(cursor.mogrify("(" + ",".join(["%s"] * len(row)) + ")", row) for row in rows).decode()
        assert literals.values_list(rows) == expected
        # And PostgreSQL reads back every finite float exactly.
        floats = [v for v in VALUES if type(v) is float and math.isfinite(v)]
        values = literals.values_list([(v,) for v in floats])
        cursor.execute(f"SELECT v::float8 FROM (VALUES {values}) AS t(v)")  # noqa: S608 - the literals under test
        assert [row[0] for row in cursor.fetchall()] == floats
    finally:
        connection.close()

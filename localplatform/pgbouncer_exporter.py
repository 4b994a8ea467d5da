"""PgBouncer pool metrics for the local target: ``SHOW POOLS`` as Prometheus metrics.

The pod runs prometheus-community's pgbouncer-exporter as a sidecar (``rendering.images``). Its
Go binary is not packaged for Debian or PyPI (Debian's ``prometheus-pgbouncer-exporter`` is a
different exporter with other metric names), so the local target runs this stand-in, which
reads the same ``SHOW POOLS`` as the same kind of login (a ``stats_users`` entry: ``SHOW`` only)
from the same environment variable, and exports the pool gauges under the sidecar's names
(``pgbouncer_pools_*`` labelled ``database`` and ``user``, plus ``pgbouncer_up``), so queries
and alerts written against one work on the other.

    python -m localplatform.pgbouncer_exporter 127.0.0.1 9127
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator

import psycopg2
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

CONNECTION_ENV = "PGBOUNCER_EXPORTER_CONNECTION_STRING"
"""The variable the sidecar reads its DSN from, too."""

POOL_GAUGES: dict[str, tuple[str, str, float]] = {
    # SHOW POOLS column: (metric name, help, scale)
    "cl_active": ("pgbouncer_pools_client_active_connections", "Client connections linked to a server", 1),
    "cl_waiting": ("pgbouncer_pools_client_waiting_connections", "Client connections waiting for a server", 1),
    "sv_active": ("pgbouncer_pools_server_active_connections", "Server connections linked to a client", 1),
    "sv_idle": ("pgbouncer_pools_server_idle_connections", "Server connections idle and ready", 1),
    "sv_used": ("pgbouncer_pools_server_used_connections", "Server connections idle past server_check_delay", 1),
    "sv_tested": ("pgbouncer_pools_server_testing_connections", "Server connections being tested", 1),
    "sv_login": ("pgbouncer_pools_server_login_connections", "Server connections logging in", 1),
    "maxwait": ("pgbouncer_pools_client_maxwait_seconds", "Age of the oldest unserved client, seconds", 1),
}


class PoolCollector(Collector):
    """Queries PgBouncer at each scrape (one admin-console connection, kept open)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.lock = threading.Lock()
        self.connection: psycopg2.extensions.connection | None = None

    def _rows(self) -> list[dict[str, object]]:
        with self.lock:
            if self.connection is None or self.connection.closed:
                self.connection = psycopg2.connect(self.dsn, connect_timeout=5)
                # The admin console has no transactions: psycopg2 must not send BEGIN.
                self.connection.autocommit = True
            with self.connection.cursor() as cursor:
                cursor.execute("SHOW POOLS")
                names = [column.name for column in cursor.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("pgbouncer_up", "1 if PgBouncer answered SHOW POOLS")
        try:
            rows = self._rows()
        except psycopg2.Error as error:
            print(f"pgbouncer-exporter: {error}".strip(), file=sys.stderr, flush=True)
            self.connection = None
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        for column, (name, help_text, scale) in POOL_GAUGES.items():
            family = GaugeMetricFamily(name, help_text, labels=["database", "user"])
            for row in rows:
                if column in row:
                    value = float(str(row[column])) * scale
                    if column == "maxwait" and "maxwait_us" in row:
                        value += float(str(row["maxwait_us"])) / 1e6
                    family.add_metric([str(row["database"]), str(row["user"])], value)
            yield family


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m localplatform.pgbouncer_exporter HOST PORT", file=sys.stderr)
        return 2
    dsn = os.environ.get(CONNECTION_ENV)
    if not dsn:
        print(f"{CONNECTION_ENV} is not set", file=sys.stderr)
        return 2
    REGISTRY.register(PoolCollector(dsn))
    server, thread = start_http_server(int(argv[1]), addr=argv[0])
    print(f"pgbouncer-exporter: serving http://{argv[0]}:{argv[1]}/metrics", flush=True)
    try:
        thread.join()
    except KeyboardInterrupt:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

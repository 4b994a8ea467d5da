"""Stand-in for prometheus-community's ``pgbouncer_exporter`` binary (tests/pod/images.py).

Accepts the flags the pod passes (``--web.listen-address=[HOST]:PORT``,
``--web.telemetry-path=/metrics``) and serves ``localplatform.pgbouncer_exporter``'s collector,
which reads the same ``PGBOUNCER_EXPORTER_CONNECTION_STRING``. An unknown flag is an error, as
it is for the real binary.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from localplatform.pgbouncer_exporter import main


def run(argv: list[str]) -> int:
    listen, path = ":9127", "/metrics"
    for arg in argv:
        name, _, value = arg.partition("=")
        if name == "--web.listen-address":
            listen = value
        elif name == "--web.telemetry-path":
            path = value
        else:
            print(f"pgbouncer_exporter: error: unknown flag {name}", file=sys.stderr)
            return 2
    if path != "/metrics":
        print(f"pgbouncer_exporter substitute serves /metrics only, not {path}", file=sys.stderr)
        return 2
    host, _, port = listen.rpartition(":")
    return main([host or "0.0.0.0", port])  # noqa: S104 - the Go exporter's ":PORT" is every interface


if __name__ == "__main__":
    raise SystemExit(run(sys.argv[1:]))

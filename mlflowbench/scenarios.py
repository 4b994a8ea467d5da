"""The work the benchmark sends, as data: scenarios × identities × servers.

Each scenario is one kind of request; each cell of the table runs it as one identity against one
server. The identities are the issue's columns: a training job's user (non-admin, EDIT on the
experiment: MLflow's permission checks run), the admin (whom the checks skip) and no auth (a
platform started without basic-auth). The servers are the shipped platform and stock MLflow
(``localplatform.options.ServerVariant``).

Bodies are encoded here, before the clock starts (:mod:`.load`): every ``log_batch`` request
carries new steps, as a training loop's would, so no request is MLflow's silent no-op of
re-logging an identical metric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode

from localplatform.options import SERVER_VARIANTS, AuthMode, ServerVariant

Unit = Literal["metrics", "requests"]
Client = Literal["rest", "mlflow"]
"""``rest``: pre-encoded REST bodies; ``mlflow``: ``MlflowClient`` calls (the end-to-end row)."""
IdentityName = Literal["job user", "admin", "no auth"]
IDENTITIES: tuple[IdentityName, ...] = ("job user", "admin", "no auth")

API = "/api/2.0/mlflow"
TIMESTAMP_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Scenario:
    slug: str
    """The name on the command line (``--scenario``)."""
    name: str
    method: Literal["GET", "POST"]
    path: str
    unit: Unit
    """What the headline figure counts: metrics (CPU per 1,000 metrics) or requests."""
    keys: int = 0
    """Distinct metric keys per request (0: the request logs no metric)."""
    steps: int = 0
    """Steps per key per request."""
    client: Client = "rest"
    per_process_rate: float = 150.0
    """Upper bound on one load process's requests per second: how many bodies to encode ahead
    (a process that runs out stops early, which shows as a shorter measured time)."""

    @property
    def metrics_per_request(self) -> int:
        return self.keys * self.steps

    @property
    def small(self) -> bool:
        """One of the "small request" rows (per 1,000 requests), not a batch (per 1,000 metrics)."""
        return self.unit == "requests"


LOG_BATCH_10X100 = Scenario(
    "batch-10x100",
    "log_batch 1,000 metrics, 10 keys × 100 steps",
    "POST",
    f"{API}/runs/log-batch",
    "metrics",
    keys=10,
    steps=100,
    per_process_rate=15,
)
LOG_BATCH_1000_KEYS = Scenario(
    "batch-1000-keys",
    "log_batch 1,000 metrics, 1,000 distinct keys",
    "POST",
    f"{API}/runs/log-batch",
    "metrics",
    keys=1000,
    steps=1,
    per_process_rate=12,
)
LOG_METRIC = Scenario(
    "log-metric", "one metric per request", "POST", f"{API}/runs/log-metric", "requests", keys=1, steps=1
)
SET_TAG = Scenario("set-tag", "set_tag", "POST", f"{API}/runs/set-tag", "requests")
GET_RUN = Scenario("get-run", "get_run", "GET", f"{API}/runs/get", "requests")
CLIENT_LOG_BATCH = Scenario(
    "client",
    "end-to-end MLflow client, log_batch 10 keys × 100 steps",
    "POST",
    f"{API}/runs/log-batch",
    "metrics",
    keys=10,
    steps=100,
    client="mlflow",
    per_process_rate=15,
)

SCENARIOS: tuple[Scenario, ...] = (
    LOG_BATCH_10X100,
    LOG_BATCH_1000_KEYS,
    LOG_METRIC,
    SET_TAG,
    GET_RUN,
    CLIENT_LOG_BATCH,
)
"""The table, in report order. The first two and :data:`LOG_METRIC` are the issue's rows; the
headline per-request figure (and ``rendering.capacity``'s) is :data:`LOG_METRIC` as a job user."""


@dataclass(frozen=True)
class Variant:
    """One platform the run starts: a server and whether basic-auth is on."""

    server: ServerVariant
    auth: AuthMode

    @property
    def name(self) -> str:
        return f"{self.server}{'' if self.auth != 'off' else ', no auth'}"


def variant_for(server: ServerVariant, identity: IdentityName) -> Variant:
    """The platform a cell runs on: the no-auth column needs a platform without basic-auth."""
    return Variant(server, "off" if identity == "no auth" else "ours")


VARIANTS: tuple[Variant, ...] = tuple(variant_for(s, i) for s in SERVER_VARIANTS for i in ("job user", "no auth"))


@dataclass(frozen=True)
class Cell:
    scenario: Scenario
    identity: IdentityName
    server: ServerVariant

    @property
    def variant(self) -> Variant:
        return variant_for(self.server, self.identity)

    @property
    def key(self) -> str:
        return f"{self.scenario.name} | {self.identity} | {self.server}"


def cells(
    scenarios: tuple[Scenario, ...] = SCENARIOS,
    identities: tuple[IdentityName, ...] = IDENTITIES,
    servers: tuple[ServerVariant, ...] = SERVER_VARIANTS,
) -> list[Cell]:
    return [Cell(s, i, v) for s in scenarios for i in identities for v in servers]


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    """Path with query string."""
    body: bytes


def metric_rows(scenario: Scenario, first_step: int) -> list[tuple[str, float, int, int]]:
    """(key, value, timestamp, step) of one request's metrics, steps from ``first_step``."""
    return [
        (f"metric_{k:04d}", (k + s) * 0.001, TIMESTAMP_MS + s, s)
        for s in range(first_step, first_step + scenario.steps)
        for k in range(scenario.keys)
    ]


def encode(scenario: Scenario, run_id: str, first: int, count: int) -> list[Request]:
    """``count`` requests of ``scenario`` for ``run_id``; request ``n`` is the ``first + n``-th
    of this run, so callers that give each process and round its own range never repeat one."""
    out = []
    for n in range(first, first + count):
        if scenario.path.endswith("/runs/get"):
            out.append(Request("GET", f"{scenario.path}?{urlencode({'run_id': run_id})}", b""))
            continue
        if scenario.path.endswith("/runs/set-tag"):
            body: dict[str, object] = {"run_id": run_id, "key": f"tag_{n % 20:02d}", "value": str(n)}
        elif scenario.path.endswith("/runs/log-metric"):
            ((key, value, timestamp, step),) = metric_rows(scenario, n)
            body = {"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, "step": step}
        else:
            rows = metric_rows(scenario, n * scenario.steps)
            body = {
                "run_id": run_id,
                "metrics": [{"key": k, "value": v, "timestamp": t, "step": s} for k, v, t, s in rows],
            }
        out.append(Request(scenario.method, scenario.path, json.dumps(body).encode()))
    return out

"""The supervisor's plan: every process of the platform as data (argv, env, user, checks).

``LocalPlatform`` writes it (``run/plan.json``, mode 0600: environments hold secrets) and the
supervisor executes it, so the supervisor stays a small generic process manager with no
knowledge of PostgreSQL or MLflow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

CheckKind = Literal["tcp", "http", "command"]
StepKind = Literal["service", "job"]


@dataclass(frozen=True)
class Check:
    """Readiness/liveness probe, like a Kubernetes probe."""

    kind: CheckKind
    host: str = "127.0.0.1"
    port: int = 0
    url: str = ""
    ca_file: str = ""
    argv: tuple[str, ...] = ()
    timeout_s: float = 2.0


@dataclass(frozen=True)
class Step:
    name: str
    kind: StepKind
    argv: tuple[str, ...]
    log: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    user: str | None = None
    """OS account to run as (None: the supervisor's own)."""
    after: tuple[str, ...] = ()
    """Steps that must be ready (services) or finished (jobs) first."""
    port: int | None = None
    ready: Check | None = None
    live: Check | None = None
    stop_signal: str = "SIGTERM"
    ready_timeout_s: float = 120.0
    rerun_after_restart: tuple[str, ...] = ()
    """Jobs to run again when this service comes back (e.g. reapply the bucket settings and KMS key)."""


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


def plan_to_json(plan: Plan) -> str:
    return json.dumps(asdict(plan), indent=2)


def _check(data: dict[str, Any] | None) -> Check | None:
    if data is None:
        return None
    return Check(**{**data, "argv": tuple(data.get("argv", ()))})


def plan_from_json(text: str) -> Plan:
    raw = json.loads(text)
    steps = []
    for item in raw["steps"]:
        steps.append(
            Step(
                **{
                    **item,
                    "argv": tuple(item["argv"]),
                    "after": tuple(item["after"]),
                    "rerun_after_restart": tuple(item["rerun_after_restart"]),
                    "ready": _check(item["ready"]),
                    "live": _check(item["live"]),
                }
            )
        )
    return Plan(tuple(steps))


def load_plan(path: Path) -> Plan:
    return plan_from_json(path.read_text())

"""The validation gate (``scripts/validate.py``): a general form of the guide's
``--min-ndcg 0.45 --max-latency-p99-ms 50`` flags.

It reads the metrics of the run behind a model version and checks each ``--require``. On
success: ``validation_status=passed`` and the ``candidate`` alias (unless the version is already
challenger or champion). On failure: ``validation_status=failed`` plus ``validation_reasons``,
the version loses ``candidate`` if it held it, and the exit status is 1. A metric the run never
logged is a failure with its own reason, never a pass by omission. ``--dry-run`` evaluates and
reports (with the same exit status) without writing anything.

``--min-data-coverage`` adds the guide's data gate: the share of the champion's training data
(rows and columns of the ``mlflow.log_input`` training datasets) this version was trained on;
see :mod:`mlflowops.coverage` for what exactly is measured.
"""

from __future__ import annotations

import argparse
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import cli, coverage, registry
from .timeutil import utc_now_iso

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

_REQUIREMENT = re.compile(r"^\s*(?P<key>[^<>=!]+?)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>\S+)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
MAX_TAG_VALUE = 5000  # MLflow's MAX_TAG_VAL_LENGTH for model-version tags


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.key}{self.op}{self.threshold:g}"

    def check(self, metrics: Mapping[str, float], run_id: str) -> str | None:
        """None when met, else the reason."""
        if self.key not in metrics:
            return f"{self.key}: not logged by run {run_id}"
        value = float(metrics[self.key])
        if math.isnan(value):
            return f"{self.key}: is NaN"
        if not _OPERATORS[self.op](value, self.threshold):
            return f"{self.key}={value:g} does not satisfy {self}"
        return None


def parse_requirement(text: str) -> Requirement:
    match = _REQUIREMENT.match(text)
    if match is None:
        raise cli.ConfigError(f"--require {text!r}: expected <metric><op><number> with op one of >= <= > < ==")
    try:
        threshold = float(match["value"])
    except ValueError:
        raise cli.ConfigError(f"--require {text!r}: {match['value']!r} is not a number") from None
    if math.isnan(threshold):
        raise cli.ConfigError(f"--require {text!r}: the threshold cannot be NaN")
    return Requirement(match["key"], match["op"], threshold)


def evaluate(requirements: Sequence[Requirement], metrics: Mapping[str, float], run_id: str) -> list[str]:
    return [reason for r in requirements if (reason := r.check(metrics, run_id)) is not None]


def build_parser() -> cli.Parser:
    parser = cli.new_parser(
        "validate.py",
        "Check a model version's run metrics against thresholds; tag the result and set the candidate alias.",
        epilog="example: validate.py --model-uri models:/product-ranking-xgb/7 "
        "--require 'test_ndcg>=0.45' --require 'inference_latency_p99_ms<=50'\n"
        "exit status: 0 passed, 1 failed validation (or refused), 2 usage, 3 server error",
    )
    parser.add_argument("--model-uri", required=True, help="models:/<name>/<version> (or models:/<name>@<alias>)")
    parser.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="METRIC<OP>VALUE",
        help="a threshold, e.g. 'test_ndcg>=0.45'; repeat for more (ops: >= <= > < ==)",
    )
    parser.add_argument(
        "--min-data-coverage",
        type=coverage_threshold,
        default=None,
        metavar="FRACTION",
        help="0..1: share of the champion's training rows and columns (from the runs' mlflow.log_input "
        "training datasets) this version must have been trained on, e.g. 0.95",
    )
    cli.add_dry_run(parser)
    cli.add_tracking_uri(parser)
    return parser


def coverage_threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise cli.ConfigError(f"--min-data-coverage {text!r}: expected a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise cli.ConfigError(f"--min-data-coverage {text!r}: expected a number between 0 and 1")
    return value


def run(args: argparse.Namespace) -> cli.Report:
    requirements = [parse_requirement(text) for text in args.require]
    if not requirements and args.min_data_coverage is None:
        raise cli.ConfigError("give at least one --require: validation without thresholds proves nothing")
    ref = registry.parse_model_uri(args.model_uri)
    client = registry.make_client(cli.tracking_uri(args.tracking_uri))
    mv = registry.resolve(client, ref)
    name, version = ref.name, str(mv.version)
    run_id = registry.backing_run_id(client, mv)
    if run_id is None:
        metrics: dict[str, float] = {}
        reasons = [f"version {version} has no source run: there are no metrics to validate"]
    else:
        metrics = dict(client.get_run(run_id).data.metrics)
        reasons = evaluate(requirements, metrics, run_id)
    aliases = registry.get_aliases(client, name)
    gate = None
    if args.min_data_coverage is not None:
        gate = check_coverage(client, name, run_id, aliases.get("champion"), args.min_data_coverage)
        if gate.reason is not None:
            reasons.append(gate.reason)
    passed = not reasons
    data = {
        "model": name,
        "version": version,
        "run_id": run_id,
        "passed": passed,
        "requirements": [str(r) for r in requirements],
        "metrics": {r.key: metrics.get(r.key) for r in requirements},
        "reasons": reasons,
        "dry_run": args.dry_run,
    }
    if gate is not None:
        data["data_coverage"] = {"value": gate.value, "minimum": args.min_data_coverage, "detail": gate.detail}
    now = utc_now_iso()
    tags = {"validation_status": "passed" if passed else "failed", "validated_at": now}
    stated = [str(r) for r in requirements]
    if gate is not None:
        stated.append(f"data_coverage>={args.min_data_coverage:g}")
        if gate.value is not None:
            tags["data_coverage"] = f"{gate.value:.4g}"
    tags["validation_requirements"] = "; ".join(stated)[:MAX_TAG_VALUE]
    further = [a for a in ("challenger", "champion") if aliases.get(a) == version]
    set_candidate = passed and not further and aliases.get("candidate") != version
    drop_candidate = not passed and aliases.get("candidate") == version
    actions = [f"tag v{version} {k}={v}" for k, v in tags.items()]
    if not passed:
        actions.append(f"tag v{version} validation_reasons")
    if set_candidate:
        actions.append(f"set alias candidate -> v{version}")
    if drop_candidate:
        actions.append(f"remove alias candidate from v{version}")
    data["actions"] = actions
    if not args.dry_run:
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        if passed:
            if "validation_reasons" in mv.tags:
                client.delete_model_version_tag(name, version, "validation_reasons")
            if set_candidate:
                client.set_registered_model_alias(name, "candidate", version)
                client.set_model_version_tag(name, version, "promoted_to_candidate_at", now)
        else:
            client.set_model_version_tag(name, version, "validation_reasons", "; ".join(reasons)[:MAX_TAG_VALUE])
            if drop_candidate:
                client.delete_registered_model_alias(name, "candidate")
    prefix = "would " if args.dry_run else ""
    lines = [f"{'PASS' if r.check(metrics, run_id or '-') is None else 'FAIL'} {r}" for r in requirements]
    if gate is not None:
        lines.append(f"{'PASS' if gate.reason is None else 'FAIL'} {gate.detail}")
    lines += [f"{prefix}{a}" for a in actions]
    if passed:
        suffix = f" (already {further[0]})" if further else ""
        lines.append(f"{name} v{version} passed validation{suffix}")
        return cli.Report(lines, data)
    return cli.Report(lines, data, cli.EXIT_REFUSED, f"{name} v{version} failed validation: " + "; ".join(reasons))


def check_coverage(
    client: MlflowClient, name: str, run_id: str | None, champion: str | None, minimum: float
) -> coverage.Coverage:
    """The coverage gate against the current champion's run (the version itself when it is the champion)."""
    champion_run = None
    if champion is not None:
        champion_run = registry.backing_run_id(client, registry.get_version(client, name, champion))
    return coverage.evaluate(client, run_id, champion_run, champion, minimum)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_tool(build_parser(), run, argv)

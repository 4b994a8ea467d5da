"""The shadow gate (``scripts/verify_shadow.py``): the guide's ``verify_shadow_metrics.py
--min-hours-in-shadow 24 --max-metric-degradation 0.02``, between ``challenger`` and ``champion``.

**Where shadow metrics live (the convention).** The serving side (the champion deployment and
the shadow deployment of the challenger, each replica) logs what it measures on live traffic to
one MLflow experiment per model, ``shadow/<model>`` unless the team names it (with team
ownership on, a non-admin may only create experiments under its team, so teams pass e.g.
``--shadow-experiment recommendation-team/product-ranking/shadow``). Each replica opens a run
with :func:`start_shadow_run`, tagged

* ``shadow_model`` = the registered model name,
* ``shadow_version`` = the model version it serves,
* ``shadow_alias`` = ``champion`` or ``challenger``: the role it serves in,

and logs metrics into it with ``BatchingMetricLogger`` (one request per batch, real timestamps;
the step is free, e.g. the reporting window number). Tags are plain identifiers so the searches
need no quoting.

**What is compared.** The challenger's shadow started at the earliest timestamp of any of its
compared metric points. For each ``--metric NAME:higher|lower``, the mean of the challenger's
points is compared with the mean of the champion's points over the same period (from that
start on: the same traffic). Degradation is relative to the champion: ``(champion - challenger)
/ |champion|`` when higher is better, the opposite sign when lower is better (the absolute
difference when the champion's mean is 0); above ``--max-metric-degradation`` it fails.

**Verdicts**, written as tags on the version (``--dry-run`` writes nothing):
``shadow_verification`` = ``passed`` | ``failed`` (a metric degraded too much) |
``insufficient`` (too little time in shadow, or a metric missing on either side: wait or fix the
logging), with ``shadow_verified_at``, ``shadow_hours``, ``shadow_comparison`` and, unless
passed, ``shadow_verification_reasons``. Exit 0 only for ``passed``. With no champion yet there
is nothing to degrade from: the time and presence checks still apply and the verdict says that
nothing was compared. A version that is not the current challenger is refused without tagging.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import cli, registry
from .timeutil import utc_now_iso

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

MODEL_TAG, VERSION_TAG, ALIAS_TAG = "shadow_model", "shadow_version", "shadow_alias"
ROLES = ("champion", "challenger")
DIRECTIONS = ("higher", "lower")
MAX_TAG_VALUE = 5000


def default_experiment(model: str) -> str:
    return f"shadow/{model}"


def start_shadow_run(client: MlflowClient, experiment: str, model: str, version: str, alias: str) -> str:
    """For the serving side: a run in the model's shadow experiment (created if missing), tagged
    by the convention above. Log into it with ``BatchingMetricLogger(run_id)``."""
    if alias not in ROLES:
        raise ValueError(f"alias must be one of {', '.join(ROLES)}, got {alias!r}")
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
    tags = {MODEL_TAG: model, VERSION_TAG: str(version), ALIAS_TAG: alias}
    return str(client.create_run(experiment_id, tags=tags, run_name=f"{alias}-v{version}").info.run_id)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    direction: str

    def __str__(self) -> str:
        return f"{self.name}:{self.direction}"


def parse_metric(text: str) -> MetricSpec:
    name, _, direction = text.rpartition(":")
    if not name.strip() or direction not in DIRECTIONS:
        raise cli.ConfigError(f"--metric {text!r}: expected NAME:higher or NAME:lower (which direction is better)")
    return MetricSpec(name.strip(), direction)


def degradation(spec: MetricSpec, champion: float, challenger: float) -> float:
    """How much worse the challenger is, relative to the champion (negative: better)."""
    worse_by = champion - challenger if spec.direction == "higher" else challenger - champion
    return worse_by / abs(champion) if champion != 0 else worse_by


Points = dict[str, list[tuple[int, float]]]
"""metric -> (timestamp ms, value) of every point, over all runs of one version in one role."""


def shadow_points(
    client: MlflowClient, experiment_id: str, model: str, version: str, alias: str, keys: Sequence[str]
) -> Points:
    query = f"tags.{MODEL_TAG} = '{model}' AND tags.{VERSION_TAG} = '{version}' AND tags.{ALIAS_TAG} = '{alias}'"
    runs: list[Any] = []
    token: str | None = None
    while True:  # every page: a long shadow period has many replica runs
        page: Any = client.search_runs([experiment_id], filter_string=query, max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            break
    points: Points = {key: [] for key in keys}
    for run in runs:
        for key in keys:
            if key in run.data.metrics:
                history = client.get_metric_history(run.info.run_id, key)
                points[key] += [(m.timestamp, m.value) for m in history if not math.isnan(m.value)]
    return points


@dataclass(frozen=True)
class Verdict:
    status: str
    reasons: list[str]
    hours: float
    comparison: dict[str, dict[str, float | None]]


def judge(
    specs: Sequence[MetricSpec],
    challenger: Points,
    champion: Points | None,
    champion_version: str | None,
    now_ms: int,
    min_hours: float,
    max_degradation: float,
) -> Verdict:
    """The verdict from the points alone (pure: the tests feed it edge cases directly)."""
    stamps = [t for key in challenger for t, _ in challenger[key]]
    start = min(stamps) if stamps else now_ms
    hours = max(0.0, (now_ms - start) / 3_600_000)
    insufficient, failed = [], []
    if not stamps:
        insufficient.append("the challenger has no shadow metrics yet")
    elif hours < min_hours:
        insufficient.append(f"only {hours:.1f} h in shadow; --min-hours-in-shadow is {min_hours:g}")
    comparison: dict[str, dict[str, float | None]] = {}
    for spec in specs:
        mine = [v for _, v in challenger[spec.name]]
        row: dict[str, float | None] = {"challenger": sum(mine) / len(mine) if mine else None}
        comparison[spec.name] = row
        if not mine:
            insufficient.append(f"{spec.name}: the challenger logged no shadow values")
        if champion is None:
            continue
        theirs = [v for t, v in champion[spec.name] if t >= start]
        row["champion"] = sum(theirs) / len(theirs) if theirs else None
        if not theirs:
            insufficient.append(f"{spec.name}: champion v{champion_version} logged no shadow values in the window")
        if not mine or not theirs:
            continue
        champion_mean, challenger_mean = float(row["champion"] or 0.0), float(row["challenger"] or 0.0)
        drop = degradation(spec, champion_mean, challenger_mean)
        row["degradation"] = drop
        if drop > max_degradation:
            failed.append(
                f"{spec.name} ({spec.direction} is better): challenger {challenger_mean:.4g} vs champion "
                f"{champion_mean:.4g}, {drop:.2%} worse; --max-metric-degradation is {max_degradation:g}"
            )
    status = "failed" if failed else "insufficient" if insufficient else "passed"
    return Verdict(status, failed + insufficient, hours, comparison)


def non_negative(flag: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value >= 0 or math.isinf(value):
            raise cli.ConfigError(f"{flag} {text!r}: expected a number >= 0")
        return value

    return parse


def build_parser() -> cli.Parser:
    parser = cli.new_parser(
        "verify_shadow.py",
        "Compare the challenger's shadow metrics with the champion's; tag the version with the verdict.",
        epilog="example: verify_shadow.py --model-name product-ranking-xgb --version 7 --min-hours-in-shadow 24 "
        "--max-metric-degradation 0.02 --metric ndcg:higher --metric latency_p99_ms:lower\n"
        "exit status: 0 passed, 1 failed / insufficient shadow data (or refused), 2 usage, 3 server error",
    )
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--version", required=True, help="the version to verify: the current challenger")
    parser.add_argument("--min-hours-in-shadow", type=non_negative("--min-hours-in-shadow"), required=True)
    parser.add_argument(
        "--max-metric-degradation",
        type=non_negative("--max-metric-degradation"),
        required=True,
        help="largest allowed relative degradation per metric, e.g. 0.02 for 2%%",
    )
    parser.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="NAME:higher|lower",
        help="a shadow metric to compare and which direction is better; repeat for more",
    )
    parser.add_argument(
        "--shadow-experiment", default=None, help="experiment of the shadow runs (default shadow/<model>)"
    )
    cli.add_dry_run(parser)
    cli.add_tracking_uri(parser)
    return parser


def run(args: argparse.Namespace) -> cli.Report:
    specs = [parse_metric(text) for text in args.metric]
    if not specs:
        raise cli.ConfigError(
            "give at least one --metric NAME:higher|lower: a shadow gate that compares nothing proves nothing"
        )
    name, version = args.model_name, str(args.version)
    if not version.isdigit() or int(version) < 1:
        raise cli.ConfigError(f"--version must be a version number (1, 2, ...), got {version!r}")
    experiment_name = args.shadow_experiment or default_experiment(name)
    client = registry.make_client(cli.tracking_uri(args.tracking_uri))
    aliases = registry.get_aliases(client, name)
    registry.get_version(client, name, version)
    if aliases.get("challenger") != version:
        current = aliases.get("challenger")
        raise cli.Refused(
            f"version {version} is not the current challenger "
            + (f"(the challenger is version {current})" if current else "(there is no challenger)")
        )
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise cli.Refused(f"no shadow experiment {experiment_name!r}: the shadow deployment has logged nothing yet")
    keys = [s.name for s in specs]
    challenger = shadow_points(client, experiment.experiment_id, name, version, "challenger", keys)
    champion_version = aliases.get("champion")
    champion = None
    if champion_version is not None:
        champion = shadow_points(client, experiment.experiment_id, name, champion_version, "champion", keys)
    verdict = judge(
        specs,
        challenger,
        champion,
        champion_version,
        int(time.time() * 1000),
        args.min_hours_in_shadow,
        args.max_metric_degradation,
    )
    return report(client, args, specs, verdict, champion_version, experiment_name)


def report(
    client: MlflowClient,
    args: argparse.Namespace,
    specs: Sequence[MetricSpec],
    verdict: Verdict,
    champion_version: str | None,
    experiment: str,
) -> cli.Report:
    name, version = args.model_name, str(args.version)
    summary = "; ".join(_describe(spec, verdict.comparison[spec.name]) for spec in specs)
    if champion_version is None:
        summary = f"no champion yet: nothing compared; {summary}"
    tags = {
        "shadow_verification": verdict.status,
        "shadow_verified_at": utc_now_iso(),
        "shadow_hours": f"{verdict.hours:.2f}",
        "shadow_comparison": summary[:MAX_TAG_VALUE],
    }
    if verdict.reasons:
        tags["shadow_verification_reasons"] = "; ".join(verdict.reasons)[:MAX_TAG_VALUE]
    if not args.dry_run:
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
        if not verdict.reasons and "shadow_verification_reasons" in registry.get_version(client, name, version).tags:
            client.delete_model_version_tag(name, version, "shadow_verification_reasons")
    data: dict[str, Any] = {
        "model": name,
        "version": version,
        "champion_version": champion_version,
        "shadow_experiment": experiment,
        "verdict": verdict.status,
        "passed": verdict.status == "passed",
        "hours_in_shadow": round(verdict.hours, 3),
        "metrics": {str(s): verdict.comparison[s.name] for s in specs},
        "reasons": verdict.reasons,
        "dry_run": args.dry_run,
        "tags": tags,
    }
    prefix = "would " if args.dry_run else ""
    lines = [f"{verdict.hours:.1f} h in shadow", summary]
    lines += [f"{prefix}tag v{version} {k}={v}" for k, v in tags.items()]
    if verdict.status == "passed":
        lines.append(f"{name} v{version} passed shadow verification")
        return cli.Report(lines, data)
    error = f"{name} v{version} shadow verification {verdict.status}: " + "; ".join(verdict.reasons)
    return cli.Report(lines, data, cli.EXIT_REFUSED, error)


def _describe(spec: MetricSpec, row: Mapping[str, float | None]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.4g}"

    text = f"{spec.name} challenger {fmt(row.get('challenger'))}"
    if "champion" in row:
        text += f" vs champion {fmt(row.get('champion'))}"
    drop = row.get("degradation")
    if drop is not None:
        text += f" ({drop:+.2%} worse)" if drop > 0 else f" ({-drop:.2%} better)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_tool(build_parser(), run, argv)

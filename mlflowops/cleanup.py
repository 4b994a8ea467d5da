"""Safe run cleanup (``scripts/cleanup_runs.py``), fixing the guide's ``cleanup_old_runs``:

* it reads *every* page of runs (``max_results`` + ``page_token``), not the first 1,000, and
  decides only after the last page (deleting while paging would shift offset-based pages);
* the top N by the metric are chosen among all active runs, client-side, runs without the metric
  (or with NaN) never count as "top";
* every run behind a registered model version — hence behind every alias — is protected, read
  from all pages of ``search_model_versions`` (``mlflow gc`` itself checks nothing);
* a ``--metric`` that no run of the experiment has logged is refused (exit 1, with the closest
  logged metric names): a typo would otherwise leave nothing protected as "top N", and
  ``--apply`` would delete the very runs the flag exists to keep; runs without the metric are
  counted in a warning;
* runs still running (no end time) are never eligible; ages are compared in UTC;
* it is a dry run unless ``--apply``; ``--gc`` then purges exactly the runs it deleted with
  ``mlflow gc --run-ids``.

Since MLflow 3.10, ``SearchModelVersions`` hides versions the caller cannot read, so a
non-admin caller could miss a protected run; ``--apply`` therefore requires an admin when the
server runs basic-auth.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from . import cli, registry
from .authapi import AuthApi
from .timeutil import from_millis, iso, to_millis, utc_now

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

FINISHED_STATES = ("FINISHED", "FAILED", "KILLED")
GC_CHUNK = 100


@dataclass
class Scan:
    runs: list[Run] = field(default_factory=list)
    pages: int = 0


@dataclass(frozen=True)
class Decision:
    run_id: str
    ended: str | None
    metric: float | None
    reason: str
    """Why it is kept, or ``eligible``."""


def scan_runs(client: MlflowClient, experiment_id: str, page_size: int) -> Scan:
    from mlflow.entities import ViewType

    scan = Scan()
    token: str | None = None
    while True:
        page: Any = client.search_runs(
            experiment_ids=[experiment_id],
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=page_size,
            order_by=["attributes.start_time ASC"],
            page_token=token,
        )
        scan.pages += 1
        scan.runs.extend(page)
        token = page.token
        if not token:
            return scan


def registry_runs(client: MlflowClient, page_size: int) -> dict[str, list[str]]:
    """run id -> the model versions (``name/version`` plus ``@alias``) it backs."""
    backing: dict[str, list[str]] = {}
    alias_cache: dict[str, dict[str, str]] = {}
    for version in registry.iter_model_versions(client, page_size):
        run_id = registry.backing_run_id(client, version)
        if run_id is None:
            continue
        if version.name not in alias_cache:
            alias_cache[version.name] = registry.get_aliases(client, version.name)
        aliases = [a for a, v in alias_cache[version.name].items() if v == str(version.version)]
        label = f"{version.name}/{version.version}" + "".join(f"@{a}" for a in sorted(aliases))
        backing.setdefault(run_id, []).append(label)
    return backing


def metric_of(run: Run, metric: str | None) -> float | None:
    if metric is None or metric not in run.data.metrics:
        return None
    value = float(run.data.metrics[metric])
    return None if math.isnan(value) else value


def top_runs(runs: Sequence[Run], metric: str | None, n: int, lower_is_better: bool) -> list[str]:
    scored = [(value, run) for run in runs if (value := metric_of(run, metric)) is not None]
    # Best first; ties go to the newer run, then the run id, so the choice is deterministic.
    scored.sort(
        key=lambda pair: (pair[0] if lower_is_better else -pair[0], -pair[1].info.start_time, pair[1].info.run_id)
    )
    return [run.info.run_id for _, run in scored[:n]]


def check_metric(runs: Sequence[Run], metric: str | None, keep_top_n: int) -> list[str]:
    """Refuse a ranking metric that no scanned run has (a typo); warn about runs without it.

    Returns the warnings. With no runs at all there is nothing to delete, so nothing to refuse.
    """
    if metric is None or keep_top_n == 0 or not runs:
        return []
    lacking = sum(1 for run in runs if metric_of(run, metric) is None)
    if lacking == len(runs):
        logged = sorted({key for run in runs for key in run.data.metrics})
        close = difflib.get_close_matches(metric, logged, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        shown = ", ".join(logged[:10]) + (", …" if len(logged) > 10 else "") if logged else "none"
        raise cli.Refused(
            f"no run of the experiment has the metric {metric!r} ({len(runs)} run(s) scanned), so --keep-top-n "
            f"{keep_top_n} would protect nothing: {hint}check --metric (logged metrics: {shown})"
        )
    if lacking:
        return [
            f"{lacking} of {len(runs)} run(s) have not logged {metric!r} (or logged NaN): they are never "
            f"among the top {keep_top_n}"
        ]
    return []


def decide(
    runs: Sequence[Run],
    *,
    metric: str | None,
    keep_top_n: int,
    lower_is_better: bool,
    cutoff_ms: int,
    backing: dict[str, list[str]],
) -> list[Decision]:
    top = set(top_runs(runs, metric, keep_top_n, lower_is_better))
    decisions = []
    for run in runs:
        info = run.info
        ended = iso(from_millis(info.end_time)) if info.end_time else None
        value = metric_of(run, metric)
        if info.run_id in backing:
            reason = "backs " + ", ".join(backing[info.run_id])
        elif info.run_id in top:
            reason = f"top {keep_top_n} by {metric}"
        elif info.end_time is None or info.status not in FINISHED_STATES:
            reason = f"not finished ({info.status})"
        elif info.end_time >= cutoff_ms:
            reason = "newer than the cutoff"
        else:
            reason = "eligible"
        decisions.append(Decision(info.run_id, ended, value, reason))
    return decisions


def redact(uri: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", uri)


def run_gc(run_ids: Sequence[str], backend_store_uri: str) -> None:
    """``mlflow gc --run-ids`` in chunks, with this interpreter's MLflow and this environment
    (MLFLOW_TRACKING_URI resolves proxied artifact locations; S3 settings reach direct ones)."""
    for start in range(0, len(run_ids), GC_CHUNK):
        chunk = run_ids[start : start + GC_CHUNK]
        command = [sys.executable, "-m", "mlflow", "gc", "--backend-store-uri", backend_store_uri]
        command += ["--run-ids", ",".join(chunk)]
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=3600, env=os.environ)
        if result.returncode != 0:
            tail = [ln for ln in (result.stderr or result.stdout).splitlines() if ln.strip()][-1:]
            raise cli.OpsError(
                f"mlflow gc failed (exit {result.returncode}) for {len(chunk)} run(s) on {redact(backend_store_uri)}: "
                f"{redact(tail[0]) if tail else 'no output'}; the runs stay soft-deleted"
            )


def require_admin(uri: str) -> None:
    user = AuthApi(uri).current_user()
    if user is not None and not user.get("is_admin"):
        raise cli.Refused(
            f"{user.get('username')!r} is not an admin: the registry hides model versions a user cannot read, "
            "so runs behind them could be deleted; run --apply as an admin"
        )


def build_parser() -> cli.Parser:
    parser = cli.new_parser(
        "cleanup_runs.py",
        "Delete old runs of an experiment, keeping the top N by a metric and every run behind a registered "
        "model version or alias. Dry run unless --apply.",
        epilog="exit status: 0 done, 1 refused, 2 usage, 3 server or gc error",
    )
    parser.add_argument("--experiment", required=True, help="experiment name")
    parser.add_argument("--max-age-days", type=float, default=90.0, help="delete runs that ended before this (90)")
    parser.add_argument("--keep-top-n", type=int, default=10, help="always keep the N best runs by --metric (10)")
    parser.add_argument(
        "--metric",
        default=None,
        help="metric ranking the runs, e.g. val_ndcg; required unless --keep-top-n 0, and refused when no run "
        "of the experiment has logged it",
    )
    parser.add_argument("--lower-is-better", action="store_true", help="rank ascending (losses, latencies)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="really delete (soft-delete) the eligible runs")
    mode.add_argument("--dry-run", action="store_true", help="only report (the default)")
    parser.add_argument("--page-size", type=int, default=500, help="runs / model versions per search page (500)")
    parser.add_argument(
        "--gc", action="store_true", help="after --apply, purge the deleted runs and their artifacts with `mlflow gc`"
    )
    parser.add_argument(
        "--backend-store-uri",
        default=None,
        help="database URL for --gc (default: $MLFLOW_BACKEND_STORE_URI); prefer a URL without a password "
        "plus PGPASSWORD/PGPASSFILE",
    )
    cli.add_tracking_uri(parser)
    return parser


def _validate(args: argparse.Namespace) -> str | None:
    if args.max_age_days < 0 or args.keep_top_n < 0:
        raise cli.ConfigError("--max-age-days and --keep-top-n must not be negative")
    if args.page_size < 1 or args.page_size > 50000:
        raise cli.ConfigError("--page-size must be between 1 and 50000")
    if args.keep_top_n > 0 and not args.metric:
        raise cli.ConfigError(
            f"--metric is required: the top {args.keep_top_n} runs (--keep-top-n) are ranked by it; "
            "pass --keep-top-n 0 to protect no top runs"
        )
    backend = args.backend_store_uri or os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if args.gc and not backend:
        raise cli.ConfigError("--gc needs --backend-store-uri or MLFLOW_BACKEND_STORE_URI (the tracking database)")
    return backend


def run(args: argparse.Namespace) -> cli.Report:
    backend = _validate(args)
    uri = cli.tracking_uri(args.tracking_uri)
    client = registry.make_client(uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None or experiment.lifecycle_stage != "active":
        raise cli.Refused(f"experiment {args.experiment!r} does not exist (or is deleted)")
    now = utc_now()
    cutoff = now - timedelta(days=args.max_age_days)
    scan = scan_runs(client, experiment.experiment_id, args.page_size)
    warnings = check_metric(scan.runs, args.metric, args.keep_top_n)
    backing = registry_runs(client, args.page_size)
    decisions = decide(
        scan.runs,
        metric=args.metric,
        keep_top_n=args.keep_top_n,
        lower_is_better=args.lower_is_better,
        cutoff_ms=to_millis(cutoff),
        backing=backing,
    )
    eligible = [d for d in decisions if d.reason == "eligible"]
    apply = bool(args.apply)
    if apply and eligible:
        require_admin(uri)
    deleted: list[str] = []
    if apply:
        for decision in eligible:
            try:
                client.delete_run(decision.run_id)
            except Exception as error:
                reason, _ = cli.describe(error)
                raise cli.OpsError(
                    f"deleting run {decision.run_id} failed ({reason}) after {len(deleted)} deletion(s)",
                    {"deleted": deleted},
                ) from None
            deleted.append(decision.run_id)
    purged = False
    if apply and args.gc and deleted and backend:
        run_gc(deleted, backend)
        purged = True
    data = {
        "experiment": args.experiment,
        "experiment_id": experiment.experiment_id,
        "dry_run": not apply,
        "cutoff": iso(cutoff),
        "pages": scan.pages,
        "runs_scanned": len(scan.runs),
        "protected": {d.run_id: d.reason for d in decisions if d.reason != "eligible"},
        "eligible": [d.run_id for d in eligible],
        "deleted": deleted,
        "gc": purged,
        "warnings": warnings,
    }
    lines = list(_describe(decisions, args.metric, apply))
    lines += [f"warning: {warning}" for warning in warnings]
    lines.append(
        f"scanned {len(scan.runs)} run(s) in {scan.pages} page(s); cutoff {iso(cutoff)}; "
        f"{len(decisions) - len(eligible)} kept; "
        + (f"deleted {len(deleted)}" if apply else f"would delete {len(eligible)} (dry run; --apply to delete)")
        + ("; purged with mlflow gc" if purged else "")
        + ("; --gc would then purge them" if args.gc and not apply else "")
    )
    return cli.Report(lines, data)


def _describe(decisions: Sequence[Decision], metric: str | None, applied: bool) -> Iterator[str]:
    for d in decisions:
        value = f", {metric}={d.metric:g}" if metric and d.metric is not None else ""
        verb = ("deleted" if applied else "would delete") if d.reason == "eligible" else "keep"
        why = "" if d.reason == "eligible" else f": {d.reason}"
        yield f"{verb} run {d.run_id} (ended {d.ended or '-'}{value}){why}"


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_tool(build_parser(), run, argv)

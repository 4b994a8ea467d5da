"""``python -m mlflowbench`` (``make bench``): the side-by-side run and its report.

Bounded by design: ``rounds × cells × seconds`` of load (the defaults: 3 × 36 × 3 s, about
8 minutes with the platforms' start), loopback only. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform as host
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from localplatform.errors import PlatformError
from localplatform.options import SERVER_VARIANTS

from . import profile, report, runner
from .load import LoadProcesses, load_processes
from .runner import Say
from .scenarios import IDENTITIES, SCENARIOS, Cell, IdentityName, Variant, cells, variant_for

ROOT = Path(__file__).resolve().parent.parent


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlflowbench", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where results.{json,md,png} go")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every cell (default 3)")
    p.add_argument("--seconds", type=float, default=3.0, help="saturated load per cell and round (default 3)")
    p.add_argument("--processes", type=int, default=4, help="separate load processes (default 4)")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers of every platform (default 2)")
    p.add_argument(
        "--scenario",
        action="append",
        default=None,
        metavar="NAME",
        help=f"only these scenarios (repeatable): {', '.join(s.slug for s in SCENARIOS)}",
    )
    p.add_argument(
        "--identity", action="append", default=None, metavar="NAME", help=f"only these: {', '.join(IDENTITIES)}"
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="after the rounds, sample the platform's server with py-spy under the job user's batches and "
        "single metrics (collapsed stacks and a summary in --out)",
    )
    p.add_argument("--quiet", action="store_true")
    return p


def problems(args: argparse.Namespace) -> list[str]:
    out = []
    for name in ("rounds", "processes", "workers"):
        if getattr(args, name) < 1:
            out.append(f"--{name} must be >= 1, got {getattr(args, name)}")
    if not args.seconds > 0:
        out.append(f"--seconds must be > 0, got {args.seconds:g}")
    known = {s.slug for s in SCENARIOS}
    out += [
        f"--scenario {n}: unknown; known: {', '.join(sorted(known))}" for n in args.scenario or [] if n not in known
    ]
    out += [
        f"--identity {n!r}: unknown; known: {', '.join(IDENTITIES)}" for n in args.identity or [] if n not in IDENTITIES
    ]
    return out


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    bad = problems(args)
    if bad:
        for line in bad:
            print(f"error: {line}", file=sys.stderr)
        return 2
    scenarios = tuple(s for s in SCENARIOS if not args.scenario or s.slug in args.scenario)
    identities: tuple[IdentityName, ...] = tuple(i for i in IDENTITIES if not args.identity or i in args.identity)
    table = cells(scenarios, identities)
    variants = tuple(dict.fromkeys(variant_for(server, i) for server in SERVER_VARIANTS for i in identities))
    say = (lambda _: None) if args.quiet else (lambda line: print(line, flush=True))
    work = Path(tempfile.mkdtemp(prefix="mlflowbench-"))
    try:
        with (
            runner.platforms(work, variants, say, {"workers": args.workers}) as running,
            load_processes(args.processes) as load,
        ):
            for platform in running.values():
                runner.prepare(platform, identities, scenarios)
                runner.warm_up(platform)
            say(f"{len(table)} cells × {args.rounds} rounds × {args.seconds:g} s, {args.processes} load processes")
            result = runner.run(running, table, load, args.rounds, args.seconds, say)
            profiles = profile_platform(running, table, load, args, say) if args.profile else {}
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [report.row_from(t) for t in result.tallies]
    text = report.write(rows, {**meta(args, result), "profiles": profiles}, args.out)
    print(text)
    print(f"written to {args.out}/ (results.json, results.md, results.png)")
    return 0


PROFILED = ("batch-10x100", "batch-1000-keys", "log-metric")
PROFILE_FIRST_REQUEST = 10_000_000
"""Far past every round's requests, so the profiled batches still carry new steps."""


def profile_platform(
    running: dict[Variant, runner.Platform], table: list[Cell], load: LoadProcesses, args: argparse.Namespace, say: Say
) -> dict[str, dict[str, object]]:
    """py-spy over the platform's MLflow server while each of :data:`PROFILED` runs as the job user."""
    out: dict[str, dict[str, object]] = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for cell in table:
        if cell.scenario.slug not in PROFILED or cell.identity != "job user" or cell.server != "platform":
            continue
        platform = running[cell.variant]
        pid = platform.instance.component("mlflow").pid
        if pid is None or not profile.py_spy().exists():
            say("profile: no MLflow server pid or no py-spy; skipped")
            return out
        raw = args.out / f"profile-{cell.scenario.slug}.collapsed"
        say(f"profile: {cell.scenario.name}, job user, platform")
        per_process = max(1, math.ceil(cell.scenario.per_process_rate * args.seconds * 2))
        profile.record(
            pid,
            raw,
            lambda cell=cell, platform=platform, n=per_process: runner.measure_cell(
                platform, cell, load, PROFILE_FIRST_REQUEST, n, args.seconds * 2
            ),
        )
        with raw.open() as lines:
            out[cell.scenario.name] = profile.summarise(profile.stacks(lines))
    return out


def meta(args: argparse.Namespace, result: runner.RunResult) -> dict[str, Any]:
    import mlflow

    averages = result.load_averages
    one_minute = [a[0] for a in averages]
    return {
        "when": f"{result.started} – {result.finished}",
        "machine": (
            f"{os.cpu_count()} CPUs {host.machine()}, Python {host.python_version()}, MLflow {mlflow.__version__}"
        ),
        "load_average": f"{min(one_minute):.1f}–{max(one_minute):.1f} (1 min, sampled each round)",
        "load_averages": averages,
        "method": (
            f"{args.rounds} interleaved rounds × {args.seconds:g} s per cell, {args.processes} separate load "
            f"processes with pre-encoded REST bodies over kept-alive HTTPS, {args.workers} workers per platform; "
            "every platform: TLS (nginx), PgBouncer, the shipped pools and auth-cache TTL; stock = "
            "`--app-name basic-auth` with MLflow's own store. Pod CPU = MLflow + PgBouncer + nginx + exporter."
        ),
        "argv": sys.argv[1:],
    }

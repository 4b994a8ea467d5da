"""``python -m localplatform up|down|status``: the thin CLI behind ``make up/down/status``.

Errors a user can fix are printed as one line (no traceback) with exit code 1. Secrets are
never printed: the output points at the env file that holds them. ``make up/down/status`` set
``LOCALPLATFORM_CLI=make``, so the commands printed are the ones the user typed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from .errors import PlatformError
from .options import PORT_NAMES, PlatformOptions
from .platform import LocalPlatform, PlatformInfo
from .status import is_alive

DEFAULT_STATE_DIR = Path(".local")


def _port(text: str) -> tuple[str, int]:
    name, _, value = text.partition("=")
    if name not in PORT_NAMES or not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=PORT with NAME in {', '.join(PORT_NAMES)}")
    return name, int(value)


class UsageError(Exception):
    """A bad command line, reported as one line like every other error."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m localplatform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = _Parser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="where everything lives (.local)")
    up = sub.add_parser("up", parents=[common], help="start (or confirm) the platform")
    up.add_argument(
        "--access-mode",
        choices=["direct", "proxied"],
        default=None,
        help="artifact access: direct (clients use S3) or proxied (the server streams)",
    )
    up.add_argument(
        "--auth",
        choices=["ours", "mlflow-defaults", "off"],
        default="ours",
        help="ours: basic-auth as deployed (auth DB on PostgreSQL, no default permissions, credential cache); "
        "mlflow-defaults: MLflow's shipped auth settings (READ for everyone); off: no authentication "
        "(comparisons only)",
    )
    up.add_argument(
        "--pooler",
        choices=["pgbouncer", "direct"],
        default="pgbouncer",
        help="pgbouncer: the server reaches PostgreSQL through PgBouncer, as in the pod; direct: straight to "
        "PostgreSQL over TLS",
    )
    up.add_argument("--workers", type=int, default=2, help="uvicorn workers of the MLflow server (2 on 2 cores)")
    up.add_argument("--max-connections", type=int, default=None, help="PostgreSQL max_connections")
    up.add_argument("--postgres-memory-mb", type=int, default=1024, help="memory the PostgreSQL tuning assumes")
    up.add_argument("--mlflow-python", type=Path, default=None, help="interpreter of another MLflow install")
    up.add_argument("--mlflow-version", default=None, help="the MLflow version --mlflow-python must have")
    up.add_argument("--pg-bin-dir", type=Path, default=None, help="PostgreSQL bin dir (default: newest found)")
    up.add_argument("--service-user", default=None, help="unprivileged user for PostgreSQL/PgBouncer/nginx")
    up.add_argument(
        "--port",
        type=_port,
        action="append",
        default=[],
        metavar="NAME=PORT",
        help=f"fix a port ({', '.join(PORT_NAMES)}); others are chosen free",
    )
    up.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for readiness")
    sub.add_parser("down", parents=[common], help="stop what up started")
    sub.add_parser("status", parents=[common], help="report each component")
    gc = sub.add_parser(
        "gc", parents=[common], help="mlflow gc: remove runs deleted longer ago than --older-than, with artifacts"
    )
    gc.add_argument("--older-than", required=True, help="an age like 30d, 12h or 1d12h (the CronJob's setting)")
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    options = PlatformOptions(
        state_dir=args.state_dir,
        auth=args.auth,
        pooler=args.pooler,
        workers=args.workers,
        max_connections=args.max_connections,
        postgres_memory_mb=args.postgres_memory_mb,
        mlflow_python=args.mlflow_python,
        mlflow_version=args.mlflow_version,
        pg_bin_dir=args.pg_bin_dir,
        service_user=args.service_user,
        ports=dict(args.port),
        start_timeout_s=args.timeout,
    )
    if args.access_mode:
        options = replace(options, access_mode=args.access_mode)
    platform = LocalPlatform(options, progress=lambda line: print(line, flush=True))
    print(f"starting the local MLflow platform in {platform.state_dir}", flush=True)
    info = platform.start()
    print()
    for line in up_summary(info, args.state_dir):
        print(line)
    return 0


def own_command(verb: str, state_dir: Path) -> str:
    """How the user runs ``verb`` again: the make target if that is how they started, else the module."""
    if os.environ.get("LOCALPLATFORM_CLI") == "make":
        return f"make {verb}" + ("" if state_dir == DEFAULT_STATE_DIR else f" STATE={state_dir}")
    return f"python -m localplatform {verb}" + ("" if state_dir == DEFAULT_STATE_DIR else f" --state-dir {state_dir}")


def up_summary(info: PlatformInfo, state_dir: Path) -> list[str]:
    """What a new user needs next: the client install for the mode, the env file to source,
    the UI and the artifact root (``scripts/check_artifact_store.py`` asks for it)."""
    from rendering.client import client_install_command

    env_script = info.env_script or info.env_file
    lines = [
        f"MLflow is up ({info.startup_seconds:.1f}s): {info.url}",
        f"  artifacts: {info.access_mode} access, root {info.artifact_root} (kept on disk in {state_dir}/s3)",
        f"  TLS by a local CA: {info.ca_cert}",
        "",
        "train against it (any MLflow client code; TLS is verified against the local CA):",
        f"  {client_install_command(info.access_mode)}    # in the training virtualenv, with the script's libraries",
        f"  . {env_script}    # exports MLFLOW_TRACKING_URI, the credentials and the CA "
        f"(or: set -a; . {info.env_file}; set +a)",
        "  python train.py",
    ]
    if info.username:
        lines += [
            f"UI: open {info.url} in a browser that trusts {info.ca_cert}; at its sign-in prompt use "
            f"'{info.username}' and MLFLOW_TRACKING_PASSWORD from {env_script} (not user:pass@ in the URL)",
        ]
    else:
        lines += [f"UI: open {info.url} in a browser that trusts {info.ca_cert}"]
    lines += [f"status / stop: {own_command('status', state_dir)}  |  {own_command('down', state_dir)}"]
    return lines


def cmd_down(args: argparse.Namespace) -> int:
    platform = LocalPlatform(PlatformOptions(state_dir=args.state_dir))
    stopped = platform.stop()
    if stopped:
        print(f"stopped: {', '.join(stopped)}")
    else:
        print(f"nothing was running in {platform.state_dir}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    platform = LocalPlatform(PlatformOptions(state_dir=args.state_dir))
    status = platform.status()
    meta = platform.metadata()
    print(f"platform: {status.state}{' - ' + status.message if status.message else ''}")
    if meta.get("url") and status.state == "ready":
        print(f"url (API and UI): {meta['url']}   client env: . {platform.layout.env_script}")
        print(f"artifact root: {meta.get('artifact_root', '?')}   CA: {platform.layout.ca_cert}")
    running = [c.name for c in status.components.values() if is_alive(c.pid, c.start_time)]
    if status.state == "stopped" and not running:  # after `down`, or never started: nothing is wrong
        print(f"start it with: {own_command('up', args.state_dir)}")
        return 0
    if not status.components:
        return 3
    print(f"{'component':<20} {'kind':<8} {'state':<11} {'pid':>8} {'port':>6} {'restarts':>8}  log")
    for c in status.components.values():
        pid = str(c.pid) if is_alive(c.pid, c.start_time) else "-"
        port = str(c.port) if c.port else "-"
        print(f"{c.name:<20} {c.kind:<8} {c.state:<11} {pid:>8} {port:>6} {c.restarts:>8}  {c.log}")
    return 0 if status.state == "ready" else 3


def cmd_gc(args: argparse.Namespace) -> int:
    from .gc import run_gc

    result = run_gc(LocalPlatform(PlatformOptions(state_dir=args.state_dir)), args.older_than)
    print(result.stdout.strip() or "mlflow gc: nothing to remove")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    handlers = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "gc": cmd_gc}
    try:
        return handlers[args.command](args)
    except PlatformError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted: a platform being started keeps starting in the background; "
            "`python -m localplatform down` stops it",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())

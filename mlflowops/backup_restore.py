"""Backup and restore of the local platform (``scripts/backup_restore.py``), and the drill that
proves the backup restores: back up, destroy, restore into a fresh platform, verify.

The logic is ``localplatform/backup.py``; docs/backup-restore.md describes the same drill on
AWS (RDS snapshots / point-in-time restore, S3 versioning).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from localplatform import LocalPlatform, PlatformError, PlatformOptions
from localplatform import backup as drill

from . import cli


def build_parser() -> cli.Parser:
    parser = cli.new_parser(
        "backup_restore.py",
        "Back up (pg_dump of the tracking and auth databases, the artifact objects, the secrets) a running "
        "local platform, restore one from such a backup, or run the whole drill.",
        epilog="commands:\n"
        "  backup  --state-dir S --backup-dir B   back up the running platform in S into the new directory B\n"
        "  restore --state-dir S --backup-dir B   build a fresh platform in S (must not hold one) from B, verify\n"
        "  drill   --state-dir S --backup-dir B   backup, destroy S, restore, verify (destroys the platform!)\n"
        "exit status: 0 ok, 1 the restored platform differs from the backup, 2 usage, 3 error",
    )
    parser.add_argument("command", choices=["backup", "restore", "drill"])
    parser.add_argument("--state-dir", type=Path, default=Path(".local"), help="the platform's state dir (.local)")
    parser.add_argument("--backup-dir", type=Path, required=True, help="where the backup is written / read")
    return parser


def _summary(inventory: drill.Inventory) -> dict[str, int]:
    return {
        "runs": len(inventory.runs),
        "metric_rows": inventory.metric_rows,
        "model_versions": len(inventory.model_versions),
        "aliases": len(inventory.aliases),
        "users": len(inventory.users),
        "permissions": len(inventory.permissions),
        "tables": len(inventory.table_digests),
        "artifact_objects": len(inventory.artifact_objects),
    }


def _restore_and_verify(options: PlatformOptions, backup_dir: Path, timings: dict[str, float]) -> list[str]:
    expected = drill.load_manifest(backup_dir)
    began = time.monotonic()
    platform = drill.restore(options, backup_dir)
    timings["restore_s"] = round(time.monotonic() - began, 1)
    return drill.verify(platform, expected)


def run(args: argparse.Namespace) -> cli.Report:
    options = PlatformOptions(state_dir=args.state_dir)
    timings: dict[str, float] = {}
    try:
        if args.command == "restore":
            if not (args.backup_dir / drill.MANIFEST).exists():
                raise cli.ConfigError(f"--backup-dir {args.backup_dir} is not a backup (no {drill.MANIFEST})")
            problems = _restore_and_verify(options, args.backup_dir, timings)
            inventory = drill.load_manifest(args.backup_dir)
        else:
            platform = LocalPlatform(options)
            if not platform.is_running():
                raise cli.ConfigError(f"no platform is running in {args.state_dir}: start it first (make up)")
            if args.backup_dir.exists() and any(args.backup_dir.iterdir()):
                raise cli.ConfigError(f"--backup-dir {args.backup_dir} is not empty: give a new directory")
            # The drill rebuilds with the options the platform was started with.
            options = _started_options(platform)
            result = drill.backup(platform, args.backup_dir)
            timings["backup_s"] = round(result.seconds, 1)
            inventory = result.inventory
            problems = []
            if args.command == "drill":
                began = time.monotonic()
                drill.destroy(platform)
                timings["destroy_s"] = round(time.monotonic() - began, 1)
                problems = _restore_and_verify(options, args.backup_dir, timings)
    except PlatformError as error:
        raise cli.OpsError(str(error)) from None
    data = {"command": args.command, "backup_dir": str(args.backup_dir), **_summary(inventory), **timings}
    lines = [f"{args.command}: {', '.join(f'{k}={v}' for k, v in _summary(inventory).items())}"]
    lines += [f"  {k}: {v}" for k, v in timings.items()]
    if problems:
        return cli.Report(lines, {**data, "differences": problems}, cli.EXIT_REFUSED, "; ".join(problems))
    if args.command != "backup":
        lines.append("verified: runs, metrics, model versions, aliases, users, permissions and artifacts intact")
    return cli.Report(lines, data)


def _started_options(platform: LocalPlatform) -> PlatformOptions:
    fingerprint = platform.metadata().get("options")
    if not isinstance(fingerprint, dict):
        return platform.options
    access_mode = fingerprint.get("access_mode")
    workers = fingerprint.get("workers")
    return PlatformOptions(
        state_dir=platform.options.state_dir,
        access_mode=access_mode if access_mode in ("direct", "proxied") else platform.options.access_mode,
        workers=workers if isinstance(workers, int) else platform.options.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_tool(build_parser(), run, argv)

"""Find the programs the platform runs, by version, with an install hint when one is missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from rendering.pgbouncer import PgBouncerVersion, parse_pgbouncer_version

from .errors import PlatformError

PG_SEARCH_ROOT = Path("/usr/lib/postgresql")
PG_BIN_ENV = "MLFLOW_LOCAL_PG_BIN"
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")

APT_PACKAGES = {
    "postgresql": "postgresql",
    "pgbouncer": "pgbouncer",
    "nginx": "nginx-light",
    "openssl": "openssl",
}
"""Debian/Ubuntu package per program (any nginx flavour works; nginx-light is the smallest)."""


@dataclass(frozen=True)
class Binaries:
    pg_bin: Path
    pg_major: int
    pgbouncer: Path
    pgbouncer_version: PgBouncerVersion
    nginx: Path
    openssl: Path

    def pg(self, program: str) -> Path:
        return self.pg_bin / program


def _missing(program: str, detail: str = "") -> PlatformError:
    package = APT_PACKAGES[program]
    extra = f" ({detail})" if detail else ""
    return PlatformError(f"{program} not found{extra}: install it with `sudo apt-get install -y {package}`")


def find_pg_bin(override: Path | None = None, search_root: Path = PG_SEARCH_ROOT) -> tuple[Path, int]:
    """The newest ``<search_root>/<major>/bin`` with initdb and postgres, unless ``override``
    (or ``$MLFLOW_LOCAL_PG_BIN``) names one. Never assumes a particular major."""
    explicit = override or (Path(os.environ[PG_BIN_ENV]) if os.environ.get(PG_BIN_ENV) else None)
    candidates = [explicit] if explicit else sorted(search_root.glob("*/bin"))
    found: list[tuple[int, Path]] = []
    for directory in candidates:
        if not ((directory / "postgres").is_file() and (directory / "initdb").is_file()):
            continue
        found.append((_pg_major(directory), directory))
    if not found:
        where = str(explicit) if explicit else f"{search_root}/*/bin"
        raise _missing("postgresql", f"no initdb/postgres in {where}")
    major, directory = max(found)
    return directory, major


def _pg_major(directory: Path) -> int:
    out = subprocess.run([str(directory / "postgres"), "--version"], capture_output=True, text=True, check=False)
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out.stdout)
    if match is None:
        raise PlatformError(f"cannot read the PostgreSQL version of {directory / 'postgres'}: {out.stdout.strip()!r}")
    return int(match.group(1))


def find_program(name: str) -> Path:
    """PATH first, then the sbin directories a non-root PATH often lacks (nginx, pgbouncer)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *SBIN_DIRS])
    found = shutil.which(name, path=search)
    if found is None:
        raise _missing(name)
    return Path(found)


def find_binaries(pg_bin_override: Path | None = None) -> Binaries:
    pg_bin, pg_major = find_pg_bin(pg_bin_override)
    pgbouncer = find_program("pgbouncer")
    out = subprocess.run([str(pgbouncer), "--version"], capture_output=True, text=True, check=False)
    try:
        version = parse_pgbouncer_version(out.stdout + out.stderr)
    except ValueError as error:
        raise PlatformError(f"cannot read the PgBouncer version of {pgbouncer}: {error}") from None
    return Binaries(pg_bin, pg_major, pgbouncer, version, find_program("nginx"), find_program("openssl"))

"""Backup, destroy, restore and verify a local platform: the disaster-recovery drill.

A backup directory holds what the platform cannot rebuild by itself:

* ``mlflow.dump`` and ``mlflow_auth.dump`` — ``pg_dump --format=custom`` of the tracking and
  auth databases, made with the platform's own PostgreSQL binaries as the migrator (owner)
  role over verified TLS (the RDS counterpart: an automated snapshot);
* ``artifacts/`` — a copy of every object in the artifact bucket (the S3 emulator's snapshot
  lives in the state dir, which a disaster takes with it; on AWS, bucket versioning plays this part);
* ``secrets.json`` — the platform's generated credentials. The restored databases contain the
  roles' and the admin's password hashes, so the restored platform must use the same secrets
  (on AWS they live in Pulumi secrets / Secrets Manager and outlive the instance);
* ``manifest.json`` — the inventory taken at backup time, which the restore is checked against.

Restore = a fresh platform in the same state dir (new ``initdb``, migrations, bucket), the
MLflow server held stopped while ``pg_restore --clean --single-transaction`` replaces both
databases and the objects are uploaded again, then the server started. Nothing secret is put on
a command line: libpq gets the password through ``PGPASSWORD``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg2

from rendering.names import AUTH_DATABASE, TRACKING_DATABASE

from .binaries import find_binaries
from .errors import PlatformError, raise_if_failed
from .options import PlatformOptions
from .platform import LocalPlatform
from .state_dir import remove_state_dir

DATABASES = (TRACKING_DATABASE, AUTH_DATABASE)
MANIFEST = "manifest.json"
SECRETS = "secrets.json"
ARTIFACTS = "artifacts"
DUMP_TIMEOUT_S = 300


@dataclass
class Inventory:
    """What must be identical after a restore. The per-table digests are the strict check
    (every row of every table); the named lists make a mismatch readable."""

    runs: list[list[str]] = field(default_factory=list)
    """[run_id, experiment_id, status, lifecycle_stage]"""
    metric_rows: int = 0
    model_versions: list[list[str]] = field(default_factory=list)
    """[name, version, status, source]"""
    aliases: list[list[str]] = field(default_factory=list)
    """[model name, alias, version]"""
    users: list[list[str]] = field(default_factory=list)
    """[username, is_admin]"""
    permissions: list[list[str]] = field(default_factory=list)
    """[username, resource_type, resource_pattern, permission]"""
    table_digests: dict[str, str] = field(default_factory=dict)
    """``database.table`` -> "rows:md5" of the table's rows in a fixed order."""
    artifact_objects: dict[str, str] = field(default_factory=dict)
    """object key -> sha256 of its content"""

    def differences(self, other: Inventory) -> list[str]:
        """Human-readable differences, ``self`` being the expected side."""
        problems = []
        mine, theirs = asdict(self), asdict(other)
        for name, expected in mine.items():
            got = theirs[name]
            if expected == got:
                continue
            if isinstance(expected, dict):
                keys = sorted(set(expected) | set(got))
                changed = [k for k in keys if expected.get(k) != got.get(k)]
                problems.append(f"{name}: {len(changed)} differ, e.g. {changed[:3]}")
            else:
                problems.append(f"{name}: expected {expected!r:.200}, got {got!r:.200}")
        return problems


@dataclass(frozen=True)
class BackupResult:
    directory: Path
    inventory: Inventory
    seconds: float


def query(platform: LocalPlatform, database: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query as the migrator (owner) role, directly over verified TLS."""
    connection = psycopg2.connect(**platform.database_params(database), connect_timeout=10)  # type: ignore[arg-type]
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _table_digests(platform: LocalPlatform, database: str) -> dict[str, str]:
    tables = [
        str(name)
        for (name,) in query(
            platform,
            database,
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
        )
    ]
    digests = {}
    for table in tables:
        quoted = '"' + table.replace('"', '""') + '"'
        count, digest = query(
            platform,
            database,
            f"SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {quoted} t",  # noqa: S608 - names from pg_tables
        )[0]
        digests[f"{database}.{table}"] = f"{count}:{digest}"
    return digests


def _artifact_objects(platform: LocalPlatform, copy_to: Path | None = None) -> dict[str, str]:
    s3 = platform.s3_client()
    bucket = platform.s3_access()["bucket"]
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            key = str(item["Key"])
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            objects[key] = hashlib.sha256(body).hexdigest()
            if copy_to is not None:
                target = _inside(copy_to, key)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
    return objects


def _inside(directory: Path, key: str) -> Path:
    target = (directory / key).resolve()
    if directory.resolve() not in target.parents:
        raise PlatformError(f"artifact key {key!r} would leave {directory}; refusing it")
    return target


def take_inventory(platform: LocalPlatform) -> Inventory:
    """The inventory of a running platform, read from its databases and its bucket."""
    tracking, auth = TRACKING_DATABASE, AUTH_DATABASE
    return Inventory(
        runs=[
            [str(c) for c in row]
            for row in query(
                platform, tracking, "SELECT run_uuid, experiment_id, status, lifecycle_stage FROM runs ORDER BY 1"
            )
        ],
        metric_rows=int(query(platform, tracking, "SELECT count(*) FROM metrics")[0][0]),
        model_versions=[
            [str(c) for c in row]
            for row in query(
                platform, tracking, "SELECT name, version, status, source FROM model_versions ORDER BY 1, 2"
            )
        ],
        aliases=[
            [str(c) for c in row]
            for row in query(
                platform, tracking, "SELECT name, alias, version FROM registered_model_aliases ORDER BY 1, 2"
            )
        ],
        users=[
            [str(c) for c in row] for row in query(platform, auth, "SELECT username, is_admin FROM users ORDER BY 1")
        ],
        permissions=[
            [str(c) for c in row]
            for row in query(
                platform,
                auth,
                "SELECT u.username, p.resource_type, p.resource_pattern, p.permission FROM users u "
                "JOIN user_role_assignments a ON a.user_id = u.id JOIN role_permissions p ON p.role_id = a.role_id "
                "ORDER BY 1, 2, 3, 4",
            )
        ],
        table_digests={k: v for database in DATABASES for k, v in _table_digests(platform, database).items()},
        artifact_objects=_artifact_objects(platform),
    )


def _libpq_env(platform: LocalPlatform, database: str) -> tuple[str, dict[str, str]]:
    """A conninfo string without the password, and the environment that carries it."""
    params = platform.database_params(database)
    password = str(params.pop("password"))
    conninfo = " ".join(f"{key}={value}" for key, value in params.items())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    return conninfo, env


def _pg_tool(platform: LocalPlatform, program: str, database: str, *args: str) -> None:
    conninfo, env = _libpq_env(platform, database)
    tool = find_binaries(platform.options.pg_bin_dir).pg(program)
    result = subprocess.run(
        [str(tool), f"--dbname={conninfo}", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=DUMP_TIMEOUT_S,
        check=False,
    )
    raise_if_failed(result, f"{program} of database {database}")


def backup(platform: LocalPlatform, directory: Path) -> BackupResult:
    """Back up a running platform into ``directory`` (created; must not exist or be empty)."""
    began = time.monotonic()
    if not platform.is_running():
        raise PlatformError(f"no platform is running in {platform.state_dir}: start it before backing it up")
    if directory.exists() and any(directory.iterdir()):
        raise PlatformError(f"backup directory {directory} is not empty: give a new one")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)  # it holds the platform's secrets
    for database in DATABASES:
        _pg_tool(platform, "pg_dump", database, "--format=custom", f"--file={directory / (database + '.dump')}")
    inventory = take_inventory(platform)
    copied = _artifact_objects(platform, copy_to=directory / ARTIFACTS)
    if copied != inventory.artifact_objects:
        raise PlatformError("the artifact bucket changed while it was being backed up; run the backup again")
    shutil.copy2(platform.layout.secrets_file, directory / SECRETS)
    (directory / SECRETS).chmod(0o600)
    (directory / MANIFEST).write_text(json.dumps({"inventory": asdict(inventory)}, indent=2) + "\n")
    return BackupResult(directory, inventory, time.monotonic() - began)


def load_manifest(directory: Path) -> Inventory:
    missing = [
        name for name in (MANIFEST, SECRETS, *(d + ".dump" for d in DATABASES)) if not (directory / name).exists()
    ]
    if missing:
        raise PlatformError(f"{directory} is not a complete backup: missing {', '.join(missing)}")
    try:
        return Inventory(**json.loads((directory / MANIFEST).read_text())["inventory"])
    except (ValueError, KeyError, TypeError) as error:
        raise PlatformError(f"{directory / MANIFEST} is unreadable: {error}") from None


def destroy(platform: LocalPlatform) -> None:
    """Stop the platform and remove its state (databases, certificates, secrets, logs)."""
    platform.stop()
    remove_state_dir(platform.layout)
    if platform.state_dir.exists():
        raise PlatformError(f"could not remove {platform.state_dir}")


def restore(options: PlatformOptions, directory: Path) -> LocalPlatform:
    """Build a fresh platform in ``options.state_dir`` (which must not hold one) from a backup."""
    load_manifest(directory)
    state = options.state_dir
    if (state / SECRETS).exists() or (state / "platform.json").exists():
        raise PlatformError(f"{state} already holds a platform: destroy it (or choose another state dir) first")
    state.mkdir(parents=True, exist_ok=True, mode=0o700)
    shutil.copy2(directory / SECRETS, state / SECRETS)
    (state / SECRETS).chmod(0o600)
    platform = LocalPlatform(options)
    platform.start()
    server = platform.component("mlflow")
    server.stop()
    for database in DATABASES:
        _pg_tool(
            platform,
            "pg_restore",
            database,
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
            str(directory / (database + ".dump")),
        )
    s3 = platform.s3_client()
    bucket = platform.s3_access()["bucket"]
    root = directory / ARTIFACTS
    if root.is_dir():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            s3.put_object(Bucket=bucket, Key=path.relative_to(root).as_posix(), Body=path.read_bytes())
    server.start()
    return platform


def verify(platform: LocalPlatform, expected: Inventory) -> list[str]:
    """Differences between the running platform and ``expected`` (empty: intact)."""
    return expected.differences(take_inventory(platform))

"""Executes a database bootstrap plan (``rendering.database_bootstrap.BootstrapPlan`` as JSON):
idempotent SQL as the migrator, then the tracking and auth migrations, then grants.

Shipped in the tracking-server image for the EKS migration Job, and run by the local target
too, so both execute the same step. Standalone on purpose (stdlib + psycopg2): the image holds
no project code. Prints what it does, never the SQL (it may carry a SCRAM verifier) nor DSNs
with secrets (passwords come from PGPASSFILE).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any


def connect(dsn: str, attempts: int) -> Any:
    import psycopg2

    for attempt in range(1, attempts + 1):
        try:
            return psycopg2.connect(dsn, connect_timeout=5)
        except psycopg2.OperationalError as error:
            if attempt == attempts:
                raise
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"  waiting for the database ({reason})", flush=True)
            time.sleep(min(2.0, 0.2 * attempt))
    raise AssertionError("unreachable")


def run_step(cursor: Any, step: dict[str, Any]) -> None:
    """The step's statement, under its session settings when it has any (the password step:
    statement logging off, so the verifier reaches no log). Each SET is its own statement, sent
    before the step's: PostgreSQL decides to log a query's text before running any of it. A
    refused SET stops the bootstrap; the statement is not sent."""
    import psycopg2

    settings = [(str(name), str(value)) for name, value in step.get("session_settings", [])]
    for name, value in settings:
        try:
            cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
        except psycopg2.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise SystemExit(
                f"bootstrap: cannot set {name} for the step '{step['description']}' ({reason}); "
                "not sending it, as its text would reach the server log"
            ) from None
    try:
        cursor.execute(step["sql"])
    finally:
        for name, _ in reversed(settings):
            if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name):
                raise SystemExit(f"bootstrap: bad setting name {name!r} in the plan")
            cursor.execute(f"RESET {name}")  # a plain parameter name, checked above


def run_sql(steps: list[dict[str, Any]], base_dsn: str, attempts: int) -> None:
    connections: dict[str, Any] = {}
    try:
        for step in steps:
            database = step["database"]
            if database not in connections:
                connection = connect(f"{base_dsn} dbname={database}", attempts)
                connection.autocommit = True  # CREATE DATABASE refuses to run in a transaction
                connections[database] = connection
            with connections[database].cursor() as cursor:
                if step.get("skip_if"):
                    cursor.execute(step["skip_if"])
                    if cursor.fetchone() is not None:
                        print(f"  skip: {step['description']} (already done)", flush=True)
                        continue
                run_step(cursor, step)
                print(f"  done: {step['description']}", flush=True)
    finally:
        for connection in connections.values():
            connection.close()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: run_bootstrap.py PLAN.json   (PGPASSFILE holds the migrator's password)", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as handle:
        plan = json.load(handle)
    attempts = int(plan.get("connect_attempts", 60))
    print("bootstrap: roles and databases", flush=True)
    run_sql(plan["before_migrations"], plan["migrator_dsn"], attempts)
    for command in plan["migrations"]:
        print(f"bootstrap: {command['description']}", flush=True)
        env = {**os.environ, **command.get("env", {})}
        result = subprocess.run(command["argv"], env=env, check=False)
        if result.returncode != 0:
            print(f"bootstrap: FAILED: {command['description']} (exit {result.returncode})", file=sys.stderr)
            return result.returncode
    print("bootstrap: grants on migrated tables", flush=True)
    run_sql(plan["after_migrations"], plan["migrator_dsn"], attempts)
    print("bootstrap: complete", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

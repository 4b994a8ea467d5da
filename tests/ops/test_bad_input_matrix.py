"""The bad-input matrix: every entry point a user types — ``python -m stackconfig check``, the
``scripts/`` tools and ``python -m localplatform`` — run as a subprocess with one bad input.
Each must exit non-zero with exactly ONE stderr line ``error: ...`` that names what is wrong and
what is expected, print no traceback, and create nothing: no state dir, no ``./mlruns`` (MLflow's
silent local fallback), no file beside the input; with a server, no model, alias, tag, user or
experiment.

``test_cli_contract.py`` covers --help, unreachable servers for four tools and the usage errors
of promote/validate in-process; this matrix adds the rest, out of process. The cases without a
server run concurrently (most never import MLflow and take a fraction of a second)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from localplatform import LocalPlatform

from .conftest import ROOT, Result, closed_port

TIMEOUT_S = 120
STATE = "{state}"
"""Placeholder for a state dir path that must not exist before or after."""


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    """After the interpreter: ``scripts/x.py ...`` or ``-m module ...``; ``{tmp}`` and
    ``{state}`` are replaced by the case's directory and a state dir inside it."""
    fragments: tuple[str, ...]
    """What the one line must say: what is wrong and what is expected."""
    code: int
    files: dict[str, str] = field(default_factory=dict)
    """Input files written into the case's directory before the run."""
    env: dict[str, str] = field(default_factory=dict)


def _stack(mutate: Callable[[dict[str, Any]], None]) -> str:
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    config = copy.deepcopy(document)
    mutate(config["config"])
    return yaml.safe_dump(config)


def _set(key: str, field_name: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(config: dict[str, Any]) -> None:
        config.setdefault(f"mlflow-platform:{key}", {})[field_name] = value

    return mutate


def _private_endpoint_without_deployer(config: dict[str, Any]) -> None:
    """Issue 17: nobody could reach the API of the cluster this stack creates."""
    _set("cluster", "publicAccessCidrs", [])(config)
    config["mlflow-platform:cluster"].pop("deployerCidrs")


def _stack_case(id: str, mutate: Callable[[dict[str, Any]], None], *fragments: str) -> Case:
    return Case(
        f"stack-{id}",
        ("-m", "stackconfig", "check", "{tmp}/Pulumi.bad.yaml"),
        fragments,
        2,
        files={"Pulumi.bad.yaml": _stack(mutate)},
    )


UNREACHABLE = {"MLFLOW_TRACKING_URI": "https://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
"""Set for tools that would otherwise stop at "no tracking server": the argument check must
come first (port 9 is never contacted in these cases)."""


def _tool(id: str, script: str, args: tuple[str, ...], code: int, *fragments: str, **files: str) -> Case:
    return Case(id, (f"scripts/{script}.py", *args), fragments, code, files=dict(files), env=UNREACHABLE)


def _up(id: str, args: tuple[str, ...], code: int, *fragments: str) -> Case:
    return Case(f"local-{id}", ("-m", "localplatform", "up", "--state-dir", STATE, *args), fragments, code)


PROMOTE = ("--model-name", "m", "--version", "1", "--target-alias", "champion")
CLEANUP = ("--experiment", "e", "--metric", "acc")
SHADOW = ("--model-name", "m", "--version", "1", "--min-hours-in-shadow", "24", "--max-metric-degradation", "0.02")
VALID_TEAMS = (ROOT / "examples" / "teams.yaml").read_text()

CASES: list[Case] = [
    # -- stack config (the validation `pulumi preview` runs) ----------------------------------
    _stack_case(
        "wrong-type", _set("database", "allocatedStorageGib", "lots"), "database.allocatedStorageGib", "'lots'"
    ),
    _stack_case(
        "storage-too-small",
        _set("database", "allocatedStorageGib", 5),
        "mlflow-platform:database.allocatedStorageGib: got 5",
        "from 20 to 65536",
    ),
    _stack_case(
        "unknown-instance-class",
        _set("database", "instanceClass", "db.x9.huge"),
        "mlflow-platform:database.instanceClass: got 'db.x9.huge'",
        "a known RDS class",
    ),
    _stack_case(
        "replicas-zero", _set("server", "maxReplicas", 0), "mlflow-platform:server.maxReplicas: got 0", "from 1 to 50"
    ),
    _stack_case(
        "access-mode",
        _set("artifacts", "accessMode", "hybrid"),
        "mlflow-platform:artifacts.accessMode: got 'hybrid'",
        "'direct', 'proxied'",
    ),
    _stack_case(
        "typo-key",
        _set("database", "instanceClas", "db.t4g.medium"),
        "mlflow-platform:database.instanceClas",
        "no such key",
    ),
    _stack_case(
        "typo-namespace",
        lambda config: config.update({"mlflow-platfrom:database": config.pop("mlflow-platform:database")}),
        "mlflow-platfrom:database: got namespace 'mlflow-platfrom'",
        "did you mean 'mlflow-platform:database'?",
    ),
    _stack_case(
        "region-mismatch",
        lambda config: config.update({"aws:region": "eu-west-1"}),
        "mlflow-platform:cluster.region: got 'us-east-1'",
        "the stack's aws:region ('eu-west-1')",
    ),
    _stack_case(
        "unreachable-api",
        _private_endpoint_without_deployer,
        "mlflow-platform:cluster.deployerCidrs: got <missing>",
        "mlflow-platform:cluster.publicAccessCidrs (private API endpoint only)",
    ),
    Case("stack-missing-file", ("-m", "stackconfig", "check", "{tmp}/Pulumi.nope.yaml"), ("no such file",), 2),
    Case(
        "stack-malformed-yaml",
        ("-m", "stackconfig", "check", "{tmp}/Pulumi.bad.yaml"),
        ("Pulumi.bad.yaml: invalid YAML",),
        2,
        files={"Pulumi.bad.yaml": "config:\n  mlflow-platform:database: {instanceClass: [\n"},
    ),
    Case(
        "stack-not-a-stack-file",
        ("-m", "stackconfig", "check", "{tmp}/Pulumi.bad.yaml"),
        ("expected a Pulumi stack file",),
        2,
        files={"Pulumi.bad.yaml": "- just\n- a list\n"},
    ),
    # -- promote.py ---------------------------------------------------------------------------
    _tool(
        "promote-version-not-a-number",
        "promote",
        ("--model-name", "m", "--version", "abc", "--target-alias", "champion"),
        2,
        "--version must be a version number (1, 2, ...), got 'abc'",
    ),
    _tool(
        "promote-version-zero",
        "promote",
        ("--model-name", "m", "--version", "0", "--target-alias", "champion"),
        2,
        "--version must be a version number (1, 2, ...), got '0'",
    ),
    _tool(
        "promote-empty-model-name",
        "promote",
        ("--model-name", " ", "--version", "1", "--target-alias", "champion"),
        2,
        "--model-name must not be empty",
    ),
    _tool(
        "promote-bad-alias",
        "promote",
        ("--model-name", "m", "--version", "1", "--target-alias", "Champion"),
        2,
        "--target-alias: invalid choice: 'Champion'",
        "choose from 'candidate', 'challenger', 'champion'",
    ),
    _tool(
        "promote-file-tracking-uri",
        "promote",
        (*PROMOTE, "--tracking-uri", "file:///tmp/mlruns"),
        2,
        "the tracking URI must be an http(s) server URL, got 'file:///tmp/mlruns'",
    ),
    # -- validate.py --------------------------------------------------------------------------
    _tool(
        "validate-uri-without-version",
        "validate",
        ("--model-uri", "models:/m", "--require", "acc>=0.9"),
        2,
        "--model-uri must be models:/<name>/<version> or models:/<name>@<alias>, got 'models:/m'",
    ),
    _tool(
        "validate-bad-alias-name",
        "validate",
        ("--model-uri", "models:/m@prod alias!", "--require", "acc>=0.9"),
        2,
        "got 'models:/m@prod alias!'",
    ),
    _tool(
        "validate-run-uri",
        "validate",
        ("--model-uri", "runs:/abc/model", "--require", "acc>=0.9"),
        2,
        "must be models:/<name>/<version>",
    ),
    _tool(
        "validate-threshold-not-a-number",
        "validate",
        ("--model-uri", "models:/m/1", "--require", "acc>=high"),
        2,
        "--require 'acc>=high'",
        "not a number",
    ),
    _tool(
        "validate-coverage-above-one",
        "validate",
        ("--model-uri", "models:/m/1", "--min-data-coverage", "95"),
        2,
        "--min-data-coverage '95': expected a number between 0 and 1",
    ),
    # -- verify_shadow.py ---------------------------------------------------------------------
    _tool(
        "shadow-metric-without-direction",
        "verify_shadow",
        (*SHADOW, "--metric", "ndcg"),
        2,
        "--metric 'ndcg': expected NAME:higher or NAME:lower",
    ),
    _tool(
        "shadow-unknown-direction",
        "verify_shadow",
        (*SHADOW, "--metric", "ndcg:up"),
        2,
        "--metric 'ndcg:up': expected NAME:higher or NAME:lower",
    ),
    _tool(
        "shadow-negative-degradation",
        "verify_shadow",
        ("--model-name", "m", "--version", "1", "--min-hours-in-shadow", "24", "--max-metric-degradation", "-0.1"),
        2,
        "--max-metric-degradation '-0.1': expected a number >= 0",
    ),
    _tool(
        "shadow-version-not-a-number",
        "verify_shadow",
        ("--model-name", "m", "--version", "v7", *SHADOW[4:], "--metric", "ndcg:higher"),
        2,
        "--version must be a version number (1, 2, ...), got 'v7'",
    ),
    # -- cleanup_runs.py ----------------------------------------------------------------------
    _tool("cleanup-page-size-zero", "cleanup_runs", (*CLEANUP, "--page-size", "0"), 2, "between 1 and 50000"),
    _tool("cleanup-page-size-huge", "cleanup_runs", (*CLEANUP, "--page-size", "100000"), 2, "between 1 and 50000"),
    _tool(
        "cleanup-age-not-a-number",
        "cleanup_runs",
        (*CLEANUP, "--max-age-days", "abc"),
        2,
        "--max-age-days: invalid float value: 'abc'",
    ),
    _tool("cleanup-negative-keep", "cleanup_runs", (*CLEANUP, "--keep-top-n", "-1"), 2, "must not be negative"),
    _tool(
        "cleanup-gc-without-database",
        "cleanup_runs",
        (*CLEANUP, "--apply", "--gc"),
        2,
        "--gc needs --backend-store-uri or MLFLOW_BACKEND_STORE_URI",
    ),
    # -- check_artifact_store.py --------------------------------------------------------------
    _tool(
        "probe-root-not-s3",
        "check_artifact_store",
        ("--artifact-root", "mlflow-artifacts/prefix"),
        2,
        "--artifact-root must be s3://<bucket>[/<prefix>], got 'mlflow-artifacts/prefix'",
    ),
    _tool(
        "probe-bad-bucket-name",
        "check_artifact_store",
        ("--artifact-root", "s3://My_Bucket/mlflow"),
        2,
        "'My_Bucket' is not an S3 bucket name",
        "3-63 lowercase letters",
    ),
    Case(
        "probe-unreachable-endpoint",
        (
            "scripts/check_artifact_store.py",
            "--artifact-root",
            "s3://mlflow-artifacts/mlflow",
            "--endpoint-url",
            f"https://127.0.0.1:{closed_port()}",
            "--region",
            "us-east-1",
        ),
        ("s3://mlflow-artifacts/mlflow: put error, get error", "Could not connect to the endpoint URL"),
        3,
        env={"AWS_ACCESS_KEY_ID": "AKIAMATRIXEXAMPLE000", "AWS_SECRET_ACCESS_KEY": "matrix-example-secret"},
    ),
    # -- bootstrap_teams.py -------------------------------------------------------------------
    _tool("teams-missing-file", "bootstrap_teams", ("{tmp}/teams.yaml",), 2, "teams.yaml: no such file"),
    _tool(
        "teams-malformed-yaml",
        "bootstrap_teams",
        ("{tmp}/teams.yaml",),
        2,
        "teams.yaml: invalid YAML",
        **{"teams.yaml": "teams: {a: [\n"},
    ),
    _tool("teams-a-directory", "bootstrap_teams", ("{tmp}",), 2, "is a directory, expected a teams.yaml file"),
    _tool(
        "teams-not-a-mapping",
        "bootstrap_teams",
        ("{tmp}/teams.yaml",),
        2,
        "teams.yaml: (top level): expected a mapping, got list",
        **{"teams.yaml": "- a\n"},
    ),
    _tool(
        "teams-unknown-permission",
        "bootstrap_teams",
        ("{tmp}/teams.yaml",),
        2,
        "members.bob: permission must be one of READ",
        **{"teams.yaml": VALID_TEAMS.replace("bob: EDIT", "bob: SUPERUSER")},
    ),
    # -- backup_restore.py --------------------------------------------------------------------
    Case(
        "backup-missing-backup-dir",
        ("scripts/backup_restore.py", "backup", "--state-dir", STATE),
        ("the following arguments are required: --backup-dir",),
        2,
    ),
    Case(
        "backup-no-platform",
        ("scripts/backup_restore.py", "backup", "--state-dir", STATE, "--backup-dir", "{tmp}/backup"),
        ("no platform is running in", "start it first"),
        2,
    ),
    Case(
        "restore-not-a-backup",
        ("scripts/backup_restore.py", "restore", "--state-dir", STATE, "--backup-dir", "{tmp}"),
        ("is not a backup (no manifest.json)",),
        2,
    ),
    # -- python -m localplatform --------------------------------------------------------------
    _up("workers-not-a-number", ("--workers", "abc"), 2, "--workers: invalid int value: 'abc'"),
    _up("workers-zero", ("--workers", "0"), 1, "--workers must be >= 1, got 0"),
    _up("port-unknown-name", ("--port", "grpc=8443"), 2, "expected NAME=PORT with NAME in postgres, pgbouncer"),
    _up("port-out-of-range", ("--port", "https=99999"), 1, "--port https=99999", "from 1024 to 65535"),
    _up("access-mode", ("--access-mode", "hybrid"), 2, "invalid choice: 'hybrid' (choose from 'direct', 'proxied')"),
    _up("memory-too-small", ("--postgres-memory-mb", "10"), 1, "--postgres-memory-mb must be >= 512", "got 10"),
    _up("max-connections-out-of-range", ("--max-connections", "3"), 1, "--max-connections must be from 20 to 5000"),
    _up(
        "max-connections-too-few-for-the-pools",
        ("--max-connections", "25"),
        1,
        "> max_connections 25",
        "raise the database's max_connections",
    ),
    _up("timeout-negative", ("--timeout", "-5"), 1, "--timeout must be > 0 seconds, got -5"),
    _up("pg-bin-dir-missing", ("--pg-bin-dir", "{tmp}/no-postgres"), 1, "postgresql not found", "apt-get install"),
    _up("mlflow-python-missing", ("--mlflow-python", "{tmp}/python"), 1, "--mlflow-python", "does not exist"),
    _up("mlflow-version-mismatch", ("--mlflow-version", "9.9.9"), 1, "MLflow 9.9.9 was requested", "--mlflow-python"),
    _up("service-user-unknown", ("--service-user", "no-such-user"), 1, "service user 'no-such-user' does not exist"),
    Case(
        "local-state-dir-with-space",
        ("-m", "localplatform", "up", "--state-dir", "{tmp}/my state"),
        ("must not contain spaces",),
        1,
    ),
    Case("local-unknown-command", ("-m", "localplatform", "restart"), ("invalid choice: 'restart'",), 2),
]


def _expand(text: str, tmp: Path) -> str:
    return text.replace(STATE, str(tmp / "state")).replace("{tmp}", str(tmp))


def run_case(case: Case, tmp: Path, env: dict[str, str] | None = None) -> Result:
    tmp.mkdir(parents=True)
    for name, content in case.files.items():
        (tmp / name).write_text(content)
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp), "LANG": "C.UTF-8"}
    argv = [_expand(arg, tmp) for arg in case.argv]
    if argv[0].startswith("scripts/"):
        argv[0] = str(ROOT / argv[0])
    result = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env={**base, "PYTHONPATH": str(ROOT), **case.env, **(env or {})},
        cwd=str(tmp),
        timeout=TIMEOUT_S,
        check=False,
    )
    return Result(result.returncode, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Result, Path]]:
    base = tmp_path_factory.mktemp("bad-input")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case.id: pool.submit(run_case, case, base / case.id) for case in CASES}
        return {name: (future.result(), base / name) for name, future in futures.items()}


def test_the_matrix_is_large_enough() -> None:
    ids = [case.id for case in CASES]
    assert len(set(ids)) == len(ids)
    assert len(CASES) + len(SERVER_CASES) >= 30


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_one_line_and_creates_nothing(case: Case, outcomes: dict[str, tuple[Result, Path]]) -> None:
    result, tmp = outcomes[case.id]
    result.assert_one_line_error(*case.fragments)
    assert result.code == case.code, result
    assert "Traceback" not in result.out
    left = sorted(p.name for p in tmp.iterdir())
    assert left == sorted(case.files), f"created {set(left) - set(case.files)} (state dir, ./mlruns, ...)"


# -- with a server: the input is refused and the server is unchanged --------------------------

SERVER_CASES = ["missing-model", "missing-version", "unvalidated-champion", "missing-alias", "bad-password", "teams"]


@pytest.fixture(scope="module")
def registered(ops_platform: LocalPlatform) -> Iterator[tuple[str, str]]:
    """A registered model with one (unvalidated) version, made by the admin."""
    from mlflow.tracking import MlflowClient

    env = ops_platform.client_env()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        client = MlflowClient(env["MLFLOW_TRACKING_URI"])
        name = f"matrix-{uuid.uuid4().hex[:8]}"
        client.create_registered_model(name)
        experiment = client.create_experiment(f"matrix-{uuid.uuid4().hex[:8]}")
        run = client.create_run(experiment)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version
        yield name, str(version)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _server_state(client: Any, name: str) -> tuple[Any, ...]:
    model = client.get_registered_model(name)
    versions = client.search_model_versions(f"name='{name}'")
    return (
        dict(model.aliases),
        dict(model.tags),
        sorted((v.version, tuple(sorted(v.tags.items()))) for v in versions),
    )


@pytest.mark.parametrize("kind", SERVER_CASES)
def test_bad_input_against_a_server_changes_nothing(
    kind: str,
    ops_platform: LocalPlatform,
    ops_env: dict[str, str],
    client: Any,
    registered: tuple[str, str],
    tmp_path: Path,
) -> None:
    name, version = registered
    env = dict(ops_env)
    before = _server_state(client, name)
    experiments_before = {e.name for e in client.search_experiments()}
    if kind == "missing-model":
        ghost = f"ghost-{uuid.uuid4().hex[:8]}"
        case = Case(
            kind,
            ("scripts/promote.py", "--model-name", ghost, "--version", "1", "--target-alias", "candidate"),
            (f"registered model '{ghost}' does not exist",),
            1,
        )
    elif kind == "missing-version":
        case = Case(
            kind,
            ("scripts/promote.py", "--model-name", name, "--version", "99", "--target-alias", "candidate"),
            (f"model '{name}' has no version 99",),
            1,
        )
    elif kind == "unvalidated-champion":
        case = Case(
            kind,
            ("scripts/promote.py", "--model-name", name, "--version", version, "--target-alias", "champion"),
            ("there is no challenger",),
            1,
        )
    elif kind == "missing-alias":
        case = Case(
            kind,
            ("scripts/validate.py", "--model-uri", f"models:/{name}@nope", "--require", "acc>=0.5"),
            (f"model '{name}' has no alias 'nope'",),
            1,
        )
    elif kind == "bad-password":
        env["MLFLOW_TRACKING_PASSWORD"] = "not-the-password-123"
        case = Case(
            kind,
            ("scripts/promote.py", "--model-name", name, "--version", version, "--target-alias", "candidate"),
            ("refused the credentials (401)", "MLFLOW_TRACKING_USERNAME/PASSWORD"),
            3,
        )
    else:
        teams = VALID_TEAMS.replace("fraud-team:", "Fraud Team!:")
        case = Case(
            kind,
            ("scripts/bootstrap_teams.py", "{tmp}/teams.yaml"),
            ("'Fraud Team!' is not a valid name",),
            2,
            files={"teams.yaml": teams},
        )
    result = run_case(case, tmp_path / kind, env)
    result.assert_one_line_error(*case.fragments)
    assert result.code == case.code, result
    assert _server_state(client, name) == before, "no alias, tag or version was changed"
    assert {e.name for e in client.search_experiments()} == experiments_before, "no experiment was created"
    if kind == "teams":
        from mlflow.exceptions import MlflowException

        with pytest.raises(MlflowException):
            client.get_registered_model("transaction-scoring-lgbm")

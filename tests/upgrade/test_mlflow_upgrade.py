"""An MLflow upgrade, end to end on the local target, through the migration Job's own step.

The platform starts on the previous MLflow minor (``requirements/previous-mlflow.txt``, its own
cached virtualenv), gets runs, metrics, a registered model with aliases, and users with
permissions; then it is stopped and started on the pinned MLflow, whose start runs
``images/tracking-server/run_bootstrap.py`` on the rendered bootstrap plan — the step the EKS
migration Job runs — before the new server starts. Everything must be intact afterwards.

Before migrating, the pinned MLflow's store is pointed at the old schema: it must refuse
("Detected out-of-date database schema"), the protection that crash-loops pods whose
migration Job did not run.

Then, on the upgraded platform, the two rotations that need a running server: the admin
password through the update-password API (the rotation Job's script), and the application
role's password reaching PgBouncer and the server by a reload, without a restart.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform, PlatformOptions
from localplatform.context import SERVER
from localplatform.mlflow_venv import ensure_previous_mlflow, previous_mlflow_version
from localplatform.target import pgbouncer_auth_file
from rendering.database_bootstrap import NO_STATEMENT_LOGGING, PgPassEntry, render_pgpass
from rendering.names import ADMIN_USERNAME
from rendering.pgbouncer import AuthUser, render_auth_file
from rendering.scram import scram_sha256_verifier
from rendering.versions import mlflow_version

pytestmark = pytest.mark.local

ROOT = Path(__file__).resolve().parents[2]
APPLY_ADMIN_PASSWORD = ROOT / "images" / "tracking-server" / "apply_admin_password.py"
METRIC_STEPS = 50
USER = "alice-upgrade"
GRANT = "/api/3.0/mlflow/users/permissions/grant"
PERMISSION = "/api/3.0/mlflow/users/permissions/get"


@dataclass
class Seeded:
    """What was written on the old release, to compare after the upgrade."""

    experiment_id: str = ""
    other_experiment_id: str = ""
    run_id: str = ""
    params: dict[str, str] = field(default_factory=dict)
    metric_history: list[tuple[int, float]] = field(default_factory=list)
    model: str = "upgrade-model"
    aliases: dict[str, str] = field(default_factory=dict)
    user_password: str = ""


@dataclass
class Upgrade:
    platform: LocalPlatform
    seeded: Seeded
    old_server_version: str
    previous_head: str
    pinned_head: str
    revision_before: str
    refused_by_pinned: str
    revision_after_refusal: str
    revision_after: str
    refused_by_previous: str
    bootstrap_log: str
    new_server_version: str
    timings: dict[str, float]


class Api:
    """The REST API through nginx (verified TLS) as one user."""

    def __init__(self, platform: LocalPlatform, username: str, password: str) -> None:
        env = platform.client_env()
        self.base = env["MLFLOW_TRACKING_URI"]
        self.session = requests.Session()
        self.session.auth = (username, password)
        # Per request, not on the session: requests lets $REQUESTS_CA_BUNDLE override session.verify.
        self.ca = env["MLFLOW_TRACKING_SERVER_CERT_PATH"]

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base}{path}" if path.startswith("/") else f"{self.base}/api/2.0/mlflow/{path}"
        response = self.session.request(method, url, timeout=60, verify=self.ca, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:300]}"
        return response.json() if response.ok and response.content else {}

    def post(self, path: str, body: dict[str, Any], expect: int = 200) -> dict[str, Any]:
        return self.call("POST", path, expect, json=body)

    def get(self, path: str, expect: int = 200, **params: Any) -> dict[str, Any]:
        return self.call("GET", path, expect, params=params)


def admin(platform: LocalPlatform) -> Api:
    env = platform.client_env()
    return Api(platform, env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"])


def server_version(platform: LocalPlatform) -> str:
    api = admin(platform)
    response = api.session.get(f"{api.base}/version", timeout=30, verify=api.ca)
    assert response.status_code == 200, response.text
    return response.text.strip()


def seed(platform: LocalPlatform) -> Seeded:
    api, seeded = admin(platform), Seeded()
    seeded.experiment_id = api.post("experiments/create", {"name": "upgrade-experiment"})["experiment_id"]
    seeded.other_experiment_id = api.post("experiments/create", {"name": "upgrade-private"})["experiment_id"]
    run = api.post("runs/create", {"experiment_id": seeded.experiment_id, "run_name": "before-upgrade"})["run"]
    seeded.run_id = run["info"]["run_id"]
    seeded.params = {"lr": "0.01", "mlflow_release": previous_mlflow_version()}
    seeded.metric_history = [(step, round(1.0 / (step + 1), 6)) for step in range(METRIC_STEPS)]
    api.post(
        "runs/log-batch",
        {
            "run_id": seeded.run_id,
            "params": [{"key": k, "value": v} for k, v in seeded.params.items()],
            "metrics": [
                {"key": "loss", "value": value, "timestamp": 1_700_000_000_000 + step, "step": step}
                for step, value in seeded.metric_history
            ],
        },
    )
    api.post("runs/update", {"run_id": seeded.run_id, "status": "FINISHED", "end_time": 1_700_000_100_000})
    api.post("registered-models/create", {"name": seeded.model})
    source = run["info"]["artifact_uri"].rstrip("/") + "/model"
    for _ in range(2):
        api.post("model-versions/create", {"name": seeded.model, "source": source, "run_id": seeded.run_id})
    seeded.aliases = {"champion": "1", "challenger": "2"}
    for alias, version in seeded.aliases.items():
        api.post("registered-models/alias", {"name": seeded.model, "alias": alias, "version": version})
    seeded.user_password = "U" + secrets.token_hex(12)
    api.post("users/create", {"username": USER, "password": seeded.user_password})
    for resource_type, resource_id, permission in (
        ("experiment", seeded.experiment_id, "READ"),
        ("registered_model", seeded.model, "EDIT"),
    ):
        grant = {"username": USER, "resource_type": resource_type, "resource_id": resource_id, "permission": permission}
        api.post(GRANT, grant)
    return seeded


def open_tracking_store(platform: LocalPlatform, python: Path | str) -> subprocess.CompletedProcess[str]:
    """Open the tracking store the way ``mlflow server`` does at start (``SqlAlchemyStore``), with
    the MLflow of ``python``, as the application role directly on PostgreSQL (verify-full)."""
    params = platform.database_params("mlflow", role="app")
    url = (
        f"postgresql+psycopg2://{params['user']}@{params['host']}:{params['port']}/mlflow"
        f"?sslmode=verify-full&sslrootcert={params['sslrootcert']}"
    )
    code = (
        "import sys\n"
        "from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore\n"
        "SqlAlchemyStore(sys.argv[1], 's3://mlflow-local-artifacts/mlflow')\n"
        "print('schema accepted')\n"
    )
    return subprocess.run(
        [str(python), "-c", code, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PGPASSWORD": str(params["password"])},
    )


def head_revision(python: Path | str) -> str:
    """The schema revision an MLflow installation expects (its Alembic head)."""
    code = "from mlflow.store.db.utils import _get_latest_schema_revision as h; print(h())"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout.strip().splitlines()[-1]


def schema_revision(platform: LocalPlatform) -> str:
    import psycopg2

    connection = psycopg2.connect(**platform.database_params("mlflow"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            rows = cursor.fetchall()
    finally:
        connection.close()
    assert len(rows) == 1, rows
    return str(rows[0][0])


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="module")
def upgrade() -> Iterator[Upgrade]:
    timings: dict[str, float] = {}
    began = time.monotonic()
    old_python = ensure_previous_mlflow()
    timings["previous_venv"] = time.monotonic() - began
    # Not under pytest's tmp dir: a pytest session started meanwhile by anyone else resets
    # /tmp/pytest-of-<user> to 0700, and the service user (PgBouncer, which reads its CA file
    # per server connection) could no longer reach its files.
    state = Path(tempfile.mkdtemp(prefix="mlflow-upgrade-"))
    state.chmod(0o711)
    old_options = PlatformOptions(state_dir=state, mlflow_python=old_python, mlflow_version=previous_mlflow_version())
    old = LocalPlatform(old_options)
    platform = old
    try:
        began = time.monotonic()
        old.start()
        timings["start_previous"] = time.monotonic() - began
        old_server_version = server_version(old)
        seeded = seed(old)
        # The old server stops (as pods are replaced); the database stays up.
        old.component("mlflow").stop()
        revision_before = schema_revision(old)
        refused_by_pinned = _output(open_tracking_store(old, sys.executable))
        revision_after_refusal = schema_revision(old)
        old.stop()
        began = time.monotonic()
        platform = LocalPlatform(replace(old_options, mlflow_python=None, mlflow_version=mlflow_version()))
        platform.start()
        timings["start_pinned_with_migration"] = time.monotonic() - began
        yield Upgrade(
            platform=platform,
            seeded=seeded,
            old_server_version=old_server_version,
            previous_head=head_revision(old_python),
            pinned_head=head_revision(sys.executable),
            revision_before=revision_before,
            refused_by_pinned=refused_by_pinned,
            revision_after_refusal=revision_after_refusal,
            revision_after=schema_revision(platform),
            refused_by_previous=_output(open_tracking_store(platform, old_python)),
            bootstrap_log=platform.layout.log("db-bootstrap").read_text(),
            new_server_version=server_version(platform),
            timings=timings,
        )
    finally:
        platform.stop()
        shutil.rmtree(state, ignore_errors=True)
        print(f"upgrade timings: { {k: round(v, 1) for k, v in timings.items()} }")


def test_the_platform_ran_the_previous_release_then_the_pinned_one(upgrade: Upgrade):
    assert upgrade.old_server_version == previous_mlflow_version() != mlflow_version()
    assert upgrade.new_server_version == mlflow_version()


def test_this_upgrade_has_a_tracking_schema_migration(upgrade: Upgrade):
    assert upgrade.previous_head != upgrade.pinned_head
    assert upgrade.revision_before == upgrade.previous_head
    assert upgrade.revision_after == upgrade.pinned_head


def test_the_pinned_server_cannot_migrate_the_old_schema_itself(upgrade: Upgrade):
    """What a new pod does before the Job ran: MLflow sees tables its models lack and tries to
    migrate on its own — the replica race — but the application role owns nothing, so it
    fails, and nothing changed (PostgreSQL DDL is transactional)."""
    refused = upgrade.refused_by_pinned
    assert refused.startswith("exit 1"), refused[-2000:]
    assert "schema accepted" not in refused
    assert "InsufficientPrivilege" in refused and "must be owner of table" in refused, refused[-2000:]
    assert upgrade.revision_after_refusal == upgrade.revision_before


def test_the_previous_server_refuses_the_migrated_schema(upgrade: Upgrade):
    """Rolling the image back without restoring the database crash-loops: the old MLflow
    refuses the newer schema. Hence docs/upgrades.md: snapshot first, roll back by restore."""
    refused = upgrade.refused_by_previous
    assert refused.startswith("exit 1"), refused[-2000:]
    assert (
        f"Detected out-of-date database schema (found version {upgrade.pinned_head}, "
        f"but expected {upgrade.previous_head})"
    ) in refused


def test_the_upgrade_ran_the_migration_jobs_step(upgrade: Upgrade):
    log = upgrade.bootstrap_log
    # The log holds both starts (appended): the previous release's, then the pinned one's.
    assert log.count("bootstrap: complete") == 2
    pinned_part = log.rsplit("bootstrap: roles and databases", 1)[1]
    steps = [line for line in pinned_part.splitlines() if line.startswith("bootstrap: ")]
    assert steps == [
        "bootstrap: migrate the tracking database",
        "bootstrap: migrate the auth database",
        "bootstrap: grants on migrated tables",
        "bootstrap: complete",
    ]
    # ... and the pinned store now accepts the schema, as the application role.
    result = open_tracking_store(upgrade.platform, sys.executable)
    assert "schema accepted" in result.stdout, result.stderr[-2000:]


def test_runs_and_metrics_are_intact(upgrade: Upgrade):
    api, seeded = admin(upgrade.platform), upgrade.seeded
    run = api.get("runs/get", run_id=seeded.run_id)["run"]
    assert run["info"]["status"] == "FINISHED"
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == seeded.params
    history = api.get("metrics/get-history", run_id=seeded.run_id, metric_key="loss", max_results=1000)["metrics"]
    assert sorted((m["step"], m["value"]) for m in history) == seeded.metric_history
    # And the upgraded server writes: a run logged after the upgrade.
    new_run = api.post("runs/create", {"experiment_id": seeded.experiment_id, "run_name": "after-upgrade"})["run"]
    api.post(
        "runs/log-metric", {"run_id": new_run["info"]["run_id"], "key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
    )
    found = api.post("runs/search", {"experiment_ids": [seeded.experiment_id]})["runs"]
    assert sorted(r["info"]["run_name"] for r in found) == ["after-upgrade", "before-upgrade"]


def test_the_registered_model_and_its_aliases_are_intact(upgrade: Upgrade):
    api, seeded = admin(upgrade.platform), upgrade.seeded
    for alias, version in seeded.aliases.items():
        found = api.get("registered-models/alias", name=seeded.model, alias=alias)["model_version"]
        assert (found["version"], found["run_id"]) == (version, seeded.run_id)
    model = api.get("registered-models/get", name=seeded.model)["registered_model"]
    assert {a["alias"]: a["version"] for a in model["aliases"]} == seeded.aliases


def test_users_and_permissions_are_intact(upgrade: Upgrade):
    platform, seeded = upgrade.platform, upgrade.seeded
    api = admin(platform)
    assert api.get("users/get", username=USER)["user"]["username"] == USER
    for resource_type, resource_id, permission in (
        ("experiment", seeded.experiment_id, "READ"),
        ("registered_model", seeded.model, "EDIT"),
        ("experiment", seeded.other_experiment_id, "NO_PERMISSIONS"),
    ):
        found = api.get(PERMISSION, username=USER, resource_type=resource_type, resource_id=resource_id)
        assert found["permission"] == permission, (resource_type, resource_id, found)
    # The user's own password still works, and the permissions still decide what it sees.
    user = Api(platform, USER, seeded.user_password)
    assert user.get("experiments/get", experiment_id=seeded.experiment_id)["experiment"]["name"] == "upgrade-experiment"
    user.get("experiments/get", expect=403, experiment_id=seeded.other_experiment_id)
    user.post("runs/create", {"experiment_id": seeded.experiment_id}, expect=403)  # READ cannot write
    Api(platform, USER, seeded.user_password + "x").get("experiments/get", expect=401, experiment_id="0")


def run_apply_admin_password(
    platform: LocalPlatform, new: str, previous: str, directory: Path
) -> subprocess.CompletedProcess[str]:
    new_file, previous_file = directory / "admin-password", directory / "previous-admin-password"
    for path, value in ((new_file, new), (previous_file, previous)):
        path.write_text(value + "\n")
        path.chmod(0o600)
    env = platform.client_env()
    return subprocess.run(
        [
            sys.executable,
            str(APPLY_ADMIN_PASSWORD),
            env["MLFLOW_TRACKING_URI"],
            ADMIN_USERNAME,
            str(new_file),
            str(previous_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SSL_CERT_FILE": env["MLFLOW_TRACKING_SERVER_CERT_PATH"]},
    )


def wait_until_refused(platform: LocalPlatform, username: str, password: str) -> float:
    began = time.monotonic()
    deadline = began + SERVER.auth_cache_ttl_seconds + 30
    api = Api(platform, username, password)
    while True:
        url = f"{api.base}/api/2.0/mlflow/users/get"
        status = api.session.get(url, params={"username": username}, timeout=60, verify=api.ca).status_code
        if status == 401:
            return time.monotonic() - began
        assert status == 200 and time.monotonic() < deadline, (status, "old password still accepted")
        time.sleep(2)


def test_admin_password_rotation_goes_through_the_update_password_api(upgrade: Upgrade, tmp_path: Path):
    platform = upgrade.platform
    current = platform.client_env()["MLFLOW_TRACKING_PASSWORD"]
    rotated = "R" + secrets.token_hex(16)
    first = run_apply_admin_password(platform, rotated, current, tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == f"admin password for {ADMIN_USERNAME}: changed"
    Api(platform, ADMIN_USERNAME, rotated).get("users/get", username=ADMIN_USERNAME)
    # Each worker's credential cache (auth_cache_ttl_seconds) may accept the old password for
    # up to the TTL; after that it is refused everywhere.
    refused_after = wait_until_refused(platform, ADMIN_USERNAME, current)
    print(f"old admin password refused {refused_after:.1f}s after the change")
    # A rerun (the Job retried, or a later deploy) is a no-op.
    again = run_apply_admin_password(platform, rotated, current, tmp_path)
    assert again.stdout.strip().splitlines()[-1] == f"admin password for {ADMIN_USERNAME}: unchanged"
    # Neither password working is an error, not a silent success.
    wrong = run_apply_admin_password(platform, "N" + secrets.token_hex(16), "P" + secrets.token_hex(16), tmp_path)
    assert wrong.returncode != 0 and "neither the new nor the previous password" in wrong.stderr
    assert rotated not in first.stdout + first.stderr + again.stdout + again.stderr
    # Back to the platform's own password (mlflow.env), through the same path.
    back = run_apply_admin_password(platform, current, rotated, tmp_path)
    assert back.returncode == 0 and back.stdout.strip().endswith("changed"), back.stderr


def test_a_rotated_database_password_reaches_pgbouncer_and_the_server_by_replacing_them(upgrade: Upgrade):
    """The order docs/rotation.md gives, on one machine: the Job sets the role's new verifier;
    the running server and PgBouncer ("old pod") keep serving on the server connections they
    have, but cannot open a new one (SCRAM pass-through logs in with keys from their clients'
    old password); replaced by processes that read the new files ("new pod": the Secret),
    everything works, and the old password opens nothing."""
    import psycopg2

    platform, api = upgrade.platform, admin(upgrade.platform)
    pgbouncer_log = platform.layout.log("pgbouncer")
    new_password = secrets.token_hex(20)
    verifier = scram_sha256_verifier(new_password, secrets.token_bytes(16))

    def search(timeout: float = 60) -> int:
        url = f"{api.base}/api/2.0/mlflow/experiments/search"
        return api.session.get(url, params={"max_results": 5}, timeout=timeout, verify=api.ca).status_code

    assert [search() for _ in range(5)] == [200] * 5  # warm: PgBouncer holds server connections
    migrator = psycopg2.connect(**platform.database_params("postgres"))
    migrator.autocommit = True
    try:
        with migrator.cursor() as cursor:
            # 1. The migration Job: the role's new verifier, with statement logging off for
            # that statement as the Job's runner sets it (NO_STATEMENT_LOGGING).
            for name, value in NO_STATEMENT_LOGGING:
                cursor.execute("SELECT set_config(%s, %s, false)", (name, value))
            cursor.execute(f"ALTER ROLE mlflow PASSWORD '{verifier}'")
        # The old pod (its credentials were staged at its start) keeps serving on the sessions
        # PostgreSQL kept.
        assert [search() for _ in range(10)] == [200] * 10
        # ... but once those are gone, its PgBouncer cannot log in again.
        log_before = pgbouncer_log.read_text()
        with migrator.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'mlflow'")
        try:
            stalled = search(timeout=5)
        except requests.exceptions.Timeout:
            stalled = 0  # waiting for a server connection PgBouncer cannot open
        assert stalled != 200
        new_lines = pgbouncer_log.read_text()[len(log_before) :]
        assert 'login failed: FATAL: password authentication failed for user "mlflow"' in new_lines
        # 2. The Secret: PgBouncer's auth file and the server's password file, which the new pod reads.
        pgbouncer_auth_file(platform.layout).write_text(render_auth_file([AuthUser("mlflow", verifier)]))
        port = int(platform.database_params("mlflow", via_pgbouncer=True)["port"])
        platform.layout.server_pgpass.write_text(
            render_pgpass(
                [PgPassEntry("127.0.0.1", port, db, "mlflow", new_password) for db in ("mlflow", "mlflow_auth")]
            )
        )
        # 3. The rollout: new processes with the new files (here the one replica, so a short gap).
        began = time.monotonic()
        for name in ("pgbouncer", "mlflow"):
            platform.component(name).stop()
        for name in ("pgbouncer", "mlflow"):
            platform.component(name).start()
        assert [search() for _ in range(20)] == [200] * 20
        replaced_in = time.monotonic() - began
        with migrator.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = 'mlflow'")
            row = cursor.fetchone()
    finally:
        migrator.close()
    assert row is not None and row[0] >= 1  # server sessions opened with the new verifier
    assert "SCRAM-SHA-256$" not in platform.layout.log("postgres").read_text(), "a verifier reached the log"
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**platform.database_params("mlflow", role="app"), connect_timeout=5).close()
    print(f"replaced PgBouncer and the server in {replaced_in:.1f}s")

"""What an MLflow bump and each credential rotation change in the rendered stack — exactly.

Each test runs the real program (``infra/__main__.py``) under mocks twice, before and after
one change, and compares every resource input, path by path: the change must touch exactly
the listed properties, and nothing else (no hand edit is needed anywhere else).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import rendering.versions as versions
from rendering.versions import mlflow_version
from tests.pulumi_harness import RecordingMocks, is_secret_envelope, run_program, stack_file_config

PINNED = mlflow_version()
BUMPED = "3.18.0"
REPOSITORY = "111111111111.dkr.ecr.us-east-1.amazonaws.com/mlflow-tracking-server"
TRACKING = "mlflow-dev-tracking"
GC_CRON_JOB = "mlflow-dev-gc-cron-job"
GC_SECRET = "mlflow-dev-gc-secret"
CRON_JOB = "kubernetes:batch/v1:CronJob"
JOB = "kubernetes:batch/v1:Job"
SECRET = "kubernetes:core/v1:Secret"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
POD = "spec.template.spec"


def image_built_for(version: str, digest_byte: str) -> str:
    """The reference CI hands on (.github/workflows/image.yml) for an image of ``version``."""
    return f"{REPOSITORY}:mlflow-{version}-inputs-{'ab' * 16}@sha256:{digest_byte * 64}"


def config(image: str, rotation: dict[str, int] | None = None) -> dict[str, str]:
    values = stack_file_config("dev")
    server = json.loads(values["mlflow-platform:server"])
    values["mlflow-platform:server"] = json.dumps({**server, "image": image})
    if rotation is not None:
        values["mlflow-platform:rotation"] = json.dumps(rotation)
    return values


def run(values: dict[str, str]) -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    """On a loop of its own; whatever loop the caller had (possibly none) is restored."""
    try:
        previous: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
    except RuntimeError:  # an earlier test closed and unset the current loop
        previous = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run_program("dev", values)
    finally:
        asyncio.set_event_loop(previous)
        loop.close()


def flatten(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{index}]")
    else:
        yield path, value


def differences(before: RecordingMocks, after: RecordingMocks) -> set[tuple[str, str, str]]:
    """``(type, resource name, property path)`` of every input that differs, plus resources
    that exist on one side only (path ``+`` or ``-``)."""

    def index(mocks: RecordingMocks) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r.typ, r.name): dict(flatten(r.inputs)) for r in mocks.resources}

    old, new = index(before), index(after)
    found: set[tuple[str, str, str]] = set()
    for key in old.keys() | new.keys():
        if key not in new:
            found.add((*key, "-"))
        elif key not in old:
            found.add((*key, "+"))
        else:
            for path in old[key].keys() | new[key].keys():
                if old[key].get(path) != new[key].get(path):
                    found.add((*key, path))
    return found


def inputs(mocks: RecordingMocks, typ: str, name: str) -> dict[str, Any]:
    return mocks.one(typ, name).inputs


@pytest.fixture(scope="module")
def pinned_run() -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    return run(config(image_built_for(PINNED, "1")))


def test_an_mlflow_bump_changes_the_image_and_the_migration_job_and_nothing_else(
    pinned_run: tuple[RecordingMocks, dict[str, Any], dict[str, bool]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    before, before_out, _ = pinned_run
    bumped = tmp_path / "requirements.txt"
    bumped.write_text(versions.REQUIREMENTS.read_text().replace(f"mlflow=={PINNED}\n", f"mlflow=={BUMPED}\n"))
    monkeypatch.setattr(versions, "REQUIREMENTS", bumped)
    versions.pinned_python_versions.cache_clear()
    try:
        assert mlflow_version() == BUMPED
        after, after_out, _ = run(config(image_built_for(BUMPED, "2")))
    finally:
        monkeypatch.undo()
        versions.pinned_python_versions.cache_clear()

    job, job_secret = f"{TRACKING}-migration", f"{TRACKING}-migration-secret"
    assert differences(before, after) == {
        (JOB, job, "metadata.name"),
        (JOB, job, f"{POD}.volumes[0].secret.secretName"),  # the Job's Secret, renamed with it
        (JOB, job, f"{POD}.initContainers[0].image"),
        (JOB, job, f"{POD}.containers[0].image"),
        (SECRET, job_secret, "metadata.name"),
        (DEPLOYMENT, f"{TRACKING}-deployment", f"{POD}.initContainers[0].image"),  # stage-secrets
        (DEPLOYMENT, f"{TRACKING}-deployment", f"{POD}.containers[0].image"),  # mlflow
        # The garbage-collection CronJob runs `mlflow gc` from the same image.
        (CRON_JOB, GC_CRON_JOB, f"spec.jobTemplate.{POD}.initContainers[0].image"),
        (CRON_JOB, GC_CRON_JOB, f"spec.jobTemplate.{POD}.containers[0].image"),
    }
    assert inputs(before, JOB, job)["metadata"]["name"] == "mlflow-db-migrate-" + PINNED.replace(".", "-")
    assert inputs(after, JOB, job)["metadata"]["name"] == "mlflow-db-migrate-3-18-0"
    assert inputs(after, SECRET, job_secret)["metadata"]["name"] == "mlflow-db-migrate-3-18-0"
    assert inputs(after, DEPLOYMENT, "")["spec"]["template"]["spec"]["containers"][0]["image"] == image_built_for(
        BUMPED, "2"
    )
    changed_outputs = {key for key in before_out if before_out[key] != after_out.get(key)}
    assert changed_outputs == {"migrationJobName"}
    assert after_out["migrationJobName"] == "mlflow-db-migrate-3-18-0"


def test_an_image_built_for_another_mlflow_is_refused_with_the_key_named():
    import pulumi

    with pytest.raises(pulumi.RunError) as caught:
        run(config(image_built_for("3.16.1", "3")))
    message = str(caught.value)
    assert "mlflow-platform:server.image" in message
    assert f"got an image built for MLflow 3.16.1; expected one built for MLflow {PINNED}" in message
    assert "Traceback" not in message


ROTATIONS = {
    "databasePassword": {
        ("random:index/randomPassword:RandomPassword", f"{TRACKING}-app-role-password", "keepers.generation"),
        ("random:index/randomBytes:RandomBytes", f"{TRACKING}-app-role-salt", "keepers.generation"),
        # PgBouncer's auth file and the server's password file carry the new verifier/password.
        (SECRET, f"{TRACKING}-server-secret", "stringData.userlist.txt"),
        (SECRET, f"{TRACKING}-server-secret", "stringData.server.pgpass"),
        # The gc CronJob's password file (its next run reads the new one).
        (SECRET, GC_SECRET, "stringData.gc.pgpass"),
        # The migration Job sets the role's new verifier: a new Job (and its Secret).
        (SECRET, f"{TRACKING}-migration-secret", "metadata.name"),
        (SECRET, f"{TRACKING}-migration-secret", "stringData.bootstrap.json"),
        (JOB, f"{TRACKING}-migration", "metadata.name"),
        (JOB, f"{TRACKING}-migration", f"{POD}.volumes[0].secret.secretName"),
        # ... then the pods roll.
        (
            DEPLOYMENT,
            f"{TRACKING}-deployment",
            "spec.template.metadata.annotations.mlflow-platform/credentials-revision",
        ),
    },
    "flaskSecretKey": {
        ("random:index/randomPassword:RandomPassword", f"{TRACKING}-flask-secret-key", "keepers.generation"),
        (SECRET, f"{TRACKING}-server-secret", "stringData.MLFLOW_FLASK_SERVER_SECRET_KEY"),
        (
            DEPLOYMENT,
            f"{TRACKING}-deployment",
            "spec.template.metadata.annotations.mlflow-platform/credentials-revision",
        ),
    },
}


@pytest.mark.parametrize("key", sorted(ROTATIONS))
def test_a_rotation_changes_exactly_its_secret_and_what_reads_it(
    pinned_run: tuple[RecordingMocks, dict[str, Any], dict[str, bool]], key: str
):
    before, before_out, _ = pinned_run
    after, after_out, secrets = run(config(image_built_for(PINNED, "1"), {key: 1}))
    assert differences(before, after) == ROTATIONS[key]
    job = inputs(after, JOB, f"{TRACKING}-migration")["metadata"]["name"]
    expected_job = "mlflow-db-migrate-" + PINNED.replace(".", "-") + ("-db1" if key == "databasePassword" else "")
    assert job == expected_job
    annotation = inputs(after, DEPLOYMENT, "")["spec"]["template"]["metadata"]["annotations"]
    expected = "database=1,flask=0" if key == "databasePassword" else "database=0,flask=1"
    assert annotation["mlflow-platform/credentials-revision"] == expected
    assert {k for k in before_out if before_out[k] != after_out.get(k)} == (
        {"migrationJobName"} if key == "databasePassword" else set()
    )
    _assert_secrets_stay_secret(after, after_out, secrets)


def test_an_admin_password_rotation_adds_a_generation_and_a_job_that_applies_it(
    pinned_run: tuple[RecordingMocks, dict[str, Any], dict[str, bool]],
):
    before, before_out, _ = pinned_run
    after, after_out, secrets = run(config(image_built_for(PINNED, "1"), {"adminPassword": 1}))
    found = differences(before, after)
    added = {(typ, name) for typ, name, path in found if path == "+"}
    assert added == {
        ("random:index/randomPassword:RandomPassword", f"{TRACKING}-admin-password-g1"),
        (SECRET, f"{TRACKING}-admin-password-secret"),
        (JOB, f"{TRACKING}-admin-password"),
        ("kubernetes:networking.k8s.io/v1:NetworkPolicy", f"{TRACKING}-admin-password-network-policy"),
    }
    # Only the seed for an empty user store changes otherwise; the pods do not roll for it.
    assert found - {(t, n, "+") for t, n in added} == {
        (SECRET, f"{TRACKING}-server-secret", "stringData.MLFLOW_AUTH_ADMIN_PASSWORD")
    }
    passwords = {r.name: r for r in after.of_type("random:index/randomPassword:RandomPassword")}
    new, old = passwords[f"{TRACKING}-admin-password-g1"], passwords[f"{TRACKING}-admin-password"]
    assert after_out["trackingAdminPassword"] != before_out["trackingAdminPassword"]
    assert new.inputs["length"] == old.inputs["length"] == 32
    secret = inputs(after, SECRET, "admin-password-secret")["stringData"]
    assert secret == {
        "admin-password": after_out["trackingAdminPassword"],
        "previous-admin-password": before_out["trackingAdminPassword"],
    }
    job = inputs(after, JOB, "admin-password")
    pod = job["spec"]["template"]["spec"]
    assert job["metadata"]["name"] == "mlflow-admin-password-g1"
    assert pod["containers"][0]["command"] == [
        "python",
        "/opt/mlflow-platform/apply_admin_password.py",
        "https://mlflow.dev.example.com",
        "admin",
        "/run/mlflow/admin-password",
        "/run/mlflow/previous-admin-password",
    ]
    assert pod["volumes"][0] == {
        "name": "secrets",
        "secret": {"secretName": "mlflow-admin-password-g1", "defaultMode": 0o440},
    }
    policy = inputs(after, "kubernetes:networking.k8s.io/v1:NetworkPolicy", "admin-password-network-policy")["spec"]
    assert policy["ingress"] == []
    assert [rule["ports"][0]["port"] for rule in policy["egress"]] == [53, 443]
    assert policy["egress"][1]["to"][0]["ipBlock"]["except"] == ["169.254.169.254/32"]
    # The Job runs after the server: its URN is a dependency of nothing, and it depends on the Deployment.
    raw = after.one(JOB, "admin-password")
    assert raw.provider and "mlflow-dev-kubernetes" in raw.provider
    _assert_secrets_stay_secret(after, after_out, secrets)
    # Generation 2 drops generation 0 and keeps 1 as the previous one.
    third, _, _ = run(config(image_built_for(PINNED, "1"), {"adminPassword": 2}))
    names = {r.name for r in third.of_type("random:index/randomPassword:RandomPassword") if "admin-password" in r.name}
    assert names == {f"{TRACKING}-admin-password-g1", f"{TRACKING}-admin-password-g2"}
    assert (
        inputs(third, SECRET, "admin-password-secret")["stringData"]["previous-admin-password"]
        == (after_out["trackingAdminPassword"])
    )
    assert inputs(third, JOB, "admin-password")["metadata"]["name"] == "mlflow-admin-password-g2"


def _assert_secrets_stay_secret(mocks: RecordingMocks, outputs: dict[str, Any], secrets: dict[str, bool]) -> None:
    assert {key for key, secret in secrets.items() if secret} == {"databaseMasterPassword", "trackingAdminPassword"}
    plain_outputs = json.dumps({k: v for k, v in outputs.items() if not secrets[k]}, default=str)
    secret_values = [outputs["trackingAdminPassword"], outputs["databaseMasterPassword"]]
    for resource in mocks.of_type(SECRET):
        data = resource.raw_inputs["stringData"]
        # Secret as a whole, or value by value: never a plain value in state or previews.
        assert is_secret_envelope(data) or all(is_secret_envelope(v) for v in data.values()), resource.name
        secret_values += [v for k, v in resource.inputs["stringData"].items() if k != "bootstrap.json"]
    for value in secret_values:
        assert value and value not in plain_outputs


def test_the_rotation_objects_pass_the_schema_and_checkov(tmp_path: Path):
    from tests.k8s_manifests import checkov_failures, manifests, schema_errors

    mocks, _, _ = run(config(image_built_for(PINNED, "1"), {"adminPassword": 3, "databasePassword": 2}))
    found = [m for m in manifests(mocks) if "admin-password" in m["metadata"]["name"] or m["kind"] == "Job"]
    assert sorted((m["kind"], m["metadata"]["name"]) for m in found) == [
        ("Job", "mlflow-admin-password-g3"),
        ("Job", f"mlflow-db-migrate-{PINNED.replace('.', '-')}-db2"),
        ("NetworkPolicy", "mlflow-admin-password"),
        ("Secret", "mlflow-admin-password-g3"),
    ]
    everything = manifests(mocks)
    assert [error for manifest in everything for error in schema_errors(manifest)] == []
    passed, failed = checkov_failures(everything, tmp_path)
    assert failed == []
    assert passed > 100

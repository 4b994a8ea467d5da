"""The deploy workflow's shell scripts, run as CI runs them, with a stand-in ``pulumi`` on PATH
that answers ``stack output`` / ``stack export`` from a file (and prints ``[secret]`` for a
secret output asked without ``--show-secrets``, as the CLI does):

* ``.github/scripts/smoke-check.sh`` against a local platform: its health and api parts over
  the platform's HTTPS endpoint (curl verifies the local CA), creating the smoke user on a first
  deploy and resetting its password later, as the admin from the stack outputs; its artifacts
  part assumes a training role in the platform's moto (STS and S3) and probes the artifact root;
* ``.github/scripts/first-deploy-phase.sh``: the first phase only when the state holds no
  Kubernetes provider.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from localplatform import LocalPlatform
from localplatform.secrets_store import load_or_create
from rendering.names import ADMIN_USERNAME

from .conftest import ROOT, unique

pytestmark = pytest.mark.timeout(300)

SCRIPTS = ROOT / ".github" / "scripts"
FAKE_PULUMI = f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
state = json.load(open(os.environ["FAKE_PULUMI_STATE"]))
if args[:2] == ["stack", "output"]:
    rest = [a for a in args[2:] if a != "--show-secrets"]
    assert rest[0] == "--stack" and rest[1] == state["stack"], args
    (name,) = rest[2:]
    if name not in state["outputs"]:
        sys.exit(f"error: current stack does not have output property '{{name}}'")
    secret = name in state.get("secrets", []) and "--show-secrets" not in args
    print("[secret]" if secret else state["outputs"][name])
elif args[:2] == ["stack", "export"] and "export" in state:
    print(json.dumps(state["export"]))
else:
    sys.exit(f"error: the stand-in pulumi does not do {{args}}")
"""


def fake_pulumi(tmp_path: Path, state: dict[str, Any]) -> dict[str, str]:
    """A bin directory with the stand-in ``pulumi`` first on PATH; returns the environment."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "pulumi"
    script.write_text(FAKE_PULUMI)
    script.chmod(0o755)
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps(state))
    return {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "FAKE_PULUMI_STATE": str(state_file),
        "FAKE_PULUMI_LOG": str(tmp_path / "pulumi-calls.log"),
    }


def run(script: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPTS / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=240,
        check=False,
    )


def pulumi_calls(env: dict[str, str]) -> list[list[str]]:
    log = Path(env["FAKE_PULUMI_LOG"])
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# --- smoke-check.sh against a local platform --------------------------------------------------


@pytest.fixture(scope="module")
def training_role(ops_platform: LocalPlatform) -> str:
    """A role in the platform's moto that the platform's credentials may assume (moto's STS
    answers AssumeRole for it; moto enforces no IAM, see docs/testing.md)."""
    s3 = ops_platform.s3_access()
    iam = boto3.client(
        "iam",
        endpoint_url=s3["endpoint_url"],
        region_name=s3["region"],
        aws_access_key_id=s3["aws_access_key_id"],
        aws_secret_access_key=s3["aws_secret_access_key"],
        verify=s3["ca_bundle"],
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}
        ],
    }
    name = unique("training-smoke")
    return str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])


def smoke_env(ops_platform: LocalPlatform, tmp_path: Path, role_arn: str, user: str, password: str) -> dict[str, str]:
    s3 = ops_platform.s3_access()
    url = str(ops_platform.metadata()["url"])
    outputs = {
        "trackingUrl": url,
        "trackingAdminUsername": ADMIN_USERNAME,
        "trackingAdminPassword": load_or_create(ops_platform.layout.secrets_file).admin_password,
        "artifactRoot": f"s3://{s3['bucket']}/mlflow",
        "trainingRoleArn": role_arn,
    }
    env = fake_pulumi(tmp_path, {"stack": "ops", "outputs": outputs, "secrets": ["trackingAdminPassword"]})
    return {
        **env,
        "MLFLOW_SMOKE_USERNAME": user,
        "MLFLOW_SMOKE_PASSWORD": password,
        "CURL_CA_BUNDLE": str(ops_platform.layout.ca_cert),
        "SMOKE_PYTHON": sys.executable,
        # The probe's credentials and endpoints: the platform's moto for STS and S3.
        "AWS_ACCESS_KEY_ID": s3["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": s3["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": s3["region"],
        "AWS_CA_BUNDLE": s3["ca_bundle"],
        "AWS_ENDPOINT_URL_STS": s3["endpoint_url"],
        "MLFLOW_S3_ENDPOINT_URL": s3["endpoint_url"],
    }


def get_user(ops_platform: LocalPlatform, user: str) -> requests.Response:
    admin = (ADMIN_USERNAME, load_or_create(ops_platform.layout.secrets_file).admin_password)
    return requests.get(
        str(ops_platform.metadata()["url"]) + "/api/2.0/mlflow/users/get",
        params={"username": user},
        auth=admin,
        verify=str(ops_platform.layout.ca_cert),
        timeout=30,
    )


def test_smoke_check_passes_on_a_first_deploy_and_after_a_password_change(
    ops_platform: LocalPlatform, training_role: str, tmp_path: Path
) -> None:
    user = unique("smoke")
    assert get_user(ops_platform, user).status_code == 404  # a first deploy: no smoke user yet
    first_env = smoke_env(ops_platform, tmp_path / "first", training_role, user, "Sm0ke-first-pw!")
    first = run("smoke-check.sh", "ops", env=first_env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"creating the smoke user {user}" in first.stdout
    assert "smoke check of ops passed: health api artifacts" in first.stdout
    created = get_user(ops_platform, user)
    assert created.status_code == 200 and created.json()["user"]["is_admin"] is False
    # The probe ran as the training role: it said so, and every step was allowed.
    assert f"as {training_role}" in first.stdout
    assert f"s3://{ops_platform.s3_access()['bucket']}/mlflow: put and get allowed" in first.stdout

    env = smoke_env(ops_platform, tmp_path / "again", training_role, user, "Sm0ke-first-pw!")
    again = run("smoke-check.sh", "ops", "api", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "creating" not in again.stdout and "setting" not in again.stdout
    # The admin's password is read only when the smoke user needs managing, and then with
    # --show-secrets (a plain `stack output` prints [secret]).
    assert ["stack", "output", "--stack", "ops", "trackingAdminPassword", "--show-secrets"] in pulumi_calls(first_env)
    assert not [call for call in pulumi_calls(env) if "trackingAdminPassword" in call]

    rotated = run(
        "smoke-check.sh",
        "ops",
        "api",
        env=smoke_env(ops_platform, tmp_path / "rotated", training_role, user, "Sm0ke-rotated-pw!"),
    )
    assert rotated.returncode == 0, rotated.stdout + rotated.stderr
    assert "setting the smoke user's password" in rotated.stdout


def test_smoke_check_refuses_an_admin_as_smoke_user(ops_platform: LocalPlatform, training_role: str, tmp_path: Path):
    env = smoke_env(ops_platform, tmp_path, training_role, ADMIN_USERNAME, "not-the-admin-password")
    result = run("smoke-check.sh", "ops", "api", env=env)
    assert result.returncode == 1
    assert f"::error::the smoke user {ADMIN_USERNAME} is an admin" in result.stdout


def test_smoke_check_parts_run_alone_and_unknown_parts_are_refused(
    ops_platform: LocalPlatform, training_role: str, tmp_path: Path
) -> None:
    env = smoke_env(ops_platform, tmp_path, training_role, "unused", "unused")
    health = run("smoke-check.sh", "ops", "health", env=env)
    assert health.returncode == 0 and health.stdout.endswith("passed: health\n"), health.stdout + health.stderr
    # health needs only the URL: neither the admin credentials nor AWS were touched.
    assert [call[2:] for call in pulumi_calls(env)] == [["--stack", "ops", "trackingUrl"]]
    bad = run("smoke-check.sh", "ops", "everything", env=env)
    assert bad.returncode == 2 and bad.stdout.strip() == (
        "::error::unknown part 'everything'; expected health, api or artifacts"
    )


# --- first-deploy-phase.sh ---------------------------------------------------------------------


def _export(*types: str) -> dict[str, Any]:
    return {"version": 3, "deployment": {"resources": [{"type": t, "urn": f"urn:{t}"} for t in types]}}


@pytest.mark.parametrize(
    ("export", "first"),
    [
        ({"version": 3, "deployment": {}}, "true"),  # a stack that was only initialised
        (_export("pulumi:pulumi:Stack", "aws:eks/cluster:Cluster", "aws:rds/instance:Instance"), "true"),
        (_export("pulumi:pulumi:Stack", "pulumi:providers:kubernetes", "kubernetes:apps/v1:Deployment"), "false"),
    ],
    ids=["empty", "after-phase-1", "deployed"],
)
def test_first_phase_only_while_the_state_holds_no_kubernetes_provider(
    tmp_path: Path, export: dict[str, Any], first: str
) -> None:
    env = fake_pulumi(tmp_path, {"stack": "prod", "outputs": {}, "export": export})
    env["GITHUB_OUTPUT"] = str(tmp_path / "github-output")
    result = run("first-deploy-phase.sh", "prod", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "github-output").read_text() == f"first={first}\n"


def test_first_deploy_phase_fails_when_the_state_cannot_be_read(tmp_path: Path):
    env = fake_pulumi(tmp_path, {"stack": "prod", "outputs": {}})
    result = run("first-deploy-phase.sh", "prod", env=env)
    assert result.returncode == 1
    assert "::error::cannot read the state of stack prod" in result.stdout

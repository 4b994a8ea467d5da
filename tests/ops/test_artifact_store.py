"""check_artifact_store.py: against moto *with IAM enforcement*, using the exact policy document
the IAM component renders for training jobs (taken from a mocked Pulumi run), and against the
local platform's S3 emulator in direct mode (no IAM there: the probe must simply pass)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core import set_initial_no_auth_action_count

from localplatform import LocalPlatform
from mlflowops import artifact_probe
from rendering.iam import training_job_policy
from tests.pulumi_harness import run_program, stack_file_config

from .conftest import Result, closed_port, run_script

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """The training role's policy as the IAM component renders it for the dev stack, with the
    artifact root it grants."""
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        mocks, outputs, _ = run_program("dev", stack_file_config("dev"))
    finally:
        asyncio.set_event_loop(None)
        loop.close()
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "training-artifacts").inputs["policy"])
    return {
        "policy": policy,
        "root": outputs["artifactRoot"],
        "bucket": outputs["artifactBucketName"],
        "bucket_arn": outputs["artifactBucketArn"],
        "kms_key_arn": outputs["artifactKmsKeyArn"],
    }


def test_the_rendered_policy_is_prefix_scoped(rendered: dict[str, Any]) -> None:
    """moto ignores StringLike conditions, so the list-prefix condition is asserted here."""
    policy, bucket_arn = rendered["policy"], rendered["bucket_arn"]
    prefix = rendered["root"].removeprefix(f"s3://{rendered['bucket']}/")
    assert prefix == "mlflow"
    assert policy == training_job_policy(bucket_arn, prefix, rendered["kms_key_arn"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["ArtifactObjects"]["Resource"] == f"{bucket_arn}/{prefix}/*"
    assert {"s3:GetObject", "s3:PutObject"} <= set(statements["ArtifactObjects"]["Action"])
    listing = statements["ListArtifactPrefix"]
    assert listing["Action"] == "s3:ListBucket" and listing["Resource"] == bucket_arn
    assert listing["Condition"] == {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}


class MotoIam:
    """An account where IAM is enforced after the first three (bootstrap) requests."""

    def __init__(self, rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
        self.rendered, self.monkeypatch = rendered, monkeypatch
        for key in list(os.environ):
            if key.startswith(("AWS_", "MLFLOW_S3")):
                monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def use(self, keys: dict[str, str]) -> None:
        self.monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
        self.monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])

    def setup(self) -> dict[str, str]:
        # Requests 1-3 are unauthenticated: an admin user and its key. Everything after is checked.
        iam = boto3.client("iam", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
        iam.create_user(UserName="admin")
        admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=json.dumps(admin_policy))
        self.use(iam.create_access_key(UserName="admin")["AccessKey"])

        iam = boto3.client("iam")
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=self.rendered["bucket"])
        s3.create_bucket(Bucket="another-team-bucket")
        s3.put_object(Bucket=self.rendered["bucket"], Key="elsewhere/existing.txt", Body=b"x")
        prober = iam.create_user(UserName="ci-prober")["User"]["Arn"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": prober}, "Action": "sts:AssumeRole"}],
        }
        role = iam.create_role(RoleName="training", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        iam.put_role_policy(
            RoleName="training", PolicyName="artifacts", PolicyDocument=json.dumps(self.rendered["policy"])
        )
        other_trust = {
            **trust,
            "Statement": [{**trust["Statement"][0], "Principal": {"AWS": "arn:aws:iam::123456789012:root"}}],
        }
        locked = iam.create_role(RoleName="not-for-ci", AssumeRolePolicyDocument=json.dumps(other_trust))["Role"]["Arn"]
        assume = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": [role, locked]}],
        }
        iam.put_user_policy(UserName="ci-prober", PolicyName="assume", PolicyDocument=json.dumps(assume))
        prober_keys = iam.create_access_key(UserName="ci-prober")["AccessKey"]
        self.use(prober_keys)  # from here on the probe runs as the CI user
        return {"role": role, "locked": locked}


def test_probe_under_moto_iam_with_the_rendered_policy(
    rendered: dict[str, Any], monkeypatch: pytest.MonkeyPatch, invoke: Callable[..., Result]
) -> None:
    account = MotoIam(rendered, monkeypatch)
    results: dict[str, Result] = {}

    @set_initial_no_auth_action_count(3)
    def scenario() -> None:
        roles = account.setup()
        root = rendered["root"]
        probe = artifact_probe.main
        results["under"] = invoke(probe, "--artifact-root", root, "--role-arn", roles["role"], "--json")
        results["outside"] = invoke(
            probe, "--artifact-root", f"s3://{rendered['bucket']}/elsewhere", "--role-arn", roles["role"]
        )
        results["other"] = invoke(
            probe, "--artifact-root", "s3://another-team-bucket/mlflow", "--role-arn", roles["role"], "--json"
        )
        results["no-role"] = invoke(probe, "--artifact-root", root)
        results["locked"] = invoke(probe, "--artifact-root", root, "--role-arn", roles["locked"])

    with mock_aws(config={"core": {"mock_credentials": False}}):
        scenario()

    under = results["under"]
    assert under.code == 0, under
    outcomes = {op: r["outcome"] for op, r in under.json["results"].items()}
    # Training roles get no DeleteObject (gc runs as the server): reported, not fatal.
    assert outcomes == {"put": "allowed", "get": "allowed", "list": "allowed", "delete": "denied"}
    assert under.json["probe_key"].startswith("mlflow/_mlflow_probe/")

    results["outside"].assert_one_line_error("put denied", "get denied")
    assert results["outside"].code == 1
    other = results["other"]
    other.assert_one_line_error("s3://another-team-bucket/mlflow: put denied, get denied")
    assert {op: r["outcome"] for op, r in other.json["results"].items()}["list"] == "denied"
    results["no-role"].assert_one_line_error("put denied")  # the CI user itself may only assume the role
    results["locked"].assert_one_line_error("cannot assume", "not-for-ci", "AccessDenied")
    assert results["locked"].code == 1


def test_probe_passes_on_the_platform_s3_in_direct_mode(ops_platform: LocalPlatform, ops_env: dict[str, str]) -> None:
    """As ``python scripts/check_artifact_store.py``, with exactly the client environment."""
    env = ops_platform.client_env()
    result = run_script(
        "check_artifact_store", "--artifact-root", "s3://mlflow-local-artifacts/mlflow", "--json", env=env
    )
    assert result.code == 0, result
    assert {op: r["outcome"] for op, r in result.json["results"].items()} == dict.fromkeys(
        ("put", "get", "list", "delete"), "allowed"
    )
    assert result.json["endpoint_url"] == env["MLFLOW_S3_ENDPOINT_URL"]
    missing = run_script("check_artifact_store", "--artifact-root", "s3://no-such-bucket/mlflow", env=env)
    missing.assert_one_line_error("put error", "NoSuchBucket")
    unreachable = {**env, "MLFLOW_S3_ENDPOINT_URL": f"https://127.0.0.1:{closed_port()}", "AWS_MAX_ATTEMPTS": "1"}
    down = run_script("check_artifact_store", "--artifact-root", "s3://mlflow-local-artifacts/mlflow", env=unreachable)
    down.assert_one_line_error("put error", "Could not connect")


def test_dry_run_touches_nothing(invoke: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"https://127.0.0.1:{closed_port()}")  # would fail if contacted
    result = invoke(artifact_probe.main, "--artifact-root", "s3://bucket/prefix", "--dry-run", "--json")
    assert result.code == 0 and result.json["probe_key"].startswith("prefix/_mlflow_probe/")


def test_usage_errors(invoke: Callable[..., Result]) -> None:
    bad = invoke(artifact_probe.main, "--artifact-root", "gs://bucket/x")
    bad.assert_one_line_error("--artifact-root must be s3://")
    assert bad.code == 2

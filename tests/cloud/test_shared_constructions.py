"""One construction per repeated object family in components/ (issue 19): every IRSA role of the
cluster, its ingress path and its autoscaler comes from ``components.irsa.irsa_role``, and every
bucket from ``components.s3_common.hardened_bucket``, and every service role's trust from
``components.trust.service_trust_policy``. The helpers' properties are asserted on the
inputs AWS would receive; the source checks keep the three IRSA callers and the two bucket
callers from growing a second copy."""

from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.irsa import ClusterOidc, irsa_role
from components.s3_common import encryption_rule
from components.trust import service_trust_policy
from tests.pulumi_harness import ROOT, RecordingMocks, captured_program, run_mocked

ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC"
PROVIDER = f"arn:aws:iam::123456789012:oidc-provider/{ISSUER}"
ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
BUCKET = "aws:s3/bucket:Bucket"
CHAIN = ("bucket", "public-access-block", "ownership", "sse", "versioning", "lifecycle", "policy")
"""The order of a bucket's configuration calls (S3 OperationAborted otherwise: ``s3_common.after``)."""


class _Holder(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("test:index:Holder", name, {}, None)


def _irsa(**kwargs: Any) -> tuple[RecordingMocks, dict[str, Any]]:
    def program() -> dict[str, Any]:
        parent = _Holder("holder")
        made = irsa_role(
            "holder-ctl",
            ClusterOidc(PROVIDER, ISSUER),
            ("tools", "controller"),
            pulumi.ResourceOptions(parent=parent),
            tags={"team": "ml"},
            **kwargs,
        )
        return {"grants": [grant.urn for grant in made.grants]}

    mocks, outputs, _ = run_mocked(program)
    return mocks, outputs


def test_an_irsa_role_trusts_one_service_account_of_the_cluster_through_sts_only():
    """EKS User Guide, IRSA technical overview, "IAM role configuration": the cluster's OIDC
    provider as federated principal, ``sub`` the one service account, ``aud`` STS."""
    mocks, _ = _irsa()
    role = mocks.one(ROLE)
    assert role.name == "holder-ctl"
    assert role.inputs["description"] == "tools/controller (IRSA)"
    assert role.inputs["tags"] == {"team": "ml"}
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Federated": PROVIDER}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{ISSUER}:sub": "system:serviceaccount:tools:controller",
            f"{ISSUER}:aud": "sts.amazonaws.com",
        }
    }
    assert "test:index:Holder$" in role.urn  # a child of the caller: the caller's URNs stay


def test_an_irsa_roles_permissions_are_its_own_and_are_what_users_wait_for():
    arn = "arn:aws:iam::aws:policy/ReadOnlyAccess"
    mocks, outputs = _irsa(
        owner="cluster-a", inline_policy='{"Version": "2012-10-17"}', policy_attachments={"holder-ctl-ro": arn}
    )
    assert mocks.one(ROLE).inputs["description"] == "cluster-a: tools/controller (IRSA)"
    policy = mocks.one(ROLE_POLICY)
    attachment = mocks.one(ATTACHMENT)
    assert (policy.name, policy.inputs["policy"]) == ("holder-ctl", '{"Version": "2012-10-17"}')
    assert (attachment.name, attachment.inputs["policyArn"]) == ("holder-ctl-ro", arn)
    assert {"holder-ctl"} <= mocks.dependencies["holder-ctl"] and "holder-ctl" in mocks.dependencies["holder-ctl-ro"]
    assert attachment.inputs["role"] == "holder-ctl-7f3a2b"  # the role's name
    assert sorted(outputs["grants"]) == sorted([policy.urn, attachment.urn])


def test_an_irsa_role_without_permissions_grants_nothing():
    mocks, outputs = _irsa()
    assert not mocks.of_type(ROLE_POLICY) and not mocks.of_type(ATTACHMENT)
    assert outputs["grants"] == []


IRSA_CALLERS = ("components/cluster.py", "components/cluster_addons.py", "components/cluster_scaling.py")
BUCKET_CALLERS = ("components/artifact_store.py", "components/artifact_replica.py")
BUCKET_TYPES = {
    "Bucket",
    "BucketPublicAccessBlock",
    "BucketOwnershipControls",
    "BucketServerSideEncryptionConfiguration",
    "BucketVersioning",
    "BucketLifecycleConfiguration",
    "BucketPolicy",
}


def _calls(path: str) -> set[str]:
    """What a module calls (``aws.s3.Bucket(…)`` → ``Bucket``) or defines itself."""
    names: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", ""))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


@pytest.mark.parametrize("path", IRSA_CALLERS)
def test_the_cluster_components_build_irsa_roles_only_through_the_one_helper(path: str):
    names = _calls(path)
    assert "irsa_role" in names
    assert not names & {"irsa_trust_policy", "irsa_trust_statement", "ServiceAccountIdentity"}, path
    assert "AssumeRoleWithWebIdentity" not in Path(ROOT / path).read_text()


@pytest.mark.parametrize("path", BUCKET_CALLERS)
def test_the_artifact_components_harden_buckets_only_through_the_one_chain(path: str):
    names = _calls(path)
    assert "hardened_bucket" in names
    assert not names & BUCKET_TYPES, f"{path} creates {sorted(names & BUCKET_TYPES)} itself"


def test_every_bucket_of_the_prod_program_has_the_whole_chain_in_order():
    """prod has them all: the artifact bucket, its replica, and each one's access-log bucket."""
    mocks = captured_program("prod", "create")[0]
    prefixes = sorted(bucket.name.removesuffix("-bucket") for bucket in mocks.of_type(BUCKET))
    assert prefixes == [
        "mlflow-prod-artifacts",
        "mlflow-prod-artifacts-logs",
        "mlflow-prod-artifacts-replica",
        "mlflow-prod-artifacts-replica-logs",
    ]
    for prefix in prefixes:
        for earlier, later in itertools.pairwise(CHAIN):
            assert f"{prefix}-{earlier}" in mocks.dependencies[f"{prefix}-{later}"], (prefix, later, earlier)


def test_sse_kms_with_a_bucket_key_or_sse_s3():
    assert encryption_rule("arn:key", bucket_key=True) == {
        "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": "arn:key"},
        "bucket_key_enabled": True,
    }
    assert encryption_rule(None, bucket_key=False) == {
        "apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}
    }


SERVICE_ROLE_CALLERS = (
    "components/cluster.py",
    "components/database.py",
    "components/network.py",
    "components/artifact_replica.py",
)


def _trust(**kwargs: Any) -> dict[str, Any]:
    mocks_outputs = run_mocked(lambda: {"trust": service_trust_policy("svc.amazonaws.com", **kwargs)})[1]
    return json.loads(mocks_outputs["trust"])


def test_a_service_role_is_pinned_to_this_account_and_resource_when_the_service_says_which():
    """The confused-deputy guard: ``aws:SourceAccount`` and ``aws:SourceArn`` when given."""
    (statement,) = _trust(source_account="123456789012", source_arn="arn:aws:s3:::b")["Statement"]
    assert statement == {
        "Effect": "Allow",
        "Principal": {"Service": "svc.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": "123456789012"},
            "ArnLike": {"aws:SourceArn": "arn:aws:s3:::b"},
        },
    }
    (bare,) = _trust(actions=["sts:AssumeRole", "sts:TagSession"])["Statement"]
    assert "Condition" not in bare and bare["Action"] == ["sts:AssumeRole", "sts:TagSession"]


@pytest.mark.parametrize("path", SERVICE_ROLE_CALLERS)
def test_service_role_trusts_are_written_once(path: str):
    source = (ROOT / path).read_text()
    assert "service_trust_policy" in _calls(path)
    assert '"Principal": {"Service"' not in source, f"{path} writes a service trust document itself"

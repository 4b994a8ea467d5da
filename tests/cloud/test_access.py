"""IAM: the exact actions and resources each role gets, and who can assume it."""

from __future__ import annotations

import json
from typing import Any

from components.access import ArtifactGrant, TrackingServerAccess, TrainingJobAccess
from stackconfig.schema import ArtifactAccessMode, ExtraPrincipal, ServiceAccountRef
from tests.pulumi_harness import ACCOUNT_ID, RecordingMocks, run_mocked

BUCKET_ARN = "arn:aws:s3:::mlflow-artifacts-prod"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/abcd"
OIDC_ARN = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC123"
ISSUER = "oidc.eks.us-east-1.amazonaws.com/id/ABC123"
TRAINING_SA = ServiceAccountRef("ml-training", "training-job")


def build(
    mode: ArtifactAccessMode, *, key: str | None = KEY_ARN, extra: tuple[ExtraPrincipal, ...] = ()
) -> RecordingMocks:
    def program() -> dict[str, Any]:
        grant = ArtifactGrant(bucket_arn=BUCKET_ARN, prefix="mlflow", kms_key_arn=key)
        training = TrainingJobAccess(
            "train",
            {
                "artifacts": grant,
                "access_mode": mode,
                "extra_principals": extra,
                "trust": {"oidc_provider_arn": OIDC_ARN, "issuer_host_path": ISSUER, "service_accounts": [TRAINING_SA]},
            },
        )
        server = TrackingServerAccess(
            "server",
            {
                "artifacts": grant,
                "access_mode": mode,
                "trust": {
                    "oidc_provider_arn": OIDC_ARN,
                    "issuer_host_path": ISSUER,
                    "service_accounts": [ServiceAccountRef("mlflow", "mlflow-server")],
                },
            },
        )
        return {"training": training.role_arn, "server": server.role_arn}

    mocks, _, _ = run_mocked(program)
    return mocks


def statements(mocks: RecordingMocks, policy_name: str) -> dict[str, dict[str, Any]]:
    document = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", policy_name).inputs["policy"])
    return {s["Sid"]: s for s in document["Statement"]}


def test_training_role_can_put_and_get_under_the_prefix_only():
    s = statements(build("direct"), "train-artifacts")
    assert s["ArtifactObjects"] == {
        "Sid": "ArtifactObjects",
        "Effect": "Allow",
        "Action": ["s3:AbortMultipartUpload", "s3:GetObject", "s3:ListMultipartUploadParts", "s3:PutObject"],
        "Resource": f"{BUCKET_ARN}/mlflow/*",
    }
    assert s["ListArtifactPrefix"] == {
        "Sid": "ListArtifactPrefix",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": BUCKET_ARN,
        "Condition": {"StringLike": {"s3:prefix": ["mlflow", "mlflow/*"]}},
    }
    assert s["ArtifactKey"] == {
        "Sid": "ArtifactKey",
        "Effect": "Allow",
        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
        "Resource": KEY_ARN,
    }
    assert set(s) == {"ArtifactObjects", "ListArtifactPrefix", "ArtifactKey"}


def test_no_wildcards_anywhere_in_artifact_policies():
    for mode in ("direct", "proxied"):
        mocks = build(mode)
        for policy in mocks.of_type("aws:iam/rolePolicy:RolePolicy"):
            for statement in json.loads(policy.inputs["policy"])["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in action for action in actions), statement
                assert statement["Resource"] not in ("*", f"{BUCKET_ARN}/*"), statement
                assert statement["Effect"] == "Allow"


def test_sse_s3_drops_the_kms_statement():
    assert "ArtifactKey" not in statements(build("direct", key=None), "train-artifacts")


def test_proxied_mode_training_role_has_no_artifact_access_and_server_writes():
    mocks = build("proxied")
    assert [p.name for p in mocks.of_type("aws:iam/rolePolicy:RolePolicy")] == ["server-artifacts"]
    s = statements(mocks, "server-artifacts")
    assert s["ArtifactObjects"]["Action"] == [
        "s3:AbortMultipartUpload",
        "s3:DeleteObject",
        "s3:GetObject",
        "s3:ListMultipartUploadParts",
        "s3:PutObject",
    ]
    assert s["ArtifactKey"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]


def test_direct_mode_server_reads_lists_and_deletes_but_never_writes():
    s = statements(build("direct"), "server-artifacts")
    assert s["ArtifactObjects"]["Action"] == ["s3:DeleteObject", "s3:GetObject"]
    assert s["ArtifactObjects"]["Resource"] == f"{BUCKET_ARN}/mlflow/*"
    assert s["ListArtifactPrefix"]["Condition"] == {"StringLike": {"s3:prefix": ["mlflow", "mlflow/*"]}}
    assert s["ArtifactKey"]["Action"] == ["kms:Decrypt"]


def trust(mocks: RecordingMocks, role: str) -> dict[str, dict[str, Any]]:
    document = json.loads(mocks.one("aws:iam/role:Role", role).inputs["assumeRolePolicy"])
    return {s["Sid"]: s for s in document["Statement"]}


def test_irsa_trust_pins_sub_and_aud():
    t = trust(build("direct"), "train-role")
    assert t == {
        "EksServiceAccounts": {
            "Sid": "EksServiceAccounts",
            "Effect": "Allow",
            "Principal": {"Federated": OIDC_ARN},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{ISSUER}:sub": "system:serviceaccount:ml-training:training-job",
                    f"{ISSUER}:aud": "sts.amazonaws.com",
                }
            },
        }
    }
    server = trust(build("direct"), "server-role")["EksServiceAccounts"]
    assert server["Condition"]["StringEquals"][f"{ISSUER}:sub"] == "system:serviceaccount:mlflow:mlflow-server"


SAGEMAKER_JOBS = f"arn:aws:sagemaker:us-east-1:{ACCOUNT_ID}:training-job/mlflow-*"


def test_extra_principals_are_scoped():
    mocks = build(
        "direct",
        extra=(
            ExtraPrincipal("Service", "sagemaker.amazonaws.com", SAGEMAKER_JOBS),
            ExtraPrincipal("AWS", f"arn:aws:iam::{ACCOUNT_ID}:role/ci"),
        ),
    )
    t = trust(mocks, "train-role")
    sagemaker = next(s for s in t.values() if s["Principal"] == {"Service": "sagemaker.amazonaws.com"})
    assert sagemaker["Action"] == "sts:AssumeRole"
    assert sagemaker["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
        "ArnLike": {"aws:SourceArn": SAGEMAKER_JOBS},
    }
    ci = next(s for s in t.values() if s["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:role/ci"})
    assert ci["Action"] == "sts:AssumeRole"
    assert len(t) == 3

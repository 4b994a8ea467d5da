"""IAM policy documents for artifact access, as plain dicts.

Rendered here (not with the ``get_policy_document`` invoke) so that the IAM component, the
unit tests and the artifact-store probe all see the exact document AWS will receive.
"""

from __future__ import annotations

from collections.abc import Sequence

from .mlflow_server import ArtifactAccessMode

PolicyDocument = dict[str, object]
Statement = dict[str, object]

TRAINING_OBJECT_ACTIONS: tuple[str, ...] = (
    "s3:PutObject",  # log artifacts and models
    "s3:GetObject",  # load models and read artifacts back (the guide's failure #1 is missing this)
    "s3:AbortMultipartUpload",  # large models are uploaded in parts
    "s3:ListMultipartUploadParts",
)
SERVER_READ_ACTIONS: tuple[str, ...] = ("s3:GetObject",)
SERVER_WRITE_ACTIONS: tuple[str, ...] = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
SERVER_DELETE_ACTIONS: tuple[str, ...] = ("s3:DeleteObject",)  # `mlflow gc` removes deleted runs' artifacts
KMS_READ_ACTIONS: tuple[str, ...] = ("kms:Decrypt",)
KMS_WRITE_ACTIONS: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey")


def _object_arn(bucket_arn: str, prefix: str) -> str:
    return f"{bucket_arn}/{prefix}/*"


def artifact_access_policy(
    bucket_arn: str,
    prefix: str,
    kms_key_arn: str | None,
    *,
    object_actions: Sequence[str],
    kms_actions: Sequence[str],
) -> PolicyDocument:
    """Object actions on ``<bucket>/<prefix>/*``, listing limited to the prefix, KMS on the key.

    Nothing here is granted on ``*`` or on the whole bucket's objects (CKV_AWS_288/355).
    """
    statements: list[Statement] = [
        {
            "Sid": "ArtifactObjects",
            "Effect": "Allow",
            "Action": sorted(object_actions),
            "Resource": _object_arn(bucket_arn, prefix),
        },
        {
            "Sid": "ListArtifactPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        },
    ]
    if kms_key_arn is not None:
        statements.append(
            {"Sid": "ArtifactKey", "Effect": "Allow", "Action": sorted(kms_actions), "Resource": kms_key_arn}
        )
    return {"Version": "2012-10-17", "Statement": statements}


def training_job_policy(bucket_arn: str, prefix: str, kms_key_arn: str | None) -> PolicyDocument:
    """What a training job needs in ``direct`` mode: write *and* read its artifacts."""
    return artifact_access_policy(
        bucket_arn, prefix, kms_key_arn, object_actions=TRAINING_OBJECT_ACTIONS, kms_actions=KMS_WRITE_ACTIONS
    )


def tracking_server_policy(
    access_mode: ArtifactAccessMode, bucket_arn: str, prefix: str, kms_key_arn: str | None
) -> PolicyDocument:
    """Read and list for the UI's artifact views in both modes, delete for garbage collection,
    and write only in ``proxied`` mode where the server uploads on the clients' behalf."""
    actions = SERVER_READ_ACTIONS + SERVER_DELETE_ACTIONS
    kms = KMS_READ_ACTIONS
    if access_mode == "proxied":
        actions += SERVER_WRITE_ACTIONS
        kms = KMS_WRITE_ACTIONS
    return artifact_access_policy(bucket_arn, prefix, kms_key_arn, object_actions=actions, kms_actions=kms)


def irsa_trust_statement(oidc_provider_arn: str, issuer_host_path: str, subjects: Sequence[str]) -> Statement:
    """Let exactly these Kubernetes service accounts assume the role (IRSA), nothing else:
    both ``sub`` and ``aud`` are pinned with StringEquals."""
    subject: str | list[str] = subjects[0] if len(subjects) == 1 else sorted(subjects)
    return {
        "Sid": "EksServiceAccounts",
        "Effect": "Allow",
        "Principal": {"Federated": oidc_provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {
                f"{issuer_host_path}:sub": subject,
                f"{issuer_host_path}:aud": "sts.amazonaws.com",
            }
        },
    }


def service_trust_statement(service: str, account_id: str, source_arn: str) -> Statement:
    """An AWS service (e.g. SageMaker) may assume the role only on behalf of this account and only
    for the configured resources (``aws:SourceAccount`` and ``aws:SourceArn``: the confused-deputy
    guard). SageMaker documents both keys in a training job's execution-role trust
    (https://docs.aws.amazon.com/sagemaker/latest/dg/security-confused-deputy-prevention.html,
    "SageMaker Training Jobs"); ArnLike because the configured ARN may end in a job-name pattern."""
    if not source_arn:
        raise ValueError(f"{service}: a service principal needs the aws:SourceArn it may assume the role for")
    return {
        "Sid": "Service" + "".join(part.capitalize() for part in service.split(".")[0].split("-")),
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}, "ArnLike": {"aws:SourceArn": source_arn}},
    }


def aws_principal_trust_statement(principal: str) -> Statement:
    return {
        "Sid": "AwsPrincipal" + "".join(ch for ch in principal.split(":")[-1] if ch.isalnum())[:40],
        "Effect": "Allow",
        "Principal": {"AWS": principal},
        "Action": "sts:AssumeRole",
    }


GC_OBJECT_ACTIONS: tuple[str, ...] = ("s3:DeleteObject",)
"""``mlflow gc`` (direct mode) lists a deleted run's prefix and deletes the objects (DeleteObjects
is authorised per object by s3:DeleteObject). It reads nothing, so it needs no KMS permission."""


def garbage_collection_policy(bucket_arn: str, prefix: str) -> PolicyDocument:
    """The gc CronJob's role: list the artifact prefix, delete objects under it; nothing else."""
    return artifact_access_policy(bucket_arn, prefix, None, object_actions=GC_OBJECT_ACTIONS, kms_actions=())

"""Disaster recovery for the artifact bucket: S3 replication to a bucket in another region
(``artifacts.replicationRegion``), with its own KMS key, the same hardening, and a replication
role that can do exactly what replication needs.

Sources: S3 User Guide, "Replicating objects within and across Regions" (versioning on both
buckets), "Setting up permissions for live replication" (the role's actions and trust), and
"Replicating encrypted objects (SSE-S3, SSE-KMS, …)" (``SseKmsEncryptedObjects`` opt-in,
``ReplicaKmsKeyID``, ``kms:Decrypt`` on the source key and ``kms:Encrypt`` on the replica key,
scoped with ``kms:ViaService``; with S3 Bucket Keys the encryption context is the bucket ARN).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws

from components.kms import rotating_key
from components.s3_common import access_logs, after, artifact_lifecycle_rules, encryption_rule, hardened_bucket
from components.trust import service_trust_policy
from rendering.key_policies import replica_key_policy
from stackconfig.schema import ArtifactsConfig

if TYPE_CHECKING:
    from components.artifact_store import ArtifactStore


def replication_role_policy(
    source_arn: str, replica_arn: str, source_key: str | None, replica_key: str | None, regions: tuple[str, str]
) -> dict[str, Any]:
    """The replication role's permissions: read the source's versions and configuration, write
    replicas (objects, deletes, tags), and the two KMS keys only through S3 of their region."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadReplicationConfiguration",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": source_arn,
        },
        {
            "Sid": "ReadSourceVersions",
            "Effect": "Allow",
            "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
            "Resource": f"{source_arn}/*",
        },
        {
            "Sid": "WriteReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            "Resource": f"{replica_arn}/*",
        },
    ]
    source_region, replica_region = regions
    if source_key and replica_key:
        statements += [
            {
                "Sid": "DecryptSourceObjects",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": source_key,
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"s3.{source_region}.amazonaws.com"},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [source_arn, f"{source_arn}/*"]},
                },
            },
            {
                "Sid": "EncryptReplicas",
                "Effect": "Allow",
                "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": replica_key,
                "Condition": {
                    "StringEquals": {"kms:ViaService": f"s3.{replica_region}.amazonaws.com"},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [replica_arn, f"{replica_arn}/*"]},
                },
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def replicate(
    store: ArtifactStore,
    name: str,
    settings: ArtifactsConfig,
    tags: dict[str, str],
    region: str,
    key_administrators: pulumi.Input[Sequence[str]] | None = None,
) -> tuple[aws.s3.Bucket, aws.iam.Role]:
    """The replica bucket in ``settings.replication_region`` and the replication rule on the
    source bucket; returns the replica bucket and the replication role. Children of ``store``,
    named ``<name>-replica…``. With ``key_administrators``, the replica key gets an explicit policy
    (administrators, and the replication role encrypting through S3); the source key's policy
    admits the role in ``infra.stack``."""
    replica_region = settings.replication_region
    child = pulumi.ResourceOptions(parent=store)
    provider = aws.Provider(f"{name}-replica-region", region=replica_region, opts=child)
    there = pulumi.ResourceOptions(parent=store, provider=provider)
    replica_name = f"{name}-replica"

    account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=store)).account_id
    role = aws.iam.Role(
        f"{name}-replication",
        description="S3 replication of the MLflow artifact bucket to its disaster-recovery replica",
        assume_role_policy=service_trust_policy(
            "s3.amazonaws.com", source_account=account, source_arn=store.bucket.arn
        ),
        tags=tags,
        opts=child,
    )
    replica_key = (
        rotating_key(
            f"{replica_name}-key",
            f"{name}: MLflow artifact replica encryption",
            tags,
            there,
            None
            if key_administrators is None
            else pulumi.Output.all(key_administrators, role.arn).apply(
                lambda values: json.dumps(replica_key_policy(values[0], values[1], replica_region))
            ),
        )
        if store.kms_key is not None
        else None
    )
    replica = hardened_bucket(
        replica_name,
        there,
        force_destroy=settings.force_destroy,
        tags=tags,
        # A Bucket Key even under SSE-S3, where S3 ignores it (as first deployed; unchanged).
        encryption=encryption_rule(replica_key.arn if replica_key is not None else None, bucket_key=True),
        lifecycle_rules=artifact_lifecycle_rules(settings),
    )
    bucket, versioning = replica.bucket, replica.versioning
    if settings.access_logging:
        # Access logs go to a bucket in the same region as the bucket logged.
        access_logs(replica_name, replica, there, settings=settings, tags=tags)

    source_key_arn = store.kms_key.arn if store.kms_key is not None else None
    replica_key_arn = replica_key.arn if replica_key is not None else None
    role_policy = aws.iam.RolePolicy(
        f"{name}-replication",
        role=role.id,
        policy=pulumi.Output.all(store.bucket.arn, bucket.arn, source_key_arn, replica_key_arn).apply(
            lambda arns: json.dumps(
                replication_role_policy(arns[0], arns[1], arns[2], arns[3], (region, replica_region))
            )
        ),
        opts=child,
    )
    destination: aws.s3.BucketReplicationConfigRuleDestinationArgsDict = {
        "bucket": bucket.arn,
        "storage_class": "STANDARD",
    }
    rule: aws.s3.BucketReplicationConfigRuleArgsDict = {
        "id": "disaster-recovery",
        "status": "Enabled",
        "priority": 1,
        "filter": {"prefix": ""},
        "delete_marker_replication": {"status": "Enabled"},
        "destination": destination,
    }
    if replica_key is not None:
        destination["encryption_configuration"] = {"replica_kms_key_id": replica_key.arn}
        rule["source_selection_criteria"] = {"sse_kms_encrypted_objects": {"status": "Enabled"}}
    aws.s3.BucketReplicationConfig(
        f"{name}-replication",
        bucket=store.bucket.id,
        role=role.arn,
        rules=[rule],
        # S3 refuses a replication configuration unless both buckets are versioned; the role must
        # hold its permissions before S3 first assumes it.
        opts=child.merge(after(store.versioning, versioning, role_policy)),
    )
    return bucket, role

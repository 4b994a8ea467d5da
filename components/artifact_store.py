"""The S3 artifact bucket, hardened: the place every model and artifact of the platform lives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.artifact_replica import replicate
from components.kms import rotating_key
from components.s3_common import (
    EVERY_OBJECT,
    access_logs,
    after,
    artifact_lifecycle_rules,
    encryption_rule,
    hardened_bucket,
    tls_only_statement,
)
from stackconfig.schema import ArtifactsConfig

__all__ = ["EVERY_OBJECT", "ArtifactStore", "ArtifactStoreArgs", "after", "tls_only_statement"]


class ArtifactStoreArgs(TypedDict):
    settings: ArtifactsConfig
    tags: NotRequired[dict[str, str]]
    region: NotRequired[str]
    """The bucket's region (the stack's ``aws:region``); scopes the replication role's KMS use."""
    key_administrators: NotRequired[pulumi.Input[Sequence[str]]]
    """``kms.administratorArns`` (``infra.keys``): the replica key's administrators."""


class ArtifactStore(pulumi.ComponentResource):
    """Bucket with all four Block Public Access flags, ACLs disabled, SSE-KMS with a rotating
    customer key (SSE-S3 selectable), versioning, lifecycle, TLS-only policy, and optional
    server access logging to a separate, equally locked-down log bucket.

    Each bucket's configuration is serialised (:func:`after`): public access block → ownership
    controls → encryption → versioning → lifecycle → policy (→ logging)."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str | None]
    artifact_root: pulumi.Output[str]
    """``s3://<bucket>/<prefix>``: the server's ``--default-artifact-root``/``--artifacts-destination``."""

    def __init__(self, name: str, args: ArtifactStoreArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:ArtifactStore", name, {}, opts)
        settings = args["settings"]
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)

        self.kms_key: aws.kms.Key | None = None
        if settings.encryption == "kms":
            self.kms_key = rotating_key(f"{name}-key", f"{name}: MLflow artifact encryption", tags, child)
            aws.kms.Alias(
                f"{name}-key-alias", name=f"alias/{name}-artifacts", target_key_id=self.kms_key.key_id, opts=child
            )

        key_arn = self.kms_key.arn if self.kms_key else None
        artifacts = hardened_bucket(
            name,
            child,
            force_destroy=settings.force_destroy,
            tags=tags,
            encryption=encryption_rule(key_arn, bucket_key=key_arn is not None),
            lifecycle_rules=artifact_lifecycle_rules(settings),
        )
        self.bucket, self.versioning, self.bucket_policy = artifacts.bucket, artifacts.versioning, artifacts.policy

        self.log_bucket: aws.s3.Bucket | None = None
        if settings.access_logging:
            self.log_bucket = access_logs(name, artifacts, child, settings=settings, tags=tags).bucket

        self.replica_bucket: aws.s3.Bucket | None = None
        self.replication_role: aws.iam.Role | None = None
        if settings.replication_region:
            region = args.get("region") or pulumi.Config("aws").require("region")
            self.replica_bucket, self.replication_role = replicate(
                self, name, settings, tags, region, args.get("key_administrators")
            )

        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.kms_key_arn = self.kms_key.arn if self.kms_key else pulumi.Output.from_input(None)
        self.artifact_root = pulumi.Output.concat("s3://", self.bucket.bucket, "/", settings.prefix)
        self.register_outputs(
            {
                "bucketName": self.bucket_name,
                "bucketArn": self.bucket_arn,
                "kmsKeyArn": self.kms_key_arn,
                "artifactRoot": self.artifact_root,
                "replicaBucketArn": self.replica_bucket.arn if self.replica_bucket else None,
            }
        )

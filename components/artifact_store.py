"""The S3 artifact bucket, hardened: the place every model and artifact of the platform lives."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.artifact_replica import replicate
from components.kms import rotating_key
from components.s3_common import EVERY_OBJECT, after, tls_only_statement
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

        self.bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=settings.force_destroy, tags=tags, opts=child)
        ownership = self._harden(name, self.bucket, tags)
        sse = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sse",
            bucket=self.bucket.id,
            rules=[self._encryption_rule()],
            opts=child.merge(after(ownership)),
        )
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=self.bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child.merge(after(sse)),
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=self.bucket.id,
            rules=[
                {
                    "id": "abort-incomplete-multipart-uploads",
                    "status": "Enabled",
                    "filter": EVERY_OBJECT,
                    "abort_incomplete_multipart_upload": {
                        "days_after_initiation": settings.abort_incomplete_multipart_upload_days
                    },
                },
                {
                    "id": "expire-noncurrent-versions",
                    "status": "Enabled",
                    "filter": EVERY_OBJECT,
                    "noncurrent_version_expiration": {"noncurrent_days": settings.noncurrent_version_expiration_days},
                },
            ],
            opts=child.merge(after(self.versioning)),
        )
        self.bucket_policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=self.bucket.id,
            policy=pulumi.Output.json_dumps(
                {"Version": "2012-10-17", "Statement": [tls_only_statement(self.bucket.arn)]}
            ),
            opts=child.merge(after(lifecycle)),
        )

        self.log_bucket: aws.s3.Bucket | None = None
        if settings.access_logging:
            self.log_bucket, log_policy = self._log_bucket(name, settings, tags, self.bucket)
            aws.s3.BucketLogging(
                f"{name}-logging",
                bucket=self.bucket.id,
                target_bucket=self.log_bucket.id,
                target_prefix="s3-access/",
                # The log bucket must admit the logging service before logging points at it.
                opts=child.merge(after(self.bucket_policy, log_policy)),
            )

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

    def _encryption_rule(self) -> aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict:
        if self.kms_key is None:
            return {"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}
        return {
            "apply_server_side_encryption_by_default": {
                "sse_algorithm": "aws:kms",
                "kms_master_key_id": self.kms_key.arn,
            },
            # One KMS call per bucket key period instead of per object: cheaper and faster.
            "bucket_key_enabled": True,
        }

    def _harden(
        self, name: str, bucket: aws.s3.Bucket, tags: dict[str, str], child: pulumi.ResourceOptions | None = None
    ) -> aws.s3.BucketOwnershipControls:
        """Public access blocked on all four flags and ACLs disabled, for any bucket we create.
        Returns the last of the two, which the bucket's next configuration waits for."""
        child = child or pulumi.ResourceOptions(parent=self)
        public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        return aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child.merge(after(public_access_block)),
        )

    def _log_bucket(
        self,
        name: str,
        settings: ArtifactsConfig,
        tags: dict[str, str],
        source: aws.s3.Bucket,
        child: pulumi.ResourceOptions | None = None,
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        """Target of ``source``'s server access logging, in its region (``child`` carries the
        provider). S3 delivers access logs only to SSE-S3 buckets, and with ACLs disabled it needs
        a bucket policy for the logging service principal."""
        log_name = f"{name}-logs"
        child = child or pulumi.ResourceOptions(parent=self)
        log_bucket = aws.s3.Bucket(f"{log_name}-bucket", force_destroy=settings.force_destroy, tags=tags, opts=child)
        ownership = self._harden(log_name, log_bucket, tags, child)
        sse = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{log_name}-sse",
            bucket=log_bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child.merge(after(ownership)),
        )
        versioning = aws.s3.BucketVersioning(
            f"{log_name}-versioning",
            bucket=log_bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=child.merge(after(sse)),
        )
        lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{log_name}-lifecycle",
            bucket=log_bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": EVERY_OBJECT,
                    "expiration": {"days": settings.access_log_retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 1},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=child.merge(after(versioning)),
        )
        policy = aws.s3.BucketPolicy(
            f"{log_name}-policy",
            bucket=log_bucket.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        tls_only_statement(log_bucket.arn),
                        {
                            "Sid": "AllowS3ServerAccessLogsFromArtifactBucket",
                            "Effect": "Allow",
                            "Principal": {"Service": "logging.s3.amazonaws.com"},
                            "Action": "s3:PutObject",
                            "Resource": pulumi.Output.concat(log_bucket.arn, "/s3-access/*"),
                            "Condition": {"ArnLike": {"aws:SourceArn": source.arn}},
                        },
                    ],
                }
            ),
            opts=child.merge(after(lifecycle)),
        )
        return log_bucket, policy

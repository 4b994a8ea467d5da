"""What every bucket of the artifact store shares: the TLS-only statement, the whole-bucket
lifecycle filter, the serialisation of a new bucket's configuration calls, and the hardening
chain itself (:func:`hardened_bucket`, :func:`access_logs`), used by the artifact bucket, its
replica and their log buckets (``components.artifact_store``, ``components.artifact_replica``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stackconfig.schema import ArtifactsConfig


def tls_only_statement(bucket_arn: pulumi.Input[str]) -> dict[str, object]:
    """Deny any request not made over TLS, on the bucket and its objects (S3.5 / CKV_AWS_379)."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


EVERY_OBJECT: aws.s3.BucketLifecycleConfigurationRuleFilterArgsDict = {"prefix": ""}
"""A lifecycle rule's filter for the whole bucket. An empty ``filter {}`` draws the provider's
"Invalid Attribute Combination … This will be an error in a future version of the provider"
warning (hashicorp/terraform-provider-aws#42515, #42089); an empty prefix is the same scope."""


def after(*resources: pulumi.Resource) -> pulumi.ResourceOptions:
    """Child options that wait for ``resources``: a bucket's sub-resources are created one after
    another. S3 answers "OperationAborted: A conflicting conditional operation is currently in
    progress against this resource" when configuration calls on one new bucket overlap (S3 API
    reference, Error codes: OperationAborted, 409), and the provider retries only some of them.
    The order puts the public access block first, so the bucket policy (last) is never written
    to a bucket that is not yet blocked."""
    return pulumi.ResourceOptions(depends_on=list(resources))


ACCESS_LOG_PREFIX = "s3-access/"
"""Where S3 server access logs of a bucket land in its log bucket."""


def encryption_rule(
    kms_key_arn: pulumi.Input[str] | None, *, bucket_key: bool
) -> aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict:
    """Default encryption: SSE-KMS with ``kms_key_arn``, else SSE-S3. ``bucket_key``: an S3 Bucket
    Key, one KMS call per bucket key period instead of per object (cheaper and faster; S3 applies
    it to SSE-KMS objects only)."""
    default: aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgsDict = (
        {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key_arn}
        if kms_key_arn is not None
        else {"sse_algorithm": "AES256"}
    )
    rule: aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict = {
        "apply_server_side_encryption_by_default": default
    }
    if bucket_key:
        rule["bucket_key_enabled"] = True
    return rule


def artifact_lifecycle_rules(settings: ArtifactsConfig) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """The artifact bucket's and its replica's lifecycle: abort stale multipart uploads, expire
    noncurrent versions (the current ones are MLflow's to delete)."""
    return [
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
    ]


@dataclass(frozen=True)
class HardenedBucket:
    """A bucket and the links of its configuration chain that others wait for."""

    bucket: aws.s3.Bucket
    versioning: aws.s3.BucketVersioning
    """Replication needs both buckets versioned before its configuration is accepted."""
    policy: aws.s3.BucketPolicy
    """The last link: whatever configures the bucket further waits for it (:func:`after`)."""


def hardened_bucket(
    name: str,
    opts: pulumi.ResourceOptions,
    *,
    force_destroy: bool,
    tags: Mapping[str, str],
    encryption: aws.s3.BucketServerSideEncryptionConfigurationRuleArgsDict,
    lifecycle_rules: Sequence[aws.s3.BucketLifecycleConfigurationRuleArgsDict],
    policy_statements: Callable[[aws.s3.Bucket], Sequence[Mapping[str, object]]] = lambda bucket: (),
) -> HardenedBucket:
    """Every bucket the stack creates (artifacts, replica, their access-log buckets), as one chain
    of calls each waiting for the previous one (:func:`after`): bucket → public access block (all
    four flags) → ownership controls (ACLs disabled) → default encryption → versioning →
    lifecycle → bucket policy (TLS only, then ``policy_statements(bucket)``). Children are named
    ``<name>-bucket``, ``<name>-public-access-block``, …; ``opts`` carries the parent (and the
    provider of the bucket's region)."""
    bucket = aws.s3.Bucket(f"{name}-bucket", force_destroy=force_destroy, tags=dict(tags), opts=opts)
    public_access_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    ownership = aws.s3.BucketOwnershipControls(
        f"{name}-ownership",
        bucket=bucket.id,
        rule={"object_ownership": "BucketOwnerEnforced"},
        opts=opts.merge(after(public_access_block)),
    )
    sse = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-sse", bucket=bucket.id, rules=[encryption], opts=opts.merge(after(ownership))
    )
    versioning = aws.s3.BucketVersioning(
        f"{name}-versioning",
        bucket=bucket.id,
        versioning_configuration={"status": "Enabled"},
        opts=opts.merge(after(sse)),
    )
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle", bucket=bucket.id, rules=list(lifecycle_rules), opts=opts.merge(after(versioning))
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-policy",
        bucket=bucket.id,
        policy=pulumi.Output.json_dumps(
            {"Version": "2012-10-17", "Statement": [tls_only_statement(bucket.arn), *policy_statements(bucket)]}
        ),
        opts=opts.merge(after(lifecycle)),
    )
    return HardenedBucket(bucket, versioning, policy)


def access_logs(
    name: str,
    source: HardenedBucket,
    opts: pulumi.ResourceOptions,
    *,
    settings: ArtifactsConfig,
    tags: Mapping[str, str],
) -> HardenedBucket:
    """Server access logging of ``source`` to its own hardened bucket ``<name>-logs`` in the same
    region (``opts`` carries the provider), then ``<name>-logging`` pointing at it once both
    bucket policies are in place. S3 delivers access logs only to SSE-S3 buckets, and with ACLs
    disabled it needs a bucket policy for the logging service principal."""
    logs = hardened_bucket(
        f"{name}-logs",
        opts,
        force_destroy=settings.force_destroy,
        tags=tags,
        encryption=encryption_rule(None, bucket_key=False),
        lifecycle_rules=[
            {
                "id": "expire-access-logs",
                "status": "Enabled",
                "filter": EVERY_OBJECT,
                "expiration": {"days": settings.access_log_retention_days},
                "noncurrent_version_expiration": {"noncurrent_days": 1},
                "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
            }
        ],
        policy_statements=lambda log_bucket: [
            {
                "Sid": "AllowS3ServerAccessLogsFromArtifactBucket",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": pulumi.Output.concat(log_bucket.arn, f"/{ACCESS_LOG_PREFIX}*"),
                "Condition": {"ArnLike": {"aws:SourceArn": source.bucket.arn}},
            }
        ],
    )
    aws.s3.BucketLogging(
        f"{name}-logging",
        bucket=source.bucket.id,
        target_bucket=logs.bucket.id,
        target_prefix=ACCESS_LOG_PREFIX,
        # The log bucket must admit the logging service before logging points at it.
        opts=opts.merge(after(source.policy, logs.policy)),
    )
    return logs

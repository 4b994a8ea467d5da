"""The artifact bucket's settings as S3 API payloads, applied to the S3 emulator.

Mirrors ``components.artifact_store.ArtifactStore`` from the same ``ArtifactsConfig``: Block
Public Access (all four flags), ACLs disabled (BucketOwnerEnforced), default encryption (SSE-KMS
with a bucket key, or SSE-S3), versioning and the two lifecycle rules. moto stores them (so they can be read back and
compared) but enforces none. The TLS-only bucket policy is rendered here for parity but not
applied: moto evaluates bucket policies while ignoring their conditions, so it would deny every
request; the emulator listens on HTTPS only instead. Pure functions; candidates to move to
``rendering/`` once the Pulumi component consumes them too.
"""

from __future__ import annotations

from stackconfig.schema import ArtifactsConfig


def public_access_block() -> dict[str, bool]:
    return {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True,
    }


def ownership_controls() -> dict[str, object]:
    return {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def encryption_configuration(kms_key_arn: str | None) -> dict[str, object]:
    if kms_key_arn is None:
        return {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    return {
        "Rules": [
            {
                "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_arn},
                "BucketKeyEnabled": True,
            }
        ]
    }


def lifecycle_configuration(settings: ArtifactsConfig) -> dict[str, object]:
    return {
        "Rules": [
            {
                "ID": "abort-incomplete-multipart-uploads",
                "Status": "Enabled",
                "Filter": {},
                "AbortIncompleteMultipartUpload": {
                    "DaysAfterInitiation": settings.abort_incomplete_multipart_upload_days
                },
            },
            {
                "ID": "expire-noncurrent-versions",
                "Status": "Enabled",
                "Filter": {},
                "NoncurrentVersionExpiration": {"NoncurrentDays": settings.noncurrent_version_expiration_days},
            },
        ]
    }


def tls_only_policy(bucket: str, partition: str = "aws") -> dict[str, object]:
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }

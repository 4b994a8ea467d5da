"""The one way this project creates a KMS key: customer managed, yearly rotation on, 30-day
deletion window (the longest AWS allows, so a mistaken delete can be cancelled)."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

DELETION_WINDOW_DAYS = 30


def rotating_key(
    resource_name: str,
    description: str,
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
    policy: pulumi.Input[str] | None = None,
) -> aws.kms.Key:
    """``policy``: a key policy when an AWS service must use the key (None: the account default)."""
    return aws.kms.Key(
        resource_name,
        description=description,
        policy=policy,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        tags=tags,
        opts=opts,
    )

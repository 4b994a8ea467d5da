"""The one way this project creates a KMS key: customer managed, yearly rotation on, 30-day
deletion window (the longest AWS allows, so a mistaken delete can be cancelled)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from rendering.key_policies import logs_key_policy

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


class KeyPolicyArgs(TypedDict):
    key_id: pulumi.Input[str]
    policy: pulumi.Input[str]


class KeyPolicy(pulumi.ComponentResource):
    """An explicit key policy set after the key exists, for a key whose users are created after it
    (the artifact key: the roles' own policies name the key, and the key policy names the roles).
    The key itself is declared without ``policy``, so the two never fight over it (the provider's
    ``aws_kms_key_policy`` documentation: do not set both)."""

    def __init__(self, name: str, args: KeyPolicyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:KeyPolicy", name, {}, opts)
        self.policy = aws.kms.KeyPolicy(
            f"{name}-policy",
            key_id=args["key_id"],
            policy=args["policy"],
            bypass_policy_lockout_safety_check=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


class LogsKeyArgs(TypedDict):
    administrators: pulumi.Input[Sequence[str]]
    region: str
    log_groups: Sequence[str]
    """Exactly the log groups CloudWatch Logs may use the key for (``rendering.log_groups``)."""
    tags: NotRequired[dict[str, str]]


class LogsKey(pulumi.ComponentResource):
    """The customer key of the stack's log groups (EKS control plane, VPC flow logs, RDS exports)."""

    key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: LogsKeyArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:LogsKey", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        policy = pulumi.Output.all(args["administrators"], partition, account).apply(
            lambda values: json.dumps(
                logs_key_policy(values[0], values[1], args["region"], values[2], args["log_groups"])
            )
        )
        self.key = rotating_key(f"{name}-key", f"{name}: CloudWatch log groups", args.get("tags", {}), child, policy)
        aws.kms.Alias(f"{name}-key-alias", name=f"alias/{name}", target_key_id=self.key.key_id, opts=child)
        self.key_arn = self.key.arn
        self.register_outputs({"keyArn": self.key_arn})

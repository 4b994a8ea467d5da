"""Who administers the stack's KMS keys, and the log groups the logs key serves.

The administrators are ``kms.administratorArns``. The principal running ``pulumi up`` is added
when it is not among them, with a warning: ``CreateKey`` and ``PutKeyPolicy`` refuse a policy that
does not let the calling principal change it again (KMS API reference,
``BypassPolicyLockoutSafetyCheck``), so leaving it out would fail the deployment, and putting it
in unconditionally would make the policy depend on who runs the program (a preview by another role
would show every key policy changing). A preview never adds it.

The running principal is the IAM role behind the session (``aws.iam.getSessionContext``: an
``assumed-role`` STS ARN is not a valid key-policy principal; the role ARN, with its path, is).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from rendering.log_groups import eks_log_group, flow_log_group, rds_log_groups
from stackconfig import PROJECT, StackConfig


def deployer_arn() -> pulumi.Output[str]:
    caller = aws.get_caller_identity_output()
    return aws.iam.get_session_context_output(arn=caller.arn).issuer_arn


def merge_administrators(configured: tuple[str, ...], deployer: str, dry_run: bool) -> list[str]:
    """The key administrators: the configured ones, plus the deployer where KMS would otherwise
    refuse the policy (an update) or where nobody is configured."""
    if not configured:
        return [deployer]
    if deployer in configured or dry_run:
        return sorted(configured)
    pulumi.log.warn(
        f"{PROJECT}:kms.administratorArns: the principal running pulumi ({deployer}) is not listed; it is added "
        "as an administrator of the stack's KMS keys (KMS refuses a key policy that locks out its caller). "
        "List it to keep the key policies independent of who deploys."
    )
    return sorted({*configured, deployer})


def key_administrators(config: StackConfig) -> pulumi.Output[list[str]]:
    configured = config.kms.administrator_arns
    dry_run = pulumi.runtime.is_dry_run()
    return deployer_arn().apply(lambda deployer: merge_administrators(configured, deployer, dry_run))


def stack_log_groups(config: StackConfig, base: str, database_identifier: str) -> tuple[str, ...]:
    """Every log group of the stack, in the order they are created: the RDS exports always, the
    EKS control plane and the VPC flow logs when the stack creates the cluster."""
    groups = list(rds_log_groups(database_identifier))
    if config.cluster.creates:
        groups += [eks_log_group(config.cluster.name), flow_log_group(f"{base}-network")]
    return tuple(groups)

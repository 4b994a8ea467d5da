"""SNS: the alarm topic is encrypted with a customer-managed key."""

from __future__ import annotations

from pulumi_policy import ReportViolation, ResourceValidationArgs, Severity

from policy.rules.registry import resource_rule

SNS_TOPIC = "aws:sns/topic:Topic"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"


@resource_rule(
    name="sns-topic-kms-encrypted",
    description="SNS topics are encrypted with a customer-managed KMS key (FSBP SNS.1, CKV_AWS_26).",
    severity=Severity.MEDIUM,
)
def sns_topic_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SNS_TOPIC:
        return
    key = args.props.get("kmsMasterKeyId")
    if not key:
        report("kmsMasterKeyId must name a customer-managed KMS key (topics are unencrypted by default).", None)
    elif key == AWS_MANAGED_SNS_KEY:
        report("alias/aws/sns cannot be used by CloudWatch alarms; use a customer-managed key.", None)

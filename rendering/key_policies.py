"""KMS key policies for the stack's customer keys, as plain dicts (tests assert the exact document).

Why explicit policies: without one, KMS applies its default policy, which gives the account root
``kms:*`` and so lets *any* IAM policy in the account grant use of the key. Here each key names its
users by role and its administrators from config (``kms.administratorArns``); there is deliberately
no statement for the account root, so an IAM policy alone grants nothing on these keys.

Sources (quoted where used):

- Default key policy, the "key administrators" and "key users" statements and the
  ``kms:GrantIsForAWSResource`` grant statement:
  https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html
- The lockout safety check: ``CreateKey``/``PutKeyPolicy`` refuse a policy that does not let the
  calling principal call ``PutKeyPolicy`` again ("the key policy must allow the principal that is
  making the PutKeyPolicy request to make a subsequent PutKeyPolicy request", KMS API reference,
  ``BypassPolicyLockoutSafetyCheck``). ``infra.keys`` checks the deployer is an administrator.
- CloudWatch Logs: the service principal ``logs.<region>.amazonaws.com`` with
  ``kms:EncryptionContext:aws:logs:arn`` (Amazon CloudWatch Logs user guide, "Encrypt log data in
  CloudWatch Logs using AWS KMS", step 2 of "Create a KMS key").
- RDS: what the AWS-managed ``aws/rds`` key allows, ``kms:ViaService`` ``rds.<region>.amazonaws.com``
  (RDS user guide, "AWS KMS key management").
"""

from __future__ import annotations

from collections.abc import Sequence

PolicyDocument = dict[str, object]
Statement = dict[str, object]

ADMIN_ACTIONS: tuple[str, ...] = (
    "kms:CancelKeyDeletion",
    "kms:Create*",
    "kms:Delete*",
    "kms:Describe*",
    "kms:Disable*",
    "kms:Enable*",
    "kms:Get*",
    "kms:List*",
    "kms:Put*",
    "kms:Revoke*",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:Update*",
)
"""The default policy's "Allow access for Key Administrators" actions: manage, never use
(no Encrypt/Decrypt/GenerateDataKey). ``kms:Put*`` includes ``PutKeyPolicy`` (lockout check)."""
USE_ACTIONS: tuple[str, ...] = (
    "kms:Decrypt",
    "kms:DescribeKey",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
"""The default policy's "Allow use of the key" actions."""
GRANT_ACTIONS: tuple[str, ...] = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")
"""The default policy's "Allow attachment of persistent resources": grants only for AWS resources
(EKS and RDS keep using a key through grants they create when the cluster/instance is created)."""
LOGS_ACTIONS: tuple[str, ...] = (
    "kms:Decrypt*",
    "kms:Describe*",
    "kms:Encrypt*",
    "kms:GenerateDataKey*",
    "kms:ReEncrypt*",
)
"""What CloudWatch Logs' service principal needs on a log group's key (the Logs user guide)."""


def _principals(arns: Sequence[str]) -> str | list[str]:
    unique = sorted(set(arns))
    return unique[0] if len(unique) == 1 else unique


def administrators_statement(administrators: Sequence[str]) -> Statement:
    if not administrators:
        raise ValueError("a key policy needs at least one administrator (KMS refuses a policy that locks out)")
    return {
        "Sid": "KeyAdministrators",
        "Effect": "Allow",
        "Principal": {"AWS": _principals(administrators)},
        "Action": list(ADMIN_ACTIONS),
        "Resource": "*",
    }


def users_statements(users: Sequence[str], *, grants: bool = False) -> list[Statement]:
    """Use of the key by these roles; with ``grants`` they may also hand it to AWS resources."""
    if not users:
        return []
    statements: list[Statement] = [
        {
            "Sid": "KeyUsers",
            "Effect": "Allow",
            "Principal": {"AWS": _principals(users)},
            "Action": list(USE_ACTIONS),
            "Resource": "*",
        }
    ]
    if grants:
        statements.append(
            {
                "Sid": "KeyUsersGrantsForAwsResources",
                "Effect": "Allow",
                "Principal": {"AWS": _principals(users)},
                "Action": list(GRANT_ACTIONS),
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return statements


def key_policy(administrators: Sequence[str], *statements: Statement) -> PolicyDocument:
    return {"Version": "2012-10-17", "Statement": [administrators_statement(administrators), *statements]}


def artifact_key_policy(administrators: Sequence[str], users: Sequence[str], *extra: Statement) -> PolicyDocument:
    """The artifact bucket's key: the roles that read or write artifacts (S3 calls KMS with the
    caller's own credentials, so no service principal is needed)."""
    return key_policy(administrators, *users_statements(users), *extra)


def database_key_policy(
    administrators: Sequence[str], deployers: Sequence[str], account_id: str, region: str
) -> PolicyDocument:
    """The RDS storage and Performance Insights key. RDS uses it on behalf of whoever creates or
    modifies the instance, and keeps it through grants; so the deployers may use it through RDS
    only (``kms:ViaService``), like the AWS-managed ``aws/rds`` key, and nobody may use it
    directly."""
    via_rds = {"StringEquals": {"kms:ViaService": f"rds.{region}.amazonaws.com", "kms:CallerAccount": account_id}}
    return key_policy(
        administrators,
        {
            "Sid": "UseThroughRds",
            "Effect": "Allow",
            "Principal": {"AWS": _principals(deployers)},
            "Action": [*USE_ACTIONS, "kms:CreateGrant", "kms:ListGrants"],
            "Resource": "*",
            "Condition": via_rds,
        },
    )


def cluster_secrets_key_policy(administrators: Sequence[str], cluster_role_arn: str) -> PolicyDocument:
    """The EKS Secrets envelope key: the cluster role encrypts and decrypts Secrets' data keys
    and keeps the key through a grant EKS creates for it."""
    return key_policy(administrators, *users_statements([cluster_role_arn], grants=True))


def logs_key_policy(
    administrators: Sequence[str], partition: str, region: str, account_id: str, log_groups: Sequence[str]
) -> PolicyDocument:
    """The key of the stack's log groups: CloudWatch Logs in this region may use it for exactly
    these log groups (the encryption context names the group)."""
    arns = sorted(f"arn:{partition}:logs:{region}:{account_id}:log-group:{group}" for group in log_groups)
    return key_policy(
        administrators,
        {
            "Sid": "CloudWatchLogs",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": list(LOGS_ACTIONS),
            "Resource": "*",
            "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": arns[0] if len(arns) == 1 else arns}},
        },
    )


def replication_source_statement(replication_role_arn: str, region: str) -> Statement:
    """S3 replication reads SSE-KMS source objects with the replication role's credentials, so the
    source key must let that role decrypt through S3 (S3 User Guide, "Replicating objects created
    with server-side encryption (SSE-C, SSE-S3, SSE-KMS, DSSE-KMS)": ``kms:Decrypt`` on the source
    key, scoped with ``kms:ViaService``). Decrypt only: the role never writes to the source."""
    return {
        "Sid": "ReplicationReadsSource",
        "Effect": "Allow",
        "Principal": {"AWS": replication_role_arn},
        "Action": "kms:Decrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
    }


def replica_key_policy(administrators: Sequence[str], replication_role_arn: str, replica_region: str) -> PolicyDocument:
    """The disaster-recovery replica's key: only the replication role encrypts with it, through S3
    in the replica's region (same S3 User Guide page: ``kms:Encrypt`` and ``kms:GenerateDataKey``
    on the destination key). Restoring from the replica is an administrator's act: an
    administrator adds a reader then (docs/backup-restore.md)."""
    return key_policy(
        administrators,
        {
            "Sid": "ReplicationWritesReplica",
            "Effect": "Allow",
            "Principal": {"AWS": replication_role_arn},
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": f"s3.{replica_region}.amazonaws.com"}},
        },
    )

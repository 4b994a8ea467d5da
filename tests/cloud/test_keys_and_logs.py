"""Trust and key policies (issue 17, finding 7), on the inputs AWS would receive for both stack
files: SageMaker's trust scoped by ``aws:SourceArn``, an explicit key policy on every customer key
(users by role, administrators from ``kms.administratorArns``, the deployer never locked out, the
service principals the users need), log groups with a customer key and a retention, RDS's
exported log groups created first, and the flow-logs role's missing ``DescribeLogGroups``."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.keys import merge_administrators
from rendering.key_policies import ADMIN_ACTIONS, GRANT_ACTIONS, LOGS_ACTIONS, USE_ACTIONS
from rendering.log_groups import rds_instance_identifier
from stackconfig import ConfigError, load_stack_config, load_stack_file
from tests.pulumi_harness import ACCOUNT_ID, ROOT, RecordingMocks, captured_program, run_program, stack_file_config

STACKS = ["dev", "prod"]
KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
DEPLOYER = f"arn:aws:iam::{ACCOUNT_ID}:user/ci"
"""The mocks' caller (``getSessionContext`` of an IAM user is the user itself)."""
CONFIGURED_ADMINS = {
    "dev": ["arn:aws:iam::111111111111:role/mlflow-platform-deploy-dev"],
    "prod": [
        "arn:aws:iam::222222222222:role/mlflow-platform-deploy-prod",
        "arn:aws:iam::222222222222:role/security-key-admin",
    ],
}


def stack_values(stack: str) -> dict[str, Any]:
    """A stack file's values, keyed by section (``load_stack_file``), typed for editing."""
    return load_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def _run(stack: str, mode: str = "create") -> RecordingMocks:
    return captured_program(stack, mode)[0]


def role_arn(stack: str, role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT_ID}:role/mlflow-{stack}-{role}-7f3a2b"


def statements(document: str) -> dict[str, dict[str, Any]]:
    policy = json.loads(document)
    assert policy["Version"] == "2012-10-17"
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert len(by_sid) == len(policy["Statement"])
    return by_sid


def admins_statement(stack: str) -> dict[str, Any]:
    return {
        "Sid": "KeyAdministrators",
        "Effect": "Allow",
        # The configured administrators, plus the deployer (not listed in the stack file).
        "Principal": {"AWS": sorted([*CONFIGURED_ADMINS[stack], DEPLOYER])},
        "Action": list(ADMIN_ACTIONS),
        "Resource": "*",
    }


# --- SageMaker trust -----------------------------------------------------------------------


def test_sagemaker_may_assume_the_training_role_only_for_the_configured_training_jobs():
    trust = statements(_run("prod").one("aws:iam/role:Role", "training-role").inputs["assumeRolePolicy"])
    assert trust["ServiceSagemaker"] == {
        "Sid": "ServiceSagemaker",
        "Effect": "Allow",
        "Principal": {"Service": "sagemaker.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:us-east-1:222222222222:training-job/mlflow-*"},
        },
    }


def _prod_values_with_principal(principal: dict[str, Any]) -> dict[str, Any]:
    values = stack_values("prod")
    values["training"] = {**values["training"], "extraPrincipals": [principal]}
    return values


@pytest.mark.parametrize(
    ("principal", "problem"),
    [
        ({"type": "Service", "identifier": "sagemaker.amazonaws.com"}, "<missing>"),
        (
            {"type": "Service", "identifier": "sagemaker.amazonaws.com", "sourceArn": "*"},
            "got '*'",
        ),
        (  # any SageMaker resource, not training jobs
            {
                "type": "Service",
                "identifier": "sagemaker.amazonaws.com",
                "sourceArn": "arn:aws:sagemaker:us-east-1:222222222222:*",
            },
            "training-job/",
        ),
        (  # another service's ARN
            {
                "type": "Service",
                "identifier": "sagemaker.amazonaws.com",
                "sourceArn": "arn:aws:glue:us-east-1:222222222222:job/x",
            },
            "arn:aws:sagemaker:<region>:<account>:training-job/",
        ),
    ],
)
def test_a_service_principal_without_a_training_job_source_arn_is_refused(principal: dict[str, Any], problem: str):
    with pytest.raises(ConfigError) as error:
        load_stack_config(_prod_values_with_principal(principal))
    (line,) = [p for p in error.value.problems]
    assert line.key == "mlflow-platform:training.extraPrincipals[0].sourceArn"
    assert problem in str(line)


def test_an_aws_principal_takes_no_source_arn():
    principal = {"type": "AWS", "identifier": "arn:aws:iam::222222222222:role/ci", "sourceArn": "arn:aws:x"}
    with pytest.raises(ConfigError) as error:
        load_stack_config(_prod_values_with_principal(principal))
    assert [p.key for p in error.value.problems] == ["mlflow-platform:training.extraPrincipals[0]"]


# --- key policies --------------------------------------------------------------------------


def test_no_key_of_the_stack_lets_iam_policies_grant_its_use():
    """KMS's default policy (and so a key without one) gives the account root ``kms:*``."""
    for stack in STACKS:
        mocks = _run(stack)
        keys = [k for k in mocks.of_type(KEY) if "-monitoring-" not in k.name]
        replica = ("artifacts-replica-key",) if stack == "prod" else ()  # artifacts.replicationRegion
        assert {k.name for k in keys} == {
            f"mlflow-{stack}-{suffix}"
            for suffix in ("artifacts-key", "db-key", "cluster-secrets-key", "logs-key", *replica)
        }
        documents = [k.inputs["policy"] for k in keys if "artifacts" not in k.name]
        documents.append(mocks.one("aws:kms/keyPolicy:KeyPolicy", "artifacts-key").inputs["policy"])
        for document in documents:
            principals = json.dumps([s["Principal"] for s in json.loads(document)["Statement"]])
            assert ":root" not in principals and '"*"' not in principals


@pytest.mark.parametrize("stack", STACKS)
def test_artifact_key_is_used_by_the_artifact_roles_and_administered_by_the_configured_principals(stack: str):
    mocks = _run(stack)
    artifact_key = mocks.one(KEY, "artifacts-key")
    assert "policy" not in artifact_key.inputs  # set once, by the KeyPolicy (never both)
    policy = mocks.one("aws:kms/keyPolicy:KeyPolicy", "artifacts-key")
    assert policy.inputs["keyId"] == f"mlflow-{stack}-artifacts-key-7f3a2b"
    assert policy.inputs["bypassPolicyLockoutSafetyCheck"] is False
    replication = (
        {  # prod replicates (artifacts.replicationRegion): S3 reads SSE-KMS sources as the replication role
            "ReplicationReadsSource": {
                "Sid": "ReplicationReadsSource",
                "Effect": "Allow",
                "Principal": {"AWS": role_arn(stack, "artifacts-replication")},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
            }
        }
        if stack == "prod"
        else {}
    )
    assert statements(policy.inputs["policy"]) == {
        "KeyAdministrators": admins_statement(stack),
        "KeyUsers": {
            "Sid": "KeyUsers",
            "Effect": "Allow",
            "Principal": {"AWS": sorted([role_arn(stack, "server-role"), role_arn(stack, "training-role")])},
            "Action": list(USE_ACTIONS),
            "Resource": "*",
        },
        **replication,
    }


def test_the_replica_key_lets_only_the_replication_role_encrypt_through_s3_in_its_region():
    """Without it the replica key's default policy delegates to IAM, or (with a policy naming
    nobody) replication of SSE-KMS objects fails: the role must encrypt with the replica key."""
    mocks = _run("prod")
    replica_key = mocks.one(KEY, "artifacts-replica-key")
    assert statements(replica_key.inputs["policy"]) == {
        "KeyAdministrators": admins_statement("prod"),
        "ReplicationWritesReplica": {
            "Sid": "ReplicationWritesReplica",
            "Effect": "Allow",
            "Principal": {"AWS": role_arn("prod", "artifacts-replication")},
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:ViaService": "s3.us-west-2.amazonaws.com"}},
        },
    }


def test_in_proxied_mode_only_the_server_uses_the_artifact_key():
    config = stack_file_config("dev")
    artifacts = json.loads(config["mlflow-platform:artifacts"])
    config["mlflow-platform:artifacts"] = json.dumps({**artifacts, "accessMode": "proxied"})
    mocks, _, _ = run_program("dev", config)
    users = statements(mocks.one("aws:kms/keyPolicy:KeyPolicy", "artifacts-key").inputs["policy"])["KeyUsers"]
    assert users["Principal"] == {"AWS": role_arn("dev", "server-role")}


@pytest.mark.parametrize("stack", STACKS)
def test_database_key_is_used_only_through_rds(stack: str):
    policy = statements(_run(stack).one(KEY, "db-key").inputs["policy"])
    assert policy == {
        "KeyAdministrators": admins_statement(stack),
        "UseThroughRds": {
            "Sid": "UseThroughRds",
            "Effect": "Allow",
            "Principal": {"AWS": sorted([*CONFIGURED_ADMINS[stack], DEPLOYER])},
            "Action": [*USE_ACTIONS, "kms:CreateGrant", "kms:ListGrants"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:ViaService": "rds.us-east-1.amazonaws.com", "kms:CallerAccount": ACCOUNT_ID}
            },
        },
    }


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_key_is_used_by_the_cluster_role(stack: str):
    cluster_role = role_arn(stack, "cluster-role")
    assert statements(_run(stack).one(KEY, "cluster-secrets-key").inputs["policy"]) == {
        "KeyAdministrators": admins_statement(stack),
        "KeyUsers": {
            "Sid": "KeyUsers",
            "Effect": "Allow",
            "Principal": {"AWS": cluster_role},
            "Action": list(USE_ACTIONS),
            "Resource": "*",
        },
        "KeyUsersGrantsForAwsResources": {
            "Sid": "KeyUsersGrantsForAwsResources",
            "Effect": "Allow",
            "Principal": {"AWS": cluster_role},
            "Action": list(GRANT_ACTIONS),
            "Resource": "*",
            "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
        },
    }


def _log_group_arn(name: str) -> str:
    return f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:{name}"


@pytest.mark.parametrize("stack", STACKS)
def test_logs_key_admits_cloudwatch_logs_for_exactly_the_stacks_log_groups(stack: str):
    mocks = _run(stack)
    names = sorted(g.inputs["name"] for g in mocks.of_type(LOG_GROUP))
    assert names == [
        f"/aws/eks/mlflow-{stack}/cluster",
        f"/aws/rds/instance/mlflow-{stack}-db/postgresql",
        f"/aws/rds/instance/mlflow-{stack}-db/upgrade",
        f"/aws/vpc/mlflow-{stack}-network/flow-logs",
    ]
    assert statements(mocks.one(KEY, "logs-key").inputs["policy"]) == {
        "KeyAdministrators": admins_statement(stack),
        "CloudWatchLogs": {
            "Sid": "CloudWatchLogs",
            "Effect": "Allow",
            "Principal": {"Service": "logs.us-east-1.amazonaws.com"},
            "Action": list(LOGS_ACTIONS),
            "Resource": "*",
            "Condition": {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": [_log_group_arn(n) for n in names]}},
        },
    }
    logs_key = f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/mlflow-{stack}-logs-key-7f3a2b"
    assert {g.inputs["name"]: g.inputs.get("kmsKeyId") for g in mocks.of_type(LOG_GROUP)} == dict.fromkeys(
        names, logs_key
    )


def test_reuse_mode_has_a_logs_key_for_the_database_log_groups_only():
    mocks = _run("prod", "reuse")
    groups = sorted(g.inputs["name"] for g in mocks.of_type(LOG_GROUP))
    assert groups == ["/aws/rds/instance/mlflow-prod-db/postgresql", "/aws/rds/instance/mlflow-prod-db/upgrade"]
    condition = statements(mocks.one(KEY, "logs-key").inputs["policy"])["CloudWatchLogs"]["Condition"]
    assert condition == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": [_log_group_arn(g) for g in groups]}}


def test_the_deployer_is_an_administrator_only_when_kms_would_otherwise_refuse_the_policy():
    listed = ("arn:aws:iam::1:role/a", "arn:aws:iam::1:role/deploy")
    assert merge_administrators((), "arn:aws:iam::1:role/deploy", dry_run=False) == ["arn:aws:iam::1:role/deploy"]
    assert merge_administrators(listed, "arn:aws:iam::1:role/deploy", dry_run=False) == sorted(listed)
    # Another principal running `up` is added (else CreateKey/PutKeyPolicy fails the lockout check) ...
    assert merge_administrators(listed, "arn:aws:iam::1:role/x", dry_run=False) == sorted(
        [*listed, "arn:aws:iam::1:role/x"]
    )
    # ... but a preview by another role (PR previews, drift) shows no key-policy change.
    assert merge_administrators(listed, "arn:aws:iam::1:role/preview", dry_run=True) == sorted(listed)


def test_kms_administrators_must_be_iam_principal_arns():
    values = stack_values("dev")
    values["kms"] = {"administratorArns": ["*"]}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:kms.administratorArns"]


# --- RDS log groups ------------------------------------------------------------------------


@pytest.mark.parametrize(("stack", "days"), [("dev", 7), ("prod", 365)])
def test_rds_log_groups_exist_before_the_instance_with_the_configured_retention(stack: str, days: int):
    mocks = _run(stack)
    instance = mocks.one("aws:rds/instance:Instance").inputs
    assert instance["identifier"] == rds_instance_identifier(f"mlflow-{stack}-db") == f"mlflow-{stack}-db"
    exported = instance["enabledCloudwatchLogsExports"]
    assert exported == ["postgresql", "upgrade"]
    groups = {g.inputs["name"]: g.inputs for g in mocks.of_type(LOG_GROUP) if "/aws/rds/" in g.inputs["name"]}
    assert sorted(groups) == [f"/aws/rds/instance/{instance['identifier']}/{log}" for log in exported]
    assert {g["retentionInDays"] for g in groups.values()} == {days}
    # The instance waits for its groups (else RDS creates them first, never expiring).
    depends = mocks.dependencies[f"mlflow-{stack}-db-instance"]
    assert all(f"mlflow-{stack}-db-logs-{log}" in depends for log in exported)


@pytest.mark.parametrize(
    ("name", "identifier"),
    [("mlflow-prod-db", "mlflow-prod-db"), ("mlflow-My_Stack.1-db", "mlflow-my-stack-1-db"), ("a" * 80, "a" * 63)],
)
def test_rds_identifier_is_valid_for_any_stack_name(name: str, identifier: str):
    assert rds_instance_identifier(name) == identifier


def test_database_log_retention_is_a_cloudwatch_value():
    values = stack_values("dev")
    values["database"] = {**values["database"], "logRetentionDays": 8}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:database.logRetentionDays"]

"""TrackingDatabase: exact parameter values and every security property of the instance."""

from __future__ import annotations

import re
from typing import Any

import pulumi
import pulumi_aws as aws
import pytest

from components import database as database_module
from components.database import TrackingDatabase
from rendering.units import GIB
from stackconfig.schema import DatabaseConfig
from tests.pulumi_harness import RecordingMocks, is_secret_envelope, run_mocked

CLIENT_SGS = ["sg-0aaaaaaaaaaaaaaa1", "sg-0aaaaaaaaaaaaaaa2"]
KEY_ADMIN = "arn:aws:iam::123456789012:role/deploy"
LOGS_KEY = "arn:aws:kms:us-east-1:123456789012:key/logs"


def build(settings: DatabaseConfig) -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    def program() -> dict[str, Any]:
        db = TrackingDatabase(
            "db",
            {
                "settings": settings,
                "vpc_id": "vpc-0123456789abcdef0",
                "subnet_ids": ["subnet-01", "subnet-02"],
                "client_security_group_ids": CLIENT_SGS,
                "region": "us-east-1",
                "key_administrators": [KEY_ADMIN],
                "log_kms_key_arn": LOGS_KEY,
            },
        )
        return {"address": db.address, "password": db.master_password, "max_connections": db.max_connections}

    return run_mocked(program)


PROD = DatabaseConfig(
    instance_class="db.m6g.large",
    memory_bytes=8 * GIB,
    multi_az=True,
    backup_retention_days=14,
    deletion_protection=True,
    final_snapshot=True,
)
DEV = DatabaseConfig(
    instance_class="db.t4g.medium",
    memory_bytes=4 * GIB,
    multi_az=False,
    backup_retention_days=1,
    deletion_protection=False,
    final_snapshot=False,
    monitoring_interval_seconds=0,
)


def test_parameter_group_is_the_guides_tuning_for_8_gib():
    mocks, outputs, _ = build(PROD)
    group = mocks.one("aws:rds/parameterGroup:ParameterGroup")
    assert group.inputs["family"] == "postgres16"
    values = {p["name"]: (p["value"], p["applyMethod"]) for p in group.inputs["parameters"]}
    assert values == {
        "shared_buffers": ("262144", "pending-reboot"),
        "effective_cache_size": ("786432", "immediate"),
        "work_mem": ("65536", "immediate"),
        "maintenance_work_mem": ("524288", "immediate"),
        "wal_buffers": ("8192", "pending-reboot"),
        "max_wal_size": ("4096", "immediate"),
        "max_connections": ("200", "pending-reboot"),
        "random_page_cost": ("1.1", "immediate"),
        "idle_in_transaction_session_timeout": ("60000", "immediate"),
        "log_min_duration_statement": ("500", "immediate"),
        "log_statement": ("ddl", "immediate"),
        "password_encryption": ("scram-sha-256", "immediate"),
        "rds.force_ssl": ("1", "immediate"),
    }
    assert outputs["max_connections"] == 200
    instance = mocks.one("aws:rds/instance:Instance")
    assert instance.inputs["parameterGroupName"] == "db-params-7f3a2b"


def test_instance_is_encrypted_private_and_observable():
    mocks, _, _ = build(PROD)
    i = mocks.one("aws:rds/instance:Instance").inputs
    key = mocks.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    key_arn = "arn:aws:kms:us-east-1:123456789012:key/db-key-7f3a2b"
    expected = {
        "engine": "postgres",
        "engineVersion": "16",
        "autoMinorVersionUpgrade": True,
        "storageType": "gp3",
        "storageEncrypted": True,
        "kmsKeyId": key_arn,
        "publiclyAccessible": False,
        "iamDatabaseAuthenticationEnabled": True,
        "performanceInsightsEnabled": True,
        "performanceInsightsKmsKeyId": key_arn,
        "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
        "port": 5432,
        "caCertIdentifier": "rds-ca-rsa2048-g1",
        "copyTagsToSnapshot": True,
        "allocatedStorage": 20,
        "maxAllocatedStorage": 100,
    }
    assert {k: i.get(k) for k in expected} == expected
    assert i["maxAllocatedStorage"] > i["allocatedStorage"]  # storage autoscaling on


def test_prod_protection_and_dev_economy():
    prod = mocks_instance(PROD)
    assert (prod["multiAz"], prod["deletionProtection"], prod["skipFinalSnapshot"]) == (True, True, False)
    assert re.fullmatch(r"db-final-[0-9a-f]{8}", prod["finalSnapshotIdentifier"])
    assert prod["backupRetentionPeriod"] == 14
    assert prod["monitoringInterval"] == 60 and prod["monitoringRoleArn"].startswith("arn:aws:iam::")
    dev = mocks_instance(DEV)
    assert (dev["multiAz"], dev["deletionProtection"], dev["skipFinalSnapshot"]) == (False, False, True)
    assert dev["backupRetentionPeriod"] == 1
    assert "monitoringRoleArn" not in dev


def mocks_instance(settings: DatabaseConfig) -> dict[str, Any]:
    mocks, _, _ = build(settings)
    return mocks.one("aws:rds/instance:Instance").inputs


def test_only_the_given_security_groups_reach_5432():
    mocks, _, _ = build(PROD)
    group = mocks.one("aws:ec2/securityGroup:SecurityGroup")
    assert "ingress" not in group.inputs and "egress" not in group.inputs
    rules = mocks.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted(r.inputs["referencedSecurityGroupId"] for r in rules) == sorted(CLIENT_SGS)
    for rule in rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (5432, 5432, "tcp")
        assert "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs
        assert rule.inputs["securityGroupId"] == "db-sg-id"
    assert mocks.one("aws:rds/instance:Instance").inputs["vpcSecurityGroupIds"] == ["db-sg-id"]


def test_master_password_is_generated_and_secret():
    mocks, outputs, secrets = build(PROD)
    password = mocks.one("random:index/randomPassword:RandomPassword").inputs
    assert password["length"] >= 32
    instance = mocks.one("aws:rds/instance:Instance")
    assert is_secret_envelope(instance.raw_inputs["password"])
    assert secrets["password"] is True
    assert outputs["password"] == instance.inputs["password"]


def test_autoscaled_storage_is_not_drift(monkeypatch: pytest.MonkeyPatch):
    seen: list[pulumi.ResourceOptions] = []
    real = aws.rds.Instance

    def recording(name: str, *args: Any, opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> Any:
        assert opts is not None
        seen.append(opts)
        return real(name, *args, opts=opts, **kwargs)

    monkeypatch.setattr(database_module.aws.rds, "Instance", recording)
    build(PROD)
    assert seen and seen[0].ignore_changes == ["allocatedStorage"]
    # The engine version is a major-version prefix, so AWS's minor upgrades match it.
    assert DatabaseConfig().engine_version.isdigit()


def test_final_snapshot_identifier_is_unique_per_stack_lifetime():
    """A fixed "<name>-final" collides on the second destroy with the snapshot the first one
    left: the identifier ends in a RandomId generated with the stack, valid for RDS (letters,
    digits, single hyphens, no trailing hyphen)."""
    mocks, _, _ = build(PROD)
    suffix = mocks.one("random:index/randomId:RandomId", "final-snapshot")
    assert suffix.inputs["byteLength"] == 4 and "keepers" not in suffix.inputs
    identifier = mocks.one("aws:rds/instance:Instance").inputs["finalSnapshotIdentifier"]
    assert identifier.startswith("db-final-") and identifier != "db-final"
    assert "db-final-snapshot-id" in mocks.dependencies["db-instance"]
    assert re.fullmatch(r"[A-Za-z](?!.*--)[A-Za-z0-9-]{0,253}[A-Za-z0-9]", identifier)
    dev, _, _ = build(DEV)
    assert dev.of_type("random:index/randomId:RandomId") == []


def test_instance_waits_for_the_enhanced_monitoring_policy_attachment():
    mocks, _, _ = build(PROD)
    assert "db-monitoring-policy" in mocks.dependencies["db-instance"]

"""RDS PostgreSQL for MLflow's tracking and auth stores, with a parameter group tuned from
the instance class's memory by ``rendering.postgres`` (the same set the local target runs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.kms import rotating_key
from components.trust import service_trust_policy
from rendering.key_policies import database_key_policy
from rendering.log_groups import RDS_LOG_EXPORTS, rds_instance_identifier, rds_log_group
from rendering.postgres import PostgresTuning, max_connections_for, render_postgres_parameters
from rendering.rds_parameters import rds_parameter_group
from stackconfig.schema import DatabaseConfig

POSTGRES_PORT = 5432
ENHANCED_MONITORING_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
RDS_CA = "rds-ca-rsa2048-g1"


class TrackingDatabaseArgs(TypedDict):
    settings: DatabaseConfig
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_ids: Sequence[pulumi.Input[str]]
    """Only these security groups may open connections on 5432."""
    tags: NotRequired[dict[str, str]]
    region: str
    key_administrators: pulumi.Input[Sequence[str]]
    """Administrators of the storage key, who also create and modify the instance (``infra.keys``)."""
    log_kms_key_arn: pulumi.Input[str]
    """The customer key of the exported log groups (``components.kms.LogsKey``)."""


def tuning_for(settings: DatabaseConfig) -> PostgresTuning:
    return PostgresTuning(
        memory_bytes=settings.memory_bytes,
        max_connections=settings.max_connections,
        log_min_duration_statement_ms=settings.log_min_duration_statement_ms,
        idle_in_transaction_session_timeout_ms=settings.idle_in_transaction_session_timeout_ms,
    )


class TrackingDatabase(pulumi.ComponentResource):
    address: pulumi.Output[str]
    """Host name only (``aws.rds.Instance.endpoint`` is ``host:port``)."""
    port: pulumi.Output[int]
    database_name: pulumi.Output[str]
    master_username: pulumi.Output[str]
    master_password: pulumi.Output[str]
    """Generated, secret; never in plain config."""
    security_group_id: pulumi.Output[str]
    max_connections: int
    """The rendered max_connections, for pool sizing elsewhere."""

    def __init__(self, name: str, args: TrackingDatabaseArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:TrackingDatabase", name, {}, opts)
        settings = args["settings"]
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        tuning = tuning_for(settings)
        self.max_connections = max_connections_for(tuning)

        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        self.kms_key = rotating_key(
            f"{name}-key",
            f"{name}: RDS storage and Performance Insights encryption",
            tags,
            child,
            policy=pulumi.Output.all(args["key_administrators"], account).apply(
                lambda values: json.dumps(database_key_policy(values[0], values[0], values[1], args["region"]))
            ),
        )
        # Fixed (rendering.log_groups): the exported log groups' names contain it, and the stack
        # creates those groups first so that they get a retention and the logs key.
        self.identifier = rds_instance_identifier(name)
        self.log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-logs-{log}",
                name=rds_log_group(self.identifier, log),
                retention_in_days=settings.log_retention_days,
                kms_key_id=args["log_kms_key_arn"],
                tags=tags,
                opts=child,
            )
            for log in RDS_LOG_EXPORTS
        ]
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-sg",
            description="MLflow PostgreSQL: 5432 from the tracking server's security groups only",
            vpc_id=args["vpc_id"],
            tags=tags,
            opts=child,
        )
        self.ingress_rules = [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-ingress-{index}",
                security_group_id=self.security_group.id,
                referenced_security_group_id=client,
                ip_protocol="tcp",
                from_port=POSTGRES_PORT,
                to_port=POSTGRES_PORT,
                description="PostgreSQL from an allowed client security group",
                opts=child,
            )
            for index, client in enumerate(args["client_security_group_ids"])
        ]
        self.subnet_group = aws.rds.SubnetGroup(
            f"{name}-subnets", subnet_ids=list(args["subnet_ids"]), tags=tags, opts=child
        )
        self.parameter_group = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{settings.engine_major}",
            description=f"MLflow tuning for {settings.memory_bytes // 2**20} MiB ({settings.instance_class})",
            # Static parameters apply at the next reboot, and engine defaults are left out: see
            # rendering.rds_parameters for the facts per family and why (permanent diffs).
            parameters=[
                {"name": p.name, "value": p.value, "apply_method": p.apply_method}
                for p in rds_parameter_group(render_postgres_parameters(tuning), settings.engine_major)
            ],
            tags=tags,
            # A new family (major upgrade) needs a new group before the old one can go.
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=False),
        )
        self.password = random.RandomPassword(
            f"{name}-master-password",
            length=40,
            special=True,
            override_special="-_",  # URL- and libpq-safe: the password is embedded in DSNs
            min_lower=1,
            min_upper=1,
            min_numeric=1,
            opts=child,
        )
        monitoring_role_arn: pulumi.Output[str] | None = None
        monitoring_attachments: list[pulumi.Resource] = []
        if settings.monitoring_interval_seconds:
            monitoring_role = aws.iam.Role(
                f"{name}-monitoring",
                assume_role_policy=service_trust_policy("monitoring.rds.amazonaws.com"),
                tags=tags,
                opts=child,
            )
            monitoring_attachments.append(
                aws.iam.RolePolicyAttachment(
                    f"{name}-monitoring-policy",
                    role=monitoring_role.name,
                    policy_arn=ENHANCED_MONITORING_POLICY_ARN,
                    opts=child,
                )
            )
            monitoring_role_arn = monitoring_role.arn

        final_snapshot_identifier: pulumi.Output[str] | None = None
        if settings.final_snapshot:
            # Unique per stack lifetime: a fixed "<name>-final" collides with the snapshot the
            # previous incarnation left behind (final snapshots outlive the instance), and the
            # second destroy fails with DBSnapshotAlreadyExists. final_snapshot_identifier is
            # not ForceNew in terraform-provider-aws (internal/service/rds/instance.go: Optional,
            # only sent with DeleteDBInstance), so on an existing stack this changes state only
            # and never replaces or modifies the instance.
            self.final_snapshot_suffix = random.RandomId(f"{name}-final-snapshot-id", byte_length=4, opts=child)
            final_snapshot_identifier = pulumi.Output.concat(
                f"{self.identifier}-final-", self.final_snapshot_suffix.hex
            )

        self.instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=self.identifier,
            engine="postgres",
            # Major version only: AWS applies minor versions itself (auto_minor_version_upgrade),
            # and the provider treats the prefix as matching, so they never show up as drift.
            engine_version=settings.engine_version,
            auto_minor_version_upgrade=True,
            instance_class=settings.instance_class,
            allocated_storage=settings.allocated_storage_gib,
            max_allocated_storage=settings.max_allocated_storage_gib,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=self.kms_key.arn,
            db_name=settings.database_name,
            username=settings.master_username,
            password=self.password.result,
            port=POSTGRES_PORT,
            parameter_group_name=self.parameter_group.name,
            db_subnet_group_name=self.subnet_group.name,
            vpc_security_group_ids=[self.security_group.id],
            publicly_accessible=False,
            multi_az=settings.multi_az,
            backup_retention_period=settings.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=settings.deletion_protection,
            skip_final_snapshot=not settings.final_snapshot,
            final_snapshot_identifier=final_snapshot_identifier,
            performance_insights_enabled=True,
            performance_insights_kms_key_id=self.kms_key.arn,
            performance_insights_retention_period=settings.performance_insights_retention_days,
            monitoring_interval=settings.monitoring_interval_seconds,
            monitoring_role_arn=monitoring_role_arn,
            enabled_cloudwatch_logs_exports=list(RDS_LOG_EXPORTS),
            iam_database_authentication_enabled=True,
            ca_cert_identifier=RDS_CA,
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # Storage autoscaling grows allocated_storage on its own: not drift. Grow the
                # ceiling with database.maxAllocatedStorageGib instead.
                ignore_changes=["allocatedStorage"],
                additional_secret_outputs=["password"],
                # The log groups first: RDS would otherwise create them, never expiring. Enhanced
                # monitoring needs the role's policy attached when the instance starts using the
                # role; the ARN alone does not wait for the attachment.
                depends_on=[*self.log_groups, *monitoring_attachments],
            ),
        )
        self.address = self.instance.address
        self.port = self.instance.port
        self.database_name = pulumi.Output.from_input(settings.database_name)
        self.master_username = pulumi.Output.from_input(settings.master_username)
        self.master_password = pulumi.Output.secret(self.password.result)
        self.security_group_id = self.security_group.id
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "databaseName": self.database_name,
                "masterUsername": self.master_username,
                "masterPassword": self.master_password,
                "securityGroupId": self.security_group_id,
                "maxConnections": self.max_connections,
            }
        )

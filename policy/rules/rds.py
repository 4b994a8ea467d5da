"""RDS: the tracking database (encryption, no public access, backups, deletion protection, TLS-only)."""

from __future__ import annotations

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from policy.rules.common import PROD_STACKS_SCHEMA, as_list, is_mapping, is_prod, known, truthy
from policy.rules.registry import resource_rule, stack_rule

RDS_INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP_TYPES = frozenset(
    {"aws:rds/parameterGroup:ParameterGroup", "aws:rds/clusterParameterGroup:ClusterParameterGroup"}
)


@resource_rule(
    name="rds-storage-encrypted",
    description="RDS storage is encrypted at rest (FSBP RDS.3, CKV_AWS_16, CIS AWS 2.3.1).",
    severity=Severity.HIGH,
)
def rds_storage_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (RDS_INSTANCE, "aws:rds/cluster:Cluster"):
        return
    if args.props.get("storageEncrypted") is not True:
        report("storageEncrypted must be true (it defaults to false).", None)


@resource_rule(
    name="rds-not-publicly-accessible",
    description="RDS instances are not publicly accessible (FSBP RDS.2, CKV_AWS_17).",
    severity=Severity.CRITICAL,
)
def rds_not_publicly_accessible(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == RDS_INSTANCE and truthy(args.props.get("publiclyAccessible")):
        report("publiclyAccessible must be false: the database is reached from the cluster only.", None)


@resource_rule(
    name="rds-backup-retention",
    description="RDS automated backups are kept at least 1 day, and at least 7 days in production (FSBP RDS.11, "
    "CKV_AWS_133).",
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "prodStacks": PROD_STACKS_SCHEMA,
            "minimumDays": {"type": "integer", "default": 1, "minimum": 1},
            "prodMinimumDays": {"type": "integer", "default": 7, "minimum": 1},
        }
    ),
)
def rds_backup_retention(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != RDS_INSTANCE:
        return
    config = args.get_config()
    prod = is_prod(args.urn, config)
    minimum = int(config.get("prodMinimumDays", 7) if prod else config.get("minimumDays", 1))
    days = args.props.get("backupRetentionPeriod")
    days = 0 if days is None else int(days)  # the provider's default is 0: no automated backups
    if days < minimum:
        where = "a production" if prod else "any"
        report(f"backupRetentionPeriod is {days} day(s); {where} stack needs at least {minimum}.", None)


@resource_rule(
    name="rds-deletion-protection-in-prod",
    description="Production RDS instances have deletion protection and take a final snapshot (FSBP RDS.8, "
    "CKV_AWS_293).",
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(properties={"prodStacks": PROD_STACKS_SCHEMA}),
)
def rds_deletion_protection_in_prod(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != RDS_INSTANCE or not is_prod(args.urn, args.get_config()):
        return
    if args.props.get("deletionProtection") is not True:
        report("deletionProtection must be true in a production stack.", None)
    if args.props.get("skipFinalSnapshot") is not False:
        report("skipFinalSnapshot must be false in a production stack: deleting it must leave a snapshot.", None)


@resource_rule(
    name="rds-force-ssl",
    description="PostgreSQL parameter groups set rds.force_ssl=1 (CKV2_AWS_69).",
    severity=Severity.HIGH,
)
def rds_force_ssl(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in PARAMETER_GROUP_TYPES or "postgres" not in str(args.props.get("family") or ""):
        return
    values = [
        str(p.get("value"))
        for p in as_list(args.props.get("parameters"))
        if is_mapping(p) and p.get("name") == "rds.force_ssl"
    ]
    if not values:
        report("rds.force_ssl is not set; it must be 1 so the database refuses unencrypted connections.", None)
    elif any(v not in ("1", "1.0") for v in values):
        report(f"rds.force_ssl is {values[0]!r}; it must be 1.", None)


@stack_rule(
    name="rds-uses-stack-parameter-group",
    description="Every PostgreSQL RDS instance uses a parameter group from this stack (the one rds-force-ssl checks).",
    severity=Severity.HIGH,
)
def rds_parameter_group_attached(args: StackValidationArgs, report: ReportViolation) -> None:
    groups = {r.urn: r for r in args.resources if r.resource_type in PARAMETER_GROUP_TYPES}
    names = {known(g.props, "name") for g in groups.values()} - {None}
    for instance in args.resources:
        if instance.resource_type != RDS_INSTANCE or "postgres" not in str(known(instance.props, "engine") or ""):
            continue
        linked = any(d.urn in groups for d in instance.property_dependencies.get("parameterGroupName", []))
        if not linked and known(instance.props, "parameterGroupName") not in names:
            report(
                f"Instance {instance.name} does not use a parameter group of this stack; a default group does not "
                "enforce rds.force_ssl on every engine version.",
                instance.urn,
            )

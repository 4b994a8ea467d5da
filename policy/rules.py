"""The platform's security invariants as CrossGuard policies (importable; no ``PolicyPack`` here).

Why a policy pack when the components already set all of this: the components are one way to
build the stack, the policies are the contract. They run in ``pulumi preview``/``pulumi up``
(``--policy-pack policy``) against whatever the program registers, so a refactor, a new
component or a hand-edited resource cannot silently drop a property the platform depends on.

How the rules see resources: ``args.props`` are the resource's *inputs* with wire (camelCase)
names, wrapped by the SDK so that reading a value unknown during preview raises
``UnknownValueError``; the engine reports that as "can't run policy during preview" (advisory) and
the rule runs again with real values during ``pulumi up``. Rules therefore read only what they
need and never treat "unknown" as "fine". Numbers arrive as floats (``2.0``).

Which stacks are production: the stack name is taken from the resource URN
(``urn:pulumi:<stack>::<project>::…``) and compared with the policy's ``prodStacks`` config value
(default ``["prod"]``); set it with ``--policy-pack-config`` (see docs/ci.md).

Check ids in the descriptions: AWS FSBP / checkov / CIS, from shared/reference.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError  # raised when a rule reads a value unknown in preview

MANDATORY = EnforcementLevel.MANDATORY
DEFAULT_PROD_STACKS: tuple[str, ...] = ("prod",)

PROD_STACKS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string"},
    "default": list(DEFAULT_PROD_STACKS),
    "description": "Stack names treated as production (matched against the stack part of each URN).",
}

# ---------------------------------------------------------------------------------------------
# Helpers shared by the rules
# ---------------------------------------------------------------------------------------------


def stack_name(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type chain>::<name>`` → ``<stack>``."""
    head = urn.split("::", 1)[0]
    return head.rsplit(":", 1)[-1]


def type_chain(urn: str) -> list[str]:
    """The parent types and the resource's own type, outermost first (``A$B$C`` in the URN)."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def is_prod(urn: str, config: Mapping[str, Any]) -> bool:
    stacks = config.get("prodStacks") or DEFAULT_PROD_STACKS
    return stack_name(urn) in set(stacks)


def _is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


def _is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _get(value: Any, *path: str) -> Any:
    """Walk nested mappings; ``None`` when any step is missing (unknowns still raise)."""
    for key in path:
        if not _is_mapping(value) or key not in value:
            return None
        value = value[key]
    return value


def _mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping (plain or the SDK's proxy), else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if _is_list(value):
        return list(value)
    return [value]


def _truthy(value: Any) -> bool:
    """Booleans, and the strings some providers accept for them."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


# ---------------------------------------------------------------------------------------------
# S3
# ---------------------------------------------------------------------------------------------

BUCKET_TYPES = frozenset({"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"})
PUBLIC_ACCESS_BLOCK_TYPES = frozenset(
    {
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock",
    }
)
BUCKET_POLICY_TYPE = "aws:s3/bucketPolicy:BucketPolicy"
SSE_TYPES = frozenset(
    {
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
    }
)
VERSIONING_TYPES = frozenset(
    {"aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2"}
)
LOGGING_TYPES = frozenset({"aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2"})
PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = ("aws:kms", "aws:kms:dsse", "AES256")


def _s3_block_public_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in PUBLIC_ACCESS_BLOCK_TYPES:
        return
    missing = [flag for flag in PUBLIC_ACCESS_FLAGS if args.props.get(flag) is not True]
    if missing:
        report(f"Block Public Access flags not set to true: {', '.join(missing)}.", None)


s3_block_public_access = ResourceValidationPolicy(
    name="s3-block-public-access",
    description="S3 Block Public Access has all four flags on (FSBP S3.8/S3.1, CKV_AWS_53..56, CIS AWS 2.1.4).",
    enforcement_level=MANDATORY,
    severity=Severity.CRITICAL,
    validate=_s3_block_public_access,
)


def _load_policy_document(raw: Any) -> Mapping[str, Any] | None:
    """IAM/S3 policy documents arrive as JSON strings (``Output.json_dumps``); accept dicts too."""
    if _is_mapping(raw):
        return _mapping(raw)
    if isinstance(raw, str):
        try:
            document = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return document if isinstance(document, dict) else None
    return None


def _statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in _as_list(document.get("Statement")) if _is_mapping(s)]


def _principal_is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if _is_mapping(principal):
        return "*" in _as_list(principal.get("AWS"))
    return False


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny" or not _principal_is_everyone(statement.get("Principal")):
        return False
    actions = {str(a).lower() for a in _as_list(statement.get("Action"))}
    if not actions & {"s3:*", "*"}:
        return False
    condition = _get(statement, "Condition", "Bool", "aws:SecureTransport")
    return any(str(value).lower() == "false" for value in _as_list(condition))


def _s3_tls_only(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != BUCKET_POLICY_TYPE:
        return
    document = _load_policy_document(args.props.get("policy"))
    if document is None:
        report("The bucket policy is missing or is not a JSON policy document.", None)
        return
    for statement in _statements(document):
        if not _denies_insecure_transport(statement):
            continue
        resources = {str(r) for r in _as_list(statement.get("Resource"))}
        if any(not r.endswith("/*") and f"{r}/*" in resources for r in resources):
            return
        report(
            "The aws:SecureTransport=false deny must cover both the bucket ARN and its objects "
            f"(<arn> and <arn>/*); it covers {sorted(resources)}.",
            None,
        )
        return
    report(
        'No statement denies s3:* to "*" when aws:SecureTransport is false: requests over plain HTTP '
        "would be accepted.",
        None,
    )


s3_tls_only_policy = ResourceValidationPolicy(
    name="s3-tls-only-bucket-policy",
    description="S3 bucket policies deny any request without TLS, on the bucket and its objects (FSBP S3.5, "
    "CKV_AWS_379, CIS AWS 2.1.1).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_s3_tls_only,
)


def _s3_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in SSE_TYPES:
        return
    rules = [r for r in _as_list(args.props.get("rules")) if _is_mapping(r)]
    defaults = [d for d in (_get(r, "applyServerSideEncryptionByDefault") for r in rules) if _is_mapping(d)]
    if not defaults:
        report("No default server-side encryption rule (applyServerSideEncryptionByDefault).", None)
        return
    for default in defaults:
        algorithm = str(default.get("sseAlgorithm"))
        if algorithm not in SSE_ALGORITHMS:
            report(f"Unsupported default encryption algorithm {algorithm!r}; use one of {SSE_ALGORITHMS}.", None)
        elif algorithm.startswith("aws:kms") and not _get(default, "kmsMasterKeyId"):
            report(
                f"{algorithm} without kmsMasterKeyId uses the AWS-managed aws/s3 key, whose key policy cannot be "
                "restricted or rotated on our terms: name the customer-managed key.",
                None,
            )


s3_default_encryption = ResourceValidationPolicy(
    name="s3-default-encryption",
    description="S3 buckets have default encryption: SSE-KMS with a customer-managed key, or SSE-S3 (CKV_AWS_19, "
    "CKV_AWS_145).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_s3_encryption,
)


def _s3_versioning(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in VERSIONING_TYPES:
        return
    status = _get(args.props.get("versioningConfiguration"), "status")
    if status != "Enabled":
        report(f"Versioning status is {status!r}; it must be 'Enabled' so overwritten models can be recovered.", None)


s3_versioning = ResourceValidationPolicy(
    name="s3-versioning-enabled",
    description="S3 bucket versioning is Enabled (FSBP S3.14, CKV_AWS_21).",
    enforcement_level=MANDATORY,
    severity=Severity.MEDIUM,
    validate=_s3_versioning,
)


class _BucketIndex:
    """Links the stand-alone S3 resources (v7 style) to the bucket they configure.

    Preferred link: the engine's property dependency of the ``bucket`` input on the Bucket
    resource (known even during preview of a new stack). Fallback: the ``bucket`` value equals
    the bucket's name (imported or explicitly named buckets).
    """

    def __init__(self, resources: Sequence[PolicyResource]):
        self.buckets = [r for r in resources if r.resource_type in BUCKET_TYPES]
        self._by_urn = {b.urn: b for b in self.buckets}
        self._by_name: dict[str, PolicyResource] = {}
        for bucket in self.buckets:
            name = _known(bucket.props, "bucket")
            if isinstance(name, str):
                self._by_name[name] = bucket

    def target(self, resource: PolicyResource, prop: str = "bucket") -> PolicyResource | None:
        for dependency in resource.property_dependencies.get(prop, []):
            if dependency.urn in self._by_urn:
                return self._by_urn[dependency.urn]
        value = _known(resource.props, prop)
        return self._by_name.get(value) if isinstance(value, str) else None


def _known(props: Mapping[str, Any], key: str) -> Any:
    """A prop's value, or ``None`` when it is absent or not known yet (stack rules must not abort)."""
    try:
        return props.get(key)
    except UnknownValueError:
        return None


COMPANIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("a BucketPublicAccessBlock", frozenset({"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"})),
    ("a BucketServerSideEncryptionConfiguration", SSE_TYPES),
    ("a BucketVersioning", VERSIONING_TYPES),
    ("a BucketPolicy (TLS-only)", frozenset({BUCKET_POLICY_TYPE})),
)


def _s3_bucket_companions(args: StackValidationArgs, report: ReportViolation) -> None:
    index = _BucketIndex(args.resources)
    configured: dict[str, set[str]] = {b.urn: set() for b in index.buckets}
    for resource in args.resources:
        for label, types in COMPANIONS:
            if resource.resource_type in types:
                bucket = index.target(resource)
                if bucket is not None:
                    configured[bucket.urn].add(label)
    for bucket in index.buckets:
        missing = [label for label, _ in COMPANIONS if label not in configured[bucket.urn]]
        if missing:
            report(f"Bucket {bucket.name} has no {', no '.join(missing)} in this stack.", bucket.urn)


s3_bucket_companions = StackValidationPolicy(
    name="s3-bucket-hardening-present",
    description="Every S3 bucket has its Block Public Access, default encryption, versioning and TLS-only policy "
    "resources: the per-resource rules cannot see a resource that is missing.",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_s3_bucket_companions,
)


def _s3_access_logging(args: StackValidationArgs, report: ReportViolation) -> None:
    if not args.resources or not is_prod(args.resources[0].urn, args.get_config()):
        return
    index = _BucketIndex(args.resources)
    logged: set[str] = set()
    log_targets: set[str] = set()
    for resource in args.resources:
        if resource.resource_type not in LOGGING_TYPES:
            continue
        source = index.target(resource)
        target = index.target(resource, "targetBucket")
        if source is not None and (target is not None or _known(resource.props, "targetBucket")):
            logged.add(source.urn)
        if target is not None:
            log_targets.add(target.urn)
    for bucket in index.buckets:
        # A log bucket logging into itself (or another log bucket) would loop; AWS advises against it.
        if bucket.urn not in logged and bucket.urn not in log_targets:
            report(f"Bucket {bucket.name} has no server access logging (BucketLogging) in production.", bucket.urn)


s3_access_logging_in_prod = StackValidationPolicy(
    name="s3-access-logging-in-prod",
    description="In production stacks every S3 bucket except the log buckets themselves has server access logging "
    "(FSBP S3.9, CKV_AWS_18).",
    enforcement_level=MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(properties={"prodStacks": PROD_STACKS_SCHEMA}),
    validate=_s3_access_logging,
)

# ---------------------------------------------------------------------------------------------
# RDS
# ---------------------------------------------------------------------------------------------

RDS_INSTANCE = "aws:rds/instance:Instance"
PARAMETER_GROUP_TYPES = frozenset(
    {"aws:rds/parameterGroup:ParameterGroup", "aws:rds/clusterParameterGroup:ClusterParameterGroup"}
)


def _is_postgres_instance(props: Mapping[str, Any]) -> bool:
    return "postgres" in str(props.get("engine") or "")


def _rds_storage_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (RDS_INSTANCE, "aws:rds/cluster:Cluster"):
        return
    if args.props.get("storageEncrypted") is not True:
        report("storageEncrypted must be true (it defaults to false).", None)


rds_storage_encrypted = ResourceValidationPolicy(
    name="rds-storage-encrypted",
    description="RDS storage is encrypted at rest (FSBP RDS.3, CKV_AWS_16, CIS AWS 2.3.1).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_rds_storage_encrypted,
)


def _rds_not_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == RDS_INSTANCE and _truthy(args.props.get("publiclyAccessible")):
        report("publiclyAccessible must be false: the database is reached from the cluster only.", None)


rds_not_publicly_accessible = ResourceValidationPolicy(
    name="rds-not-publicly-accessible",
    description="RDS instances are not publicly accessible (FSBP RDS.2, CKV_AWS_17).",
    enforcement_level=MANDATORY,
    severity=Severity.CRITICAL,
    validate=_rds_not_public,
)


def _rds_backups(args: ResourceValidationArgs, report: ReportViolation) -> None:
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


rds_backup_retention = ResourceValidationPolicy(
    name="rds-backup-retention",
    description="RDS automated backups are kept at least 1 day, and at least 7 days in production (FSBP RDS.11, "
    "CKV_AWS_133).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "prodStacks": PROD_STACKS_SCHEMA,
            "minimumDays": {"type": "integer", "default": 1, "minimum": 1},
            "prodMinimumDays": {"type": "integer", "default": 7, "minimum": 1},
        }
    ),
    validate=_rds_backups,
)


def _rds_deletion_protection(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != RDS_INSTANCE or not is_prod(args.urn, args.get_config()):
        return
    if args.props.get("deletionProtection") is not True:
        report("deletionProtection must be true in a production stack.", None)
    if args.props.get("skipFinalSnapshot") is not False:
        report("skipFinalSnapshot must be false in a production stack: deleting it must leave a snapshot.", None)


rds_deletion_protection_in_prod = ResourceValidationPolicy(
    name="rds-deletion-protection-in-prod",
    description="Production RDS instances have deletion protection and take a final snapshot (FSBP RDS.8, "
    "CKV_AWS_293).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(properties={"prodStacks": PROD_STACKS_SCHEMA}),
    validate=_rds_deletion_protection,
)


def _rds_force_ssl(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in PARAMETER_GROUP_TYPES or "postgres" not in str(args.props.get("family") or ""):
        return
    values = [
        str(p.get("value"))
        for p in _as_list(args.props.get("parameters"))
        if _is_mapping(p) and p.get("name") == "rds.force_ssl"
    ]
    if not values:
        report("rds.force_ssl is not set; it must be 1 so the database refuses unencrypted connections.", None)
    elif any(v not in ("1", "1.0") for v in values):
        report(f"rds.force_ssl is {values[0]!r}; it must be 1.", None)


rds_force_ssl = ResourceValidationPolicy(
    name="rds-force-ssl",
    description="PostgreSQL parameter groups set rds.force_ssl=1 (CKV2_AWS_69).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_rds_force_ssl,
)


def _rds_parameter_group_attached(args: StackValidationArgs, report: ReportViolation) -> None:
    groups = {r.urn: r for r in args.resources if r.resource_type in PARAMETER_GROUP_TYPES}
    names = {_known(g.props, "name") for g in groups.values()} - {None}
    for instance in args.resources:
        if instance.resource_type != RDS_INSTANCE or "postgres" not in str(_known(instance.props, "engine") or ""):
            continue
        linked = any(d.urn in groups for d in instance.property_dependencies.get("parameterGroupName", []))
        if not linked and _known(instance.props, "parameterGroupName") not in names:
            report(
                f"Instance {instance.name} does not use a parameter group of this stack; a default group does not "
                "enforce rds.force_ssl on every engine version.",
                instance.urn,
            )


rds_parameter_group_attached = StackValidationPolicy(
    name="rds-uses-stack-parameter-group",
    description="Every PostgreSQL RDS instance uses a parameter group from this stack (the one rds-force-ssl checks).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_rds_parameter_group_attached,
)

# ---------------------------------------------------------------------------------------------
# IAM: the training and tracking-server roles
# ---------------------------------------------------------------------------------------------

ROLE_POLICY_TYPES = frozenset({"aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"})
ROLE_TYPE = "aws:iam/role:Role"
DEFAULT_SCOPED_COMPONENTS = ("mlflow:index:TrainingJobAccess", "mlflow:index:TrackingServerAccess")
DEFAULT_TRAINING_COMPONENTS = ("mlflow:index:TrainingJobAccess",)
_ARN_RESOURCE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:(?P<resource>.*)$")


def _policy_documents(args: ResourceValidationArgs) -> list[Any]:
    """The raw policy documents a resource carries: ``policy`` or a role's inline policies."""
    if args.resource_type in ROLE_POLICY_TYPES:
        return [args.props.get("policy")]
    if args.resource_type == ROLE_TYPE:
        return [_get(p, "policy") for p in _as_list(args.props.get("inlinePolicies")) if _is_mapping(p)]
    return []


def _in_components(urn: str, component_types: Sequence[str]) -> bool:
    return bool(set(type_chain(urn)[:-1]) & set(component_types))


def _is_wildcard_resource(resource: str) -> bool:
    """``*``, or an ARN whose resource part is only a wildcard (``arn:aws:s3:::*``,
    ``arn:aws:kms:…:key/*``, ``arn:aws:s3:::bucket/*`` = every object of the bucket)."""
    if resource.strip() == "*":
        return True
    match = _ARN_RESOURCE.match(resource)
    if not match:
        return False
    tail = match["resource"]
    tail = tail.split("/", 1)[1] if "/" in tail else tail
    return tail in ("*", "*/*")


def _allow_statements(raw: Any) -> Iterator[Mapping[str, Any]] | None:
    document = _load_policy_document(raw)
    if document is None:
        return None
    return (s for s in _statements(document) if s.get("Effect", "Allow") == "Allow")


def _iam_no_wildcards(args: ResourceValidationArgs, report: ReportViolation) -> None:
    components = args.get_config().get("componentTypes") or DEFAULT_SCOPED_COMPONENTS
    if not _in_components(args.urn, components):
        return
    for raw in _policy_documents(args):
        statements = _allow_statements(raw)
        if statements is None:
            report("The policy is missing or is not a JSON policy document.", None)
            continue
        for statement in statements:
            sid = statement.get("Sid", "<no Sid>")
            for key in ("NotAction", "NotResource"):
                if key in statement:
                    report(f"Statement {sid}: Allow with {key} grants everything not listed.", None)
            actions = [str(a) for a in _as_list(statement.get("Action"))]
            wild_actions = [a for a in actions if "*" in a]
            if wild_actions:
                report(f"Statement {sid}: wildcard actions {wild_actions}; list the exact actions.", None)
            wild_resources = [r for r in map(str, _as_list(statement.get("Resource"))) if _is_wildcard_resource(r)]
            if wild_resources:
                report(f"Statement {sid}: wildcard resources {wild_resources}; scope to the artifact prefix.", None)


iam_no_wildcards = ResourceValidationPolicy(
    name="iam-no-wildcards",
    description="The training and tracking-server role policies grant no wildcard actions or resources (FSBP "
    "IAM.1/IAM.21, CKV_AWS_355/356, CKV_AWS_288).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "componentTypes": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(DEFAULT_SCOPED_COMPONENTS),
                "description": "Component types whose IAM policies are checked (other roles, e.g. EKS "
                "controllers with AWS-documented policies, are out of scope).",
            }
        }
    ),
    validate=_iam_no_wildcards,
)


def _iam_training_put_and_get(args: ResourceValidationArgs, report: ReportViolation) -> None:
    components = args.get_config().get("componentTypes") or DEFAULT_TRAINING_COMPONENTS
    if args.resource_type not in ROLE_POLICY_TYPES or not _in_components(args.urn, components):
        return
    statements = _allow_statements(args.props.get("policy"))
    if statements is None:
        report("The policy is missing or is not a JSON policy document.", None)
        return
    granted: dict[str, set[str]] = {}
    for statement in statements:
        actions = [str(a).lower() for a in _as_list(statement.get("Action"))]
        for resource in map(str, _as_list(statement.get("Resource"))):
            granted.setdefault(resource, set()).update(actions)

    def allows(actions: set[str], wanted: str) -> bool:
        return any(fnmatch.fnmatchcase(wanted, pattern) for pattern in actions)

    if any(allows(a, "s3:putobject") and allows(a, "s3:getobject") for a in granted.values()):
        return
    has_put = any(allows(a, "s3:putobject") for a in granted.values())
    has_get = any(allows(a, "s3:getobject") for a in granted.values())
    problems = {
        (True, False): "grants s3:PutObject but not s3:GetObject",
        (False, True): "grants s3:GetObject but not s3:PutObject",
        (False, False): "grants neither s3:PutObject nor s3:GetObject",
        (True, True): "grants s3:PutObject and s3:GetObject only on different resources",
    }
    problem = problems[(has_put, has_get)]
    report(
        f"The training role's artifact policy {problem}: jobs must both log and load the same artifacts "
        "(the guide's most common production failure).",
        None,
    )


iam_training_put_and_get = ResourceValidationPolicy(
    name="iam-training-role-put-and-get",
    description="The training role's artifact policy (direct access mode) grants s3:PutObject and s3:GetObject on "
    "the same artifact objects.",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={
            "componentTypes": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(DEFAULT_TRAINING_COMPONENTS),
                "description": "Component types whose role policies are the training role's.",
            }
        }
    ),
    validate=_iam_training_put_and_get,
)

# ---------------------------------------------------------------------------------------------
# EKS (raw aws.eks.Cluster and the pulumi_eks component)
# ---------------------------------------------------------------------------------------------

EKS_CLUSTER = "aws:eks/cluster:Cluster"
EKS_COMPONENT = "eks:index:Cluster"
EKS_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
OPEN_CIDRS = frozenset({"0.0.0.0/0", "::/0"})


def _eks_secrets_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == EKS_COMPONENT:
        if not args.props.get("encryptionConfigKeyArn"):
            report("encryptionConfigKeyArn is not set: Kubernetes Secrets are not envelope-encrypted.", None)
        return
    if args.resource_type != EKS_CLUSTER:
        return
    configs = [c for c in _as_list(args.props.get("encryptionConfig")) if _is_mapping(c)]
    if not any("secrets" in _as_list(c.get("resources")) and _get(c, "provider", "keyArn") for c in configs):
        report("encryptionConfig must cover resources ['secrets'] with a KMS provider.keyArn.", None)


eks_secrets_encryption = ResourceValidationPolicy(
    name="eks-secrets-encryption",
    description="EKS envelope-encrypts Kubernetes Secrets with a KMS key (FSBP EKS.3, CKV_AWS_58, CIS EKS 5.3.1).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_eks_secrets_encryption,
)


def _eks_logging(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in (EKS_CLUSTER, EKS_COMPONENT):
        return
    enabled = {str(t) for t in _as_list(args.props.get("enabledClusterLogTypes"))}
    missing = [t for t in EKS_LOG_TYPES if t not in enabled]
    if missing:
        report(f"Control-plane log types not enabled: {', '.join(missing)}.", None)


eks_control_plane_logging = ResourceValidationPolicy(
    name="eks-control-plane-logging",
    description="EKS sends all five control-plane log types to CloudWatch (FSBP EKS.8, CKV_AWS_37, CIS EKS 2.1.1).",
    enforcement_level=MANDATORY,
    severity=Severity.MEDIUM,
    validate=_eks_logging,
)


def _eks_endpoint(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == EKS_CLUSTER:
        settings = _mapping(args.props.get("vpcConfig"))
    elif args.resource_type == EKS_COMPONENT:
        settings = args.props
    else:
        return
    # AWS defaults: public endpoint on, open to 0.0.0.0/0; private endpoint off.
    public = settings.get("endpointPublicAccess")
    public = True if public is None else _truthy(public)
    if not _truthy(settings.get("endpointPrivateAccess")):
        report("endpointPrivateAccess must be true so nodes and pods reach the API server inside the VPC.", None)
    if not public:
        return
    cidrs = {str(c) for c in _as_list(settings.get("publicAccessCidrs"))}
    if not cidrs:
        report("The public endpoint is open to 0.0.0.0/0 (publicAccessCidrs unset): disable it or list CIDRs.", None)
    elif cidrs & OPEN_CIDRS:
        report(f"publicAccessCidrs includes {sorted(cidrs & OPEN_CIDRS)}: list the operators' CIDRs instead.", None)


eks_endpoint_access = ResourceValidationPolicy(
    name="eks-endpoint-access-restricted",
    description="The EKS API endpoint is private, or public only to listed CIDRs (FSBP EKS.1, CKV_AWS_38/39, CIS EKS "
    "5.4.1/5.4.2).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    validate=_eks_endpoint,
)

# ---------------------------------------------------------------------------------------------
# Kubernetes workloads and ingress
# ---------------------------------------------------------------------------------------------

POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
LONG_RUNNING = frozenset(
    {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:DaemonSet",
        "kubernetes:apps/v1:ReplicaSet",
    }
)
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system",)
EXCLUDE_NAMESPACES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string"},
    "default": list(DEFAULT_EXCLUDED_NAMESPACES),
    "description": "Namespaces whose workloads are not checked (cluster add-ons managed by AWS).",
}


def _pod_spec(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(args.resource_type)
    if path is None:
        return None
    excluded = args.get_config().get("excludeNamespaces")
    excluded = DEFAULT_EXCLUDED_NAMESPACES if excluded is None else excluded
    if _get(args.props, "metadata", "namespace") in set(excluded):
        return None
    spec = _get(args.props, *path)
    return _mapping(spec)


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(role, container)``: role is ``container``, ``sidecar`` (native: an init container with
    ``restartPolicy: Always``) or ``init``."""
    for container in _as_list(spec.get("initContainers")):
        if _is_mapping(container):
            yield ("sidecar" if container.get("restartPolicy") == "Always" else "init"), container
    for container in _as_list(spec.get("containers")):
        if _is_mapping(container):
            yield "container", container


def _label(role: str, container: Mapping[str, Any]) -> str:
    return f"{role} {container.get('name', '<unnamed>')!r}"


def _k8s_non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args)
    if spec is None:
        return
    pod_context = _mapping(spec.get("securityContext"))
    for role, container in _containers(spec):
        context = _mapping(container.get("securityContext"))
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        label = _label(role, container)
        if user is not None and int(user) == 0:
            report(f"{label} runs as UID 0.", None)
        elif non_root is False:
            report(f"{label} sets runAsNonRoot: false.", None)
        elif non_root is not True and user is None:
            report(f"{label} sets neither runAsNonRoot: true nor a non-zero runAsUser (pod or container).", None)
        if context.get("privileged") is True:
            report(f"{label} is privileged (root on the node).", None)


k8s_non_root = ResourceValidationPolicy(
    name="k8s-run-as-non-root",
    description="Every container runs as a non-root user and unprivileged (CKV_K8S_23/40, CKV_K8S_16, CIS K8s 5.2.7).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(properties={"excludeNamespaces": EXCLUDE_NAMESPACES_SCHEMA}),
    validate=_k8s_non_root,
)


def _k8s_resources(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args)
    if spec is None:
        return
    config = args.get_config()
    wanted = {
        "limits": config.get("requiredLimits") or ["cpu", "memory"],
        "requests": config.get("requiredRequests") or ["cpu", "memory"],
    }
    for role, container in _containers(spec):
        resources = _mapping(container.get("resources"))
        for kind, names in wanted.items():
            have = _mapping(resources.get(kind))
            missing = [n for n in names if not have.get(n)]
            if missing:
                report(f"{_label(role, container)} has no {kind} for {', '.join(missing)}.", None)


k8s_resource_limits = ResourceValidationPolicy(
    name="k8s-resource-limits",
    description="Every container declares CPU and memory requests and limits (CKV_K8S_10/11/12/13).",
    enforcement_level=MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(
        properties={
            "excludeNamespaces": EXCLUDE_NAMESPACES_SCHEMA,
            "requiredLimits": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
            "requiredRequests": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
        }
    ),
    validate=_k8s_resources,
)


def _k8s_probes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in LONG_RUNNING:
        return  # Jobs run to completion: probes would only get in the way
    spec = _pod_spec(args)
    if spec is None:
        return
    roles = {"container", "sidecar"} if args.get_config().get("includeNativeSidecars") else {"container"}
    for role, container in _containers(spec):
        if role not in roles:
            continue
        missing = [p for p in ("livenessProbe", "readinessProbe") if not _is_mapping(container.get(p))]
        if missing:
            report(f"{_label(role, container)} has no {' and no '.join(missing)}.", None)


k8s_probes = ResourceValidationPolicy(
    name="k8s-liveness-and-readiness-probes",
    description="Every long-running container has liveness and readiness probes (CKV_K8S_8/9).",
    enforcement_level=MANDATORY,
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(
        properties={
            "excludeNamespaces": EXCLUDE_NAMESPACES_SCHEMA,
            "includeNativeSidecars": {
                "type": "boolean",
                "default": False,
                "description": "Also require probes on native sidecars (init containers with restartPolicy Always).",
            },
        }
    ),
    validate=_k8s_probes,
)

INGRESS_TYPE = "kubernetes:networking.k8s.io/v1:Ingress"
ALB = "alb.ingress.kubernetes.io/"


def _host_covered(host: str, tls_hosts: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(host, pattern) and host.count(".") == pattern.count(".") for pattern in tls_hosts)


def _k8s_ingress_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != INGRESS_TYPE:
        return
    annotations = _mapping(_get(args.props, "metadata", "annotations"))
    spec = _mapping(args.props.get("spec"))
    class_name = spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class")
    albs = args.get_config().get("albClassNames") or ["alb"]
    tls = [t for t in _as_list(spec.get("tls")) if _is_mapping(t)]
    tls_hosts = [str(h) for t in tls for h in _as_list(t.get("hosts"))]
    hosts = [str(r.get("host")) for r in _as_list(spec.get("rules")) if _is_mapping(r) and r.get("host")]

    if class_name in albs:
        certificate = annotations.get(f"{ALB}certificate-arn")
        # The controller's default listener: HTTPS:443 when a certificate is named, else HTTP:80.
        default_listeners = '[{"HTTPS": 443}]' if certificate else '[{"HTTP": 80}]'
        try:
            listeners = json.loads(str(annotations.get(f"{ALB}listen-ports") or default_listeners))
        except json.JSONDecodeError:
            report("alb.ingress.kubernetes.io/listen-ports is not valid JSON.", None)
            return
        protocols = {str(key).upper() for entry in _as_list(listeners) if _is_mapping(entry) for key in entry}
        if "HTTPS" not in protocols:
            report("The ALB has no HTTPS listener (alb.ingress.kubernetes.io/listen-ports).", None)
        elif not certificate and not tls_hosts:
            report("The ALB HTTPS listener has no certificate (certificate-arn annotation or spec.tls hosts).", None)
        if "HTTP" in protocols and not annotations.get(f"{ALB}ssl-redirect"):
            report("The ALB listens on HTTP without alb.ingress.kubernetes.io/ssl-redirect.", None)
        return

    if not tls:
        report("spec.tls is empty: the ingress serves plain HTTP.", None)
        return
    if any(not t.get("secretName") for t in tls):
        report("Every spec.tls entry needs a secretName holding the certificate.", None)
    uncovered = [h for h in hosts if not _host_covered(h, tls_hosts)]
    if uncovered:
        report(f"Hosts without TLS: {uncovered} (spec.tls hosts: {tls_hosts}).", None)
    if str(annotations.get("nginx.ingress.kubernetes.io/ssl-redirect", "true")).lower() == "false":
        report("nginx.ingress.kubernetes.io/ssl-redirect is false: HTTP is served instead of redirected.", None)


k8s_ingress_tls = ResourceValidationPolicy(
    name="k8s-ingress-tls",
    description="Ingresses terminate TLS for every host and redirect HTTP to HTTPS (CIS EKS 5.4.5).",
    enforcement_level=MANDATORY,
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={"albClassNames": {"type": "array", "items": {"type": "string"}, "default": ["alb"]}}
    ),
    validate=_k8s_ingress_tls,
)

# ---------------------------------------------------------------------------------------------
# SNS (the alarm topic)
# ---------------------------------------------------------------------------------------------

SNS_TOPIC = "aws:sns/topic:Topic"
AWS_MANAGED_SNS_KEY = "alias/aws/sns"


def _sns_topic_encrypted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != SNS_TOPIC:
        return
    key = args.props.get("kmsMasterKeyId")
    if not key:
        report("kmsMasterKeyId must name a customer-managed KMS key (topics are unencrypted by default).", None)
    elif key == AWS_MANAGED_SNS_KEY:
        report("alias/aws/sns cannot be used by CloudWatch alarms; use a customer-managed key.", None)


sns_topic_encrypted = ResourceValidationPolicy(
    name="sns-topic-kms-encrypted",
    description="SNS topics are encrypted with a customer-managed KMS key (FSBP SNS.1, CKV_AWS_26).",
    enforcement_level=MANDATORY,
    severity=Severity.MEDIUM,
    validate=_sns_topic_encrypted,
)

# ---------------------------------------------------------------------------------------------

RESOURCE_POLICIES: list[ResourceValidationPolicy] = [
    sns_topic_encrypted,
    s3_block_public_access,
    s3_tls_only_policy,
    s3_default_encryption,
    s3_versioning,
    rds_storage_encrypted,
    rds_not_publicly_accessible,
    rds_backup_retention,
    rds_deletion_protection_in_prod,
    rds_force_ssl,
    iam_no_wildcards,
    iam_training_put_and_get,
    eks_secrets_encryption,
    eks_control_plane_logging,
    eks_endpoint_access,
    k8s_non_root,
    k8s_resource_limits,
    k8s_probes,
    k8s_ingress_tls,
]
STACK_POLICIES: list[StackValidationPolicy] = [
    s3_bucket_companions,
    s3_access_logging_in_prod,
    rds_parameter_group_attached,
]
ALL_POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [*RESOURCE_POLICIES, *STACK_POLICIES]

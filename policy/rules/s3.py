"""S3: the artifact and log buckets (Block Public Access, TLS-only policy, encryption, versioning, logging)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    Severity,
    StackValidationArgs,
)

from policy.rules.common import (
    PROD_STACKS_SCHEMA,
    as_list,
    get_path,
    is_mapping,
    is_prod,
    known,
    load_policy_document,
    policy_statements,
)
from policy.rules.registry import resource_rule, stack_rule

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


@resource_rule(
    name="s3-block-public-access",
    description="S3 Block Public Access has all four flags on (FSBP S3.8/S3.1, CKV_AWS_53..56, CIS AWS 2.1.4).",
    severity=Severity.CRITICAL,
)
def s3_block_public_access(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in PUBLIC_ACCESS_BLOCK_TYPES:
        return
    missing = [flag for flag in PUBLIC_ACCESS_FLAGS if args.props.get(flag) is not True]
    if missing:
        report(f"Block Public Access flags not set to true: {', '.join(missing)}.", None)


def _principal_is_everyone(principal: Any) -> bool:
    if principal == "*":
        return True
    if is_mapping(principal):
        return "*" in as_list(principal.get("AWS"))
    return False


def _denies_insecure_transport(statement: Mapping[str, Any]) -> bool:
    if statement.get("Effect") != "Deny" or not _principal_is_everyone(statement.get("Principal")):
        return False
    actions = {str(a).lower() for a in as_list(statement.get("Action"))}
    if not actions & {"s3:*", "*"}:
        return False
    condition = get_path(statement, "Condition", "Bool", "aws:SecureTransport")
    return any(str(value).lower() == "false" for value in as_list(condition))


@resource_rule(
    name="s3-tls-only-bucket-policy",
    description="S3 bucket policies deny any request without TLS, on the bucket and its objects (FSBP S3.5, "
    "CKV_AWS_379, CIS AWS 2.1.1).",
    severity=Severity.HIGH,
)
def s3_tls_only_policy(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != BUCKET_POLICY_TYPE:
        return
    document = load_policy_document(args.props.get("policy"))
    if document is None:
        report("The bucket policy is missing or is not a JSON policy document.", None)
        return
    for statement in policy_statements(document):
        if not _denies_insecure_transport(statement):
            continue
        resources = {str(r) for r in as_list(statement.get("Resource"))}
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


@resource_rule(
    name="s3-default-encryption",
    description="S3 buckets have default encryption: SSE-KMS with a customer-managed key, or SSE-S3 (CKV_AWS_19, "
    "CKV_AWS_145).",
    severity=Severity.HIGH,
)
def s3_default_encryption(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in SSE_TYPES:
        return
    rules = [r for r in as_list(args.props.get("rules")) if is_mapping(r)]
    defaults = [d for d in (get_path(r, "applyServerSideEncryptionByDefault") for r in rules) if is_mapping(d)]
    if not defaults:
        report("No default server-side encryption rule (applyServerSideEncryptionByDefault).", None)
        return
    for default in defaults:
        algorithm = str(default.get("sseAlgorithm"))
        if algorithm not in SSE_ALGORITHMS:
            report(f"Unsupported default encryption algorithm {algorithm!r}; use one of {SSE_ALGORITHMS}.", None)
        elif algorithm.startswith("aws:kms") and not get_path(default, "kmsMasterKeyId"):
            report(
                f"{algorithm} without kmsMasterKeyId uses the AWS-managed aws/s3 key, whose key policy cannot be "
                "restricted or rotated on our terms: name the customer-managed key.",
                None,
            )


@resource_rule(
    name="s3-versioning-enabled",
    description="S3 bucket versioning is Enabled (FSBP S3.14, CKV_AWS_21).",
    severity=Severity.MEDIUM,
)
def s3_versioning(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in VERSIONING_TYPES:
        return
    status = get_path(args.props.get("versioningConfiguration"), "status")
    if status != "Enabled":
        report(f"Versioning status is {status!r}; it must be 'Enabled' so overwritten models can be recovered.", None)


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
            name = known(bucket.props, "bucket")
            if isinstance(name, str):
                self._by_name[name] = bucket

    def target(self, resource: PolicyResource, prop: str = "bucket") -> PolicyResource | None:
        for dependency in resource.property_dependencies.get(prop, []):
            if dependency.urn in self._by_urn:
                return self._by_urn[dependency.urn]
        value = known(resource.props, prop)
        return self._by_name.get(value) if isinstance(value, str) else None


COMPANIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("a BucketPublicAccessBlock", frozenset({"aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"})),
    ("a BucketServerSideEncryptionConfiguration", SSE_TYPES),
    ("a BucketVersioning", VERSIONING_TYPES),
    ("a BucketPolicy (TLS-only)", frozenset({BUCKET_POLICY_TYPE})),
)


@stack_rule(
    name="s3-bucket-hardening-present",
    description="Every S3 bucket has its Block Public Access, default encryption, versioning and TLS-only policy "
    "resources: the per-resource rules cannot see a resource that is missing.",
    severity=Severity.HIGH,
)
def s3_bucket_companions(args: StackValidationArgs, report: ReportViolation) -> None:
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


@stack_rule(
    name="s3-access-logging-in-prod",
    description="In production stacks every S3 bucket except the log buckets themselves has server access logging "
    "(FSBP S3.9, CKV_AWS_18).",
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(properties={"prodStacks": PROD_STACKS_SCHEMA}),
)
def s3_access_logging_in_prod(args: StackValidationArgs, report: ReportViolation) -> None:
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
        if source is not None and (target is not None or known(resource.props, "targetBucket")):
            logged.add(source.urn)
        if target is not None:
            log_targets.add(target.urn)
    for bucket in index.buckets:
        # A log bucket logging into itself (or another log bucket) would loop; AWS advises against it.
        if bucket.urn not in logged and bucket.urn not in log_targets:
            report(f"Bucket {bucket.name} has no server access logging (BucketLogging) in production.", bucket.urn)

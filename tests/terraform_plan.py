"""The AWS resources a mocked run records, as the Terraform plan JSON of a first ``apply``, and
checkov's ``terraform_plan`` framework run on it offline.

checkov cannot read a Pulumi program, but pulumi-aws is terraform-provider-aws underneath: each
resource's inputs are that provider's arguments in camelCase. So the plan is what
``terraform show -json`` would print for the same resources:

* ``planned_values`` holds each resource's known arguments in snake_case. Nested objects are
  blocks, written as one-element lists; Pulumi's plural names of repeated blocks become
  Terraform's singular ones (``rules`` → ``rule``, ``parameters`` → ``parameter``):
  :data:`BLOCK_NAMES`. Types are mapped one by one (:data:`TERRAFORM_TYPES`: ``aws:rds/instance``
  is ``aws_db_instance``, not ``aws_rds_instance``); an AWS type missing from the map fails
  :func:`plan_for`.
* An argument that holds another resource's id, ARN or name (what the mocks computed for it) is
  unknown before apply: it is left out of ``planned_values`` and written as a reference in
  ``configuration`` (``"references": ["aws_s3_bucket.x.id", "aws_s3_bucket.x"]``), which is how
  checkov's graph connects, e.g., a public access block or a parameter group to its bucket or
  instance, so the connection checks (CKV2_*) judge the companion resources.

Accepted failures live in ``checkov-exceptions.txt`` at the project root (:func:`exceptions`).
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.pulumi_harness import ROOT, Recorded

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
EXCEPTIONS_FILE = ROOT / "checkov-exceptions.txt"
PROVIDERS = {"aws": "registry.terraform.io/hashicorp/aws", "random": "registry.terraform.io/hashicorp/random"}

TERRAFORM_TYPES: dict[str, str] = {
    "aws:acm/certificate:Certificate": "aws_acm_certificate",
    "aws:acm/certificateValidation:CertificateValidation": "aws_acm_certificate_validation",
    "aws:cloudwatch/dashboard:Dashboard": "aws_cloudwatch_dashboard",
    "aws:cloudwatch/eventRule:EventRule": "aws_cloudwatch_event_rule",
    "aws:cloudwatch/eventTarget:EventTarget": "aws_cloudwatch_event_target",
    "aws:cloudwatch/logGroup:LogGroup": "aws_cloudwatch_log_group",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "aws_cloudwatch_metric_alarm",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "aws_default_security_group",
    "aws:ec2/eip:Eip": "aws_eip",
    "aws:ec2/flowLog:FlowLog": "aws_flow_log",
    "aws:ec2/internetGateway:InternetGateway": "aws_internet_gateway",
    "aws:ec2/launchTemplate:LaunchTemplate": "aws_launch_template",
    "aws:ec2/natGateway:NatGateway": "aws_nat_gateway",
    "aws:ec2/route:Route": "aws_route",
    "aws:ec2/routeTable:RouteTable": "aws_route_table",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "aws_route_table_association",
    "aws:ec2/securityGroup:SecurityGroup": "aws_security_group",
    "aws:ec2/securityGroupRule:SecurityGroupRule": "aws_security_group_rule",
    "aws:ec2/subnet:Subnet": "aws_subnet",
    "aws:ec2/vpc:Vpc": "aws_vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "aws_vpc_endpoint",
    "aws:ec2transitgateway/vpcAttachment:VpcAttachment": "aws_ec2_transit_gateway_vpc_attachment",
    "aws:eks/accessEntry:AccessEntry": "aws_eks_access_entry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation": "aws_eks_access_policy_association",
    "aws:eks/addon:Addon": "aws_eks_addon",
    "aws:eks/cluster:Cluster": "aws_eks_cluster",
    "aws:eks/nodeGroup:NodeGroup": "aws_eks_node_group",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation": "aws_eks_pod_identity_association",
    "aws:iam/instanceProfile:InstanceProfile": "aws_iam_instance_profile",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider": "aws_iam_openid_connect_provider",
    "aws:iam/policy:Policy": "aws_iam_policy",
    "aws:iam/role:Role": "aws_iam_role",
    "aws:iam/rolePolicy:RolePolicy": "aws_iam_role_policy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": "aws_iam_role_policy_attachment",
    "aws:kms/alias:Alias": "aws_kms_alias",
    "aws:kms/key:Key": "aws_kms_key",
    "aws:kms/keyPolicy:KeyPolicy": "aws_kms_key_policy",
    "aws:rds/instance:Instance": "aws_db_instance",
    "aws:rds/parameterGroup:ParameterGroup": "aws_db_parameter_group",
    "aws:rds/subnetGroup:SubnetGroup": "aws_db_subnet_group",
    "aws:route53/record:Record": "aws_route53_record",
    "aws:s3/bucket:Bucket": "aws_s3_bucket",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "aws_s3_bucket_lifecycle_configuration",
    "aws:s3/bucketLogging:BucketLogging": "aws_s3_bucket_logging",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "aws_s3_bucket_ownership_controls",
    "aws:s3/bucketPolicy:BucketPolicy": "aws_s3_bucket_policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "aws_s3_bucket_public_access_block",
    "aws:s3/bucketReplicationConfig:BucketReplicationConfig": "aws_s3_bucket_replication_configuration",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "aws_s3_bucket_server_side_encryption_configuration"
    ),
    "aws:s3/bucketVersioning:BucketVersioning": "aws_s3_bucket_versioning",
    "aws:sns/topic:Topic": "aws_sns_topic",
    "aws:sns/topicPolicy:TopicPolicy": "aws_sns_topic_policy",
    "aws:sns/topicSubscription:TopicSubscription": "aws_sns_topic_subscription",
    "aws:sqs/queue:Queue": "aws_sqs_queue",
    "aws:sqs/queuePolicy:QueuePolicy": "aws_sqs_queue_policy",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": "aws_vpc_security_group_egress_rule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": "aws_vpc_security_group_ingress_rule",
    "random:index/randomBytes:RandomBytes": "random_bytes",
    "random:index/randomId:RandomId": "random_id",
    "random:index/randomPassword:RandomPassword": "random_password",
}
"""Pulumi type token → Terraform resource type (from each pulumi-aws resource's docs, "This
resource is ``aws_…``" / the bridge's ``resources.go`` mapping)."""

BLOCK_NAMES: dict[str, str] = {
    "rules": "rule",
    "parameters": "parameter",
    "metricQueries": "metric_query",
    "aliases": "alias",
    "taints": "taint",
    "inlinePolicies": "inline_policy",
    "filters": "filter",
}
"""Repeated nested blocks Pulumi names in the plural (list of objects) → Terraform's block name."""

MAP_ATTRIBUTES = {"tags", "tagsAll", "labels", "dimensions", "keepers"}
"""Object-valued arguments that are maps, not blocks (kept as JSON objects)."""

IDENTITY_OUTPUTS = ("id", "arn", "name", "bucket", "keyId", "identifier", "result", "hex")
"""Outputs through which one resource refers to another."""
_COMPUTED = re.compile(r"(-id|-7f3a2b)$|^arn:|-7f3a2b")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def address_name(name: str) -> str:
    """A Pulumi resource name as a Terraform resource name (letters, digits, underscores)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


@dataclass(frozen=True)
class _Ref:
    address: str
    attribute: str

    @property
    def references(self) -> list[str]:
        return [f"{self.address}.{self.attribute}", self.address]


def _identity_index(records: Sequence[Recorded]) -> dict[str, _Ref]:
    """Every computed id/ARN/name string → the resource it belongs to (ambiguous ones dropped)."""
    found: dict[str, list[_Ref]] = {}
    for record in records:
        tf_type = TERRAFORM_TYPES.get(record.typ)
        if tf_type is None:
            continue
        address = f"{tf_type}.{address_name(record.name)}"
        for attribute in IDENTITY_OUTPUTS:
            value = record.outputs.get(attribute)
            given = record.inputs.get(attribute)  # an input echoed back is not this resource's identity
            if isinstance(value, str) and value != given and len(value) > 8 and _COMPUTED.search(value):
                found.setdefault(value, []).append(_Ref(address, snake(attribute)))
    return {value: refs[0] for value, refs in found.items() if len({r.address for r in refs}) == 1}


def _convert(value: Any, index: dict[str, _Ref], key: str = "") -> tuple[Any, Any]:
    """(planned value, configuration expression) of one argument; a reference is ``_Ref``."""
    if isinstance(value, str) and value in index:
        return index[value], {"references": index[value].references}
    if isinstance(value, dict):
        if key in MAP_ATTRIBUTES:
            return {k: _number(v) for k, v in value.items()}, None
        block, expressions = _block(value, index)
        return [block], [expressions] if expressions else None
    if isinstance(value, list):
        if any(isinstance(item, dict) for item in value):
            converted = [_block(item, index) for item in value if isinstance(item, dict)]
            blocks = [block for block, _ in converted]
            expressions = [expression for _, expression in converted]
            return blocks, expressions if any(expressions) else None
        items, references = [], []
        for item in value:
            if isinstance(item, str) and item in index:
                items.append(None)
                references.extend(index[item].references)
            else:
                items.append(_number(item))
        return items, {"references": references} if references else None
    return _number(value), None


def _block(inputs: dict[str, Any], index: dict[str, _Ref]) -> tuple[dict[str, Any], dict[str, Any]]:
    values: dict[str, Any] = {}
    expressions: dict[str, Any] = {}
    for key, value in inputs.items():
        if key.startswith("__"):
            continue
        is_block_list = isinstance(value, list) and any(isinstance(item, dict) for item in value)
        name = BLOCK_NAMES[key] if is_block_list and key in BLOCK_NAMES else snake(key)
        converted, expression = _convert(value, index, key)
        if expression is not None:
            expressions[name] = expression
        if not isinstance(converted, _Ref):
            values[name] = converted
    return values, expressions


class UnmappedTypeError(KeyError):
    """A recorded AWS resource type has no Terraform type in :data:`TERRAFORM_TYPES`."""


def plan_for(records: Sequence[Recorded], region: str = "us-east-1") -> dict[str, Any]:
    """The Terraform plan JSON (format 1.2) creating every AWS (and ``random``) resource recorded."""
    unmapped = sorted({r.typ for r in records if r.typ.startswith("aws:") and r.typ not in TERRAFORM_TYPES})
    if unmapped:
        raise UnmappedTypeError(f"no Terraform type for {unmapped}: add them to TERRAFORM_TYPES")
    index = _identity_index(records)
    planned, changes, configuration = [], [], []
    for record in records:
        tf_type = TERRAFORM_TYPES.get(record.typ)
        if tf_type is None:
            continue
        provider = tf_type.split("_", 1)[0]
        name = address_name(record.name)
        address = f"{tf_type}.{name}"
        values, expressions = _block(record.inputs, index)
        common = {"address": address, "mode": "managed", "type": tf_type, "name": name}
        planned.append({**common, "provider_name": PROVIDERS[provider], "schema_version": 0, "values": values})
        after_unknown = {key: True for key in expressions if key not in values}
        changes.append(
            {
                **common,
                "provider_name": PROVIDERS[provider],
                "change": {"actions": ["create"], "before": None, "after": values, "after_unknown": after_unknown},
            }
        )
        configuration.append({**common, "provider_config_key": provider, "expressions": expressions})
    return {
        "format_version": "1.2",
        "terraform_version": "1.9.8",
        "planned_values": {"root_module": {"resources": planned}},
        "resource_changes": changes,
        "configuration": {
            "provider_config": {
                "aws": {
                    "name": "aws",
                    "full_name": PROVIDERS["aws"],
                    "expressions": {"region": {"constant_value": region}},
                }
            },
            "root_module": {"resources": configuration},
        },
    }


@dataclass(frozen=True)
class Finding:
    check_id: str
    address: str
    file: str
    passed: bool


def run_checkov(plans: dict[str, dict[str, Any]], directory: Path) -> list[Finding]:
    """checkov's terraform_plan framework over ``{label: plan}``, offline, in one process."""
    files = []
    for label, plan in plans.items():
        target = directory / f"{label}.tfplan.json"
        target.write_text(json.dumps(plan, indent=1))
        files.append(target)
    command = [str(CHECKOV), "--framework", "terraform_plan", "--skip-download", "--compact", "-o", "json"]
    for target in files:
        command += ["-f", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({result.returncode}): {result.stderr[-2000:]}")
    reports = json.loads(result.stdout)
    findings = []
    for report in reports if isinstance(reports, list) else [reports]:
        results = report.get("results", {})
        for passed, key in ((True, "passed_checks"), (False, "failed_checks")):
            for check in results.get(key, []):
                address = check.get("resource_address") or check["resource"]
                findings.append(Finding(check["check_id"], address, Path(check["file_path"]).name, passed))
    return findings


@dataclass(frozen=True)
class Exception_:
    """One accepted failing check: ``<stack|*> <check id> <resource address glob> <why>``."""

    stack: str
    check_id: str
    address: str
    reason: str

    def covers(self, stack: str, finding: Finding) -> bool:
        return (
            self.stack in ("*", stack)
            and self.check_id == finding.check_id
            and fnmatch.fnmatchcase(finding.address, self.address)
        )


def exceptions(text: str | None = None) -> list[Exception_]:
    """The exceptions file; a line without a reason is an error (as in audit-exceptions.txt)."""
    lines = (EXCEPTIONS_FILE.read_text() if text is None else text).splitlines()
    parsed = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[3].strip():
            raise ValueError(f"{EXCEPTIONS_FILE.name}:{number}: expected '<stack|*> <check> <address> <why>'")
        parsed.append(Exception_(*parts))
    return parsed


def unexpected(
    stack: str, findings: Iterable[Finding], accepted: Sequence[Exception_], label: str | None = None
) -> list[str]:
    """Failed checks of ``stack``'s plan (the file ``<label or stack>.tfplan.json``) that no
    exception covers."""
    prefix = f"{label or stack}.tfplan"
    return sorted(
        f"{f.check_id} {f.address}"
        for f in findings
        if not f.passed and f.file.startswith(prefix) and not any(e.covers(stack, f) for e in accepted)
    )

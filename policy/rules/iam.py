"""IAM: the training and tracking-server roles (no wildcards; the training role can both write and read artifacts)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs, Severity

from policy.rules.common import as_list, get_path, is_mapping, load_policy_document, policy_statements, type_chain
from policy.rules.registry import resource_rule

ROLE_POLICY_TYPES = frozenset({"aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy"})
ROLE_TYPE = "aws:iam/role:Role"
DEFAULT_SCOPED_COMPONENTS = ("mlflow:index:TrainingJobAccess", "mlflow:index:TrackingServerAccess")
DEFAULT_TRAINING_COMPONENTS = ("mlflow:index:TrainingJobAccess",)
_ARN_RESOURCE = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:[^:]*:(?P<resource>.*)$")


def _component_types(default: Sequence[str], description: str) -> PolicyConfigSchema:
    """The ``componentTypes`` setting: which components' policies a rule checks."""
    return PolicyConfigSchema(
        properties={
            "componentTypes": {
                "type": "array",
                "items": {"type": "string"},
                "default": list(default),
                "description": description,
            }
        }
    )


def _policy_documents(args: ResourceValidationArgs) -> list[Any]:
    """The raw policy documents a resource carries: ``policy`` or a role's inline policies."""
    if args.resource_type in ROLE_POLICY_TYPES:
        return [args.props.get("policy")]
    if args.resource_type == ROLE_TYPE:
        return [get_path(p, "policy") for p in as_list(args.props.get("inlinePolicies")) if is_mapping(p)]
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
    document = load_policy_document(raw)
    if document is None:
        return None
    return (s for s in policy_statements(document) if s.get("Effect", "Allow") == "Allow")


@resource_rule(
    name="iam-no-wildcards",
    description="The training and tracking-server role policies grant no wildcard actions or resources (FSBP "
    "IAM.1/IAM.21, CKV_AWS_355/356, CKV_AWS_288).",
    severity=Severity.HIGH,
    config_schema=_component_types(
        DEFAULT_SCOPED_COMPONENTS,
        "Component types whose IAM policies are checked (other roles, e.g. EKS controllers with "
        "AWS-documented policies, are out of scope).",
    ),
)
def iam_no_wildcards(args: ResourceValidationArgs, report: ReportViolation) -> None:
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
            actions = [str(a) for a in as_list(statement.get("Action"))]
            wild_actions = [a for a in actions if "*" in a]
            if wild_actions:
                report(f"Statement {sid}: wildcard actions {wild_actions}; list the exact actions.", None)
            wild_resources = [r for r in map(str, as_list(statement.get("Resource"))) if _is_wildcard_resource(r)]
            if wild_resources:
                report(f"Statement {sid}: wildcard resources {wild_resources}; scope to the artifact prefix.", None)


@resource_rule(
    name="iam-training-role-put-and-get",
    description="The training role's artifact policy (direct access mode) grants s3:PutObject and s3:GetObject on "
    "the same artifact objects.",
    severity=Severity.HIGH,
    config_schema=_component_types(
        DEFAULT_TRAINING_COMPONENTS, "Component types whose role policies are the training role's."
    ),
)
def iam_training_put_and_get(args: ResourceValidationArgs, report: ReportViolation) -> None:
    components = args.get_config().get("componentTypes") or DEFAULT_TRAINING_COMPONENTS
    if args.resource_type not in ROLE_POLICY_TYPES or not _in_components(args.urn, components):
        return
    statements = _allow_statements(args.props.get("policy"))
    if statements is None:
        report("The policy is missing or is not a JSON policy document.", None)
        return
    granted: dict[str, set[str]] = {}
    for statement in statements:
        actions = [str(a).lower() for a in as_list(statement.get("Action"))]
        for resource in map(str, as_list(statement.get("Resource"))):
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

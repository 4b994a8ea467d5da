"""Every policy passes on what the real program registers for both stack files, and the pass is
not vacuous: the AWS, EKS and Kubernetes rules each see at least one resource they apply to
(both stack files create their cluster; the tracking server's Deployment, migration Job and
Ingress: nginx in dev, ALB in prod).
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest
from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from policy import rules
from policy.rules import eks, iam, kubernetes, rds, registry, s3
from tests.policy.harness import capture, resource_violations, stack_violations

STACKS = ["dev", "prod"]

# Resource types each AWS rule inspects; the captures must contain at least one of them.
APPLIES_TO = {
    s3.s3_block_public_access.name: s3.PUBLIC_ACCESS_BLOCK_TYPES,
    s3.s3_tls_only_policy.name: {s3.BUCKET_POLICY_TYPE},
    s3.s3_default_encryption.name: s3.SSE_TYPES,
    s3.s3_versioning.name: s3.VERSIONING_TYPES,
    rds.rds_storage_encrypted.name: {rds.RDS_INSTANCE},
    rds.rds_not_publicly_accessible.name: {rds.RDS_INSTANCE},
    rds.rds_backup_retention.name: {rds.RDS_INSTANCE},
    rds.rds_deletion_protection_in_prod.name: {rds.RDS_INSTANCE},
    rds.rds_force_ssl.name: rds.PARAMETER_GROUP_TYPES,
    iam.iam_no_wildcards.name: iam.ROLE_POLICY_TYPES,
    iam.iam_training_put_and_get.name: iam.ROLE_POLICY_TYPES,
    eks.eks_secrets_encryption.name: {"aws:eks/cluster:Cluster"},
    eks.eks_control_plane_logging.name: {"aws:eks/cluster:Cluster"},
    eks.eks_endpoint_access.name: {"aws:eks/cluster:Cluster"},
}
KUBERNETES_APPLIES_TO = {
    kubernetes.k8s_non_root.name: set(kubernetes.POD_SPEC_PATHS),
    kubernetes.k8s_resource_limits.name: set(kubernetes.POD_SPEC_PATHS),
    kubernetes.k8s_probes.name: kubernetes.LONG_RUNNING,
    kubernetes.k8s_ingress_tls.name: {kubernetes.INGRESS_TYPE},
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_policy_passes_on_the_captured_stack(stack: str) -> None:
    failures = [
        (policy.name, resource.name, message)
        for resource in capture(stack)
        for policy in rules.RESOURCE_POLICIES
        for message in resource_violations(policy, resource)
    ]
    assert failures == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_policy_passes_on_the_captured_stack(stack: str) -> None:
    failures = [
        (policy.name, found) for policy in rules.STACK_POLICIES for found in stack_violations(policy, capture(stack))
    ]
    assert failures == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_aws_rules_see_resources_they_apply_to(stack: str) -> None:
    types = {resource.typ for resource in capture(stack)}
    unseen = [name for name, applies in APPLIES_TO.items() if not types & set(applies)]
    assert unseen == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_kubernetes_rules_see_the_tracking_server(stack: str) -> None:
    types = {resource.typ for resource in capture(stack)}
    unseen = [name for name, applies in KUBERNETES_APPLIES_TO.items() if not types & set(applies)]
    assert unseen == []
    assert {"kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"} <= types


def test_both_ingress_flavours_are_exercised() -> None:
    """dev's stack file uses nginx + cert-manager, prod's an ALB with an ACM certificate."""
    classes = {
        stack: {r.raw["spec"].get("ingressClassName") for r in capture(stack) if r.typ == kubernetes.INGRESS_TYPE}
        for stack in STACKS
    }
    assert classes == {"dev": {"nginx"}, "prod": {"alb"}}


def test_prod_capture_has_what_the_prod_only_rules_need() -> None:
    """The prod-only rules must have something to pass on: logging resources and a protected database."""
    types = [resource.typ for resource in capture("prod")]
    assert "aws:s3/bucketLogging:BucketLogging" in types
    assert rules.is_prod(capture("prod")[0].urn, {})
    assert not rules.is_prod(capture("dev")[0].urn, {})


def _rule_modules() -> list[ModuleType]:
    """Every module of the ``policy.rules`` package, imported (a module the pack forgets is still found)."""
    return [importlib.import_module(f"{rules.__name__}.{m.name}") for m in pkgutil.iter_modules(rules.__path__)]


def test_every_module_that_registers_rules_is_in_the_pack() -> None:
    _rule_modules()
    assert registry.registered_modules() == sorted(module.__name__ for module in rules.SERVICES)


def test_no_policy_is_built_outside_the_registration_decorators() -> None:
    built = [
        (module.__name__, name)
        for module in _rule_modules()
        for name, value in vars(module).items()
        if isinstance(value, ResourceValidationPolicy | StackValidationPolicy)
        and not any(value is policy for policy in rules.ALL_POLICIES)
    ]
    assert built == []


@pytest.mark.parametrize("service", rules.SERVICES, ids=lambda module: module.__name__.rsplit(".", 1)[-1])
def test_every_registered_rule_has_a_failing_case(service: ModuleType) -> None:
    """``tests/policy/test_<service>_rules.py`` names the rules its mutations make fail; it must name
    exactly the rules the service module registers (so a new rule needs a failing case to ship)."""
    short = service.__name__.rsplit(".", 1)[-1]
    cases = importlib.import_module(f"tests.policy.test_{short}_rules")
    assert {policy.name for policy in registry.registered(service)} == cases.POLICIES_WITH_FAILING_CASES


def test_policy_names_are_unique_and_mandatory() -> None:
    names = [policy.name for policy in rules.ALL_POLICIES]
    assert len(names) == len(set(names))
    assert {policy.enforcement_level for policy in rules.ALL_POLICIES} == {rules.MANDATORY}

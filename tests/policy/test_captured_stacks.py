"""Every policy passes on what the real program registers for both stack files, and the pass is
not vacuous: the AWS, EKS and Kubernetes rules each see at least one resource they apply to
(both stack files create their cluster; the tracking server's Deployment, migration Job and
Ingress: nginx in dev, ALB in prod).
"""

from __future__ import annotations

import pytest

from policy import rules
from tests.policy import (
    test_eks_rules,
    test_iam_rules,
    test_kubernetes_rules,
    test_rds_rules,
    test_s3_rules,
    test_sns_rules,
)
from tests.policy.harness import capture, resource_violations, stack_violations

STACKS = ["dev", "prod"]

# Resource types each AWS rule inspects; the captures must contain at least one of them.
APPLIES_TO = {
    rules.s3_block_public_access.name: rules.PUBLIC_ACCESS_BLOCK_TYPES,
    rules.s3_tls_only_policy.name: {rules.BUCKET_POLICY_TYPE},
    rules.s3_default_encryption.name: rules.SSE_TYPES,
    rules.s3_versioning.name: rules.VERSIONING_TYPES,
    rules.rds_storage_encrypted.name: {rules.RDS_INSTANCE},
    rules.rds_not_publicly_accessible.name: {rules.RDS_INSTANCE},
    rules.rds_backup_retention.name: {rules.RDS_INSTANCE},
    rules.rds_deletion_protection_in_prod.name: {rules.RDS_INSTANCE},
    rules.rds_force_ssl.name: rules.PARAMETER_GROUP_TYPES,
    rules.iam_no_wildcards.name: rules.ROLE_POLICY_TYPES,
    rules.iam_training_put_and_get.name: rules.ROLE_POLICY_TYPES,
    rules.eks_secrets_encryption.name: {"aws:eks/cluster:Cluster"},
    rules.eks_control_plane_logging.name: {"aws:eks/cluster:Cluster"},
    rules.eks_endpoint_access.name: {"aws:eks/cluster:Cluster"},
}
KUBERNETES_APPLIES_TO = {
    rules.k8s_non_root.name: set(rules.POD_SPEC_PATHS),
    rules.k8s_resource_limits.name: set(rules.POD_SPEC_PATHS),
    rules.k8s_probes.name: rules.LONG_RUNNING,
    rules.k8s_ingress_tls.name: {rules.INGRESS_TYPE},
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
        stack: {r.raw["spec"].get("ingressClassName") for r in capture(stack) if r.typ == rules.INGRESS_TYPE}
        for stack in STACKS
    }
    assert classes == {"dev": {"nginx"}, "prod": {"alb"}}


def test_prod_capture_has_what_the_prod_only_rules_need() -> None:
    """The prod-only rules must have something to pass on: logging resources and a protected database."""
    types = [resource.typ for resource in capture("prod")]
    assert "aws:s3/bucketLogging:BucketLogging" in types
    assert rules.is_prod(capture("prod")[0].urn, {})
    assert not rules.is_prod(capture("dev")[0].urn, {})


def test_every_policy_has_a_failing_case() -> None:
    failing = set()
    for module in (
        test_s3_rules,
        test_rds_rules,
        test_iam_rules,
        test_eks_rules,
        test_kubernetes_rules,
        test_sns_rules,
    ):
        failing |= module.POLICIES_WITH_FAILING_CASES
    assert {policy.name for policy in rules.ALL_POLICIES} - failing == set()


def test_policy_names_are_unique_and_mandatory() -> None:
    names = [policy.name for policy in rules.ALL_POLICIES]
    assert len(names) == len(set(names))
    assert {policy.enforcement_level for policy in rules.ALL_POLICIES} == {rules.MANDATORY}

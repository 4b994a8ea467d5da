"""EKS rules on hand-written cluster inputs (camelCase, as Pulumi presents them), for the raw
``aws.eks.Cluster`` and the ``pulumi_eks`` component, plus mutations."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pulumi_policy import ResourceValidationPolicy

from policy.rules import eks
from tests.policy.harness import urn_for, violations

POLICIES_WITH_FAILING_CASES = {
    eks.eks_secrets_encryption.name,
    eks.eks_control_plane_logging.name,
    eks.eks_endpoint_access.name,
}
EKS_POLICIES = [eks.eks_secrets_encryption, eks.eks_control_plane_logging, eks.eks_endpoint_access]

CLUSTER: dict[str, Any] = {
    "name": "mlflow-prod",
    "roleArn": "arn:aws:iam::123456789012:role/mlflow-prod-cluster",
    "version": "1.33",
    "vpcConfig": {
        "subnetIds": ["subnet-0f1e2d3c4b5a60001", "subnet-0f1e2d3c4b5a60002"],
        "endpointPrivateAccess": True,
        "endpointPublicAccess": False,
    },
    "accessConfig": {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False},
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    "encryptionConfig": {
        "provider": {"keyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        "resources": ["secrets"],
    },
    "bootstrapSelfManagedAddons": False,
}
COMPONENT: dict[str, Any] = {
    "vpcId": "vpc-0f1e2d3c4b5a69788",
    "privateSubnetIds": ["subnet-0f1e2d3c4b5a60001", "subnet-0f1e2d3c4b5a60002"],
    "endpointPrivateAccess": True,
    "endpointPublicAccess": True,
    "publicAccessCidrs": ["203.0.113.0/24"],
    "enabledClusterLogTypes": ["api", "audit", "authenticator", "controllerManager", "scheduler"],
    "encryptionConfigKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "authenticationMode": "API",
}


def cluster(**changes: Any) -> dict[str, Any]:
    """CLUSTER with top-level or ``vpcConfig.<key>`` changes; ``None`` removes the key."""
    props = copy.deepcopy(CLUSTER)
    for key, value in changes.items():
        target, name = (props["vpcConfig"], key.split(".", 1)[1]) if key.startswith("vpcConfig.") else (props, key)
        if value is None:
            target.pop(name, None)
        else:
            target[name] = value
    return props


def check(policy: ResourceValidationPolicy, props: dict[str, Any], typ: str = eks.EKS_CLUSTER) -> list[str]:
    return violations(policy, typ, props, urn=urn_for(typ, "cluster", parents=["mlflow:index:Cluster"]))


@pytest.mark.parametrize("policy", EKS_POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize(("typ", "props"), [(eks.EKS_CLUSTER, CLUSTER), (eks.EKS_COMPONENT, COMPONENT)])
def test_a_hardened_cluster_passes(policy: ResourceValidationPolicy, typ: str, props: dict[str, Any]) -> None:
    assert check(policy, props, typ) == []


@pytest.mark.parametrize(
    "encryption",
    [
        None,
        {"provider": {"keyArn": "arn:aws:kms:us-east-1:123456789012:key/x"}, "resources": ["configmaps"]},
        {"provider": {}, "resources": ["secrets"]},
        [],
    ],
)
def test_secrets_must_be_envelope_encrypted(encryption: Any) -> None:
    (message,) = check(eks.eks_secrets_encryption, cluster(encryptionConfig=encryption))
    assert "secrets" in message


def test_secrets_encryption_as_a_list_is_accepted() -> None:
    assert check(eks.eks_secrets_encryption, cluster(encryptionConfig=[CLUSTER["encryptionConfig"]])) == []


def test_component_without_a_secrets_key_fails() -> None:
    props = {k: v for k, v in COMPONENT.items() if k != "encryptionConfigKeyArn"}
    assert check(eks.eks_secrets_encryption, props, eks.EKS_COMPONENT)


@pytest.mark.parametrize("missing", eks.EKS_LOG_TYPES)
@pytest.mark.parametrize("typ", [eks.EKS_CLUSTER, eks.EKS_COMPONENT])
def test_all_five_log_types_are_required(missing: str, typ: str) -> None:
    base = CLUSTER if typ == eks.EKS_CLUSTER else COMPONENT
    props = {**base, "enabledClusterLogTypes": [t for t in eks.EKS_LOG_TYPES if t != missing]}
    (message,) = check(eks.eks_control_plane_logging, props, typ)
    assert missing in message


def test_no_logging_at_all_fails() -> None:
    (message,) = check(eks.eks_control_plane_logging, cluster(enabledClusterLogTypes=None))
    assert all(t in message for t in eks.EKS_LOG_TYPES)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"vpcConfig.endpointPublicAccess": True}, "0.0.0.0/0"),  # public, no CIDRs: open to all
        ({"vpcConfig.endpointPublicAccess": None}, "0.0.0.0/0"),  # unset means public (AWS default)
        ({"vpcConfig.endpointPublicAccess": True, "vpcConfig.publicAccessCidrs": ["0.0.0.0/0"]}, "0.0.0.0/0"),
        ({"vpcConfig.endpointPublicAccess": True, "vpcConfig.publicAccessCidrs": ["10.0.0.0/8", "::/0"]}, "::/0"),
        ({"vpcConfig.endpointPrivateAccess": False}, "endpointPrivateAccess"),
        ({"vpcConfig.endpointPrivateAccess": None}, "endpointPrivateAccess"),
    ],
)
def test_endpoint_access_must_be_restricted(changes: dict[str, Any], expected: str) -> None:
    (message,) = check(eks.eks_endpoint_access, cluster(**changes))
    assert expected in message


def test_public_endpoint_limited_to_listed_cidrs_passes() -> None:
    props = cluster(**{"vpcConfig.endpointPublicAccess": True, "vpcConfig.publicAccessCidrs": ["203.0.113.0/24"]})
    assert check(eks.eks_endpoint_access, props) == []


def test_component_with_an_open_public_endpoint_fails() -> None:
    props = {**COMPONENT, "publicAccessCidrs": ["0.0.0.0/0"]}
    assert check(eks.eks_endpoint_access, props, eks.EKS_COMPONENT)

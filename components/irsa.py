"""One IAM role for one Kubernetes service account (IRSA), the way every IRSA role of the stack
is built: the VPC CNI and EBS CSI roles (``components.cluster``), the load balancer controller and
cert-manager (``components.cluster_addons``), cluster-autoscaler (``components.cluster_scaling``).

Why one construction: the trust policy is the security property. EKS User Guide, "IAM roles for
service accounts" → "Technical overview" → "IAM role configuration"
(https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts-technical-overview.html):
the role trusts the cluster's IAM OIDC provider (``Principal.Federated``) for
``sts:AssumeRoleWithWebIdentity``, and its conditions scope it to one service account
(``<issuer>:sub`` = ``system:serviceaccount:<namespace>:<name>``) and to STS as the token's
audience (``<issuer>:aud`` = ``sts.amazonaws.com``). The statement itself is
``rendering.iam.irsa_trust_statement``, which the tracking server's roles use too.

Resource names are the callers' own (``name`` for the role and its inline policy,
``policy_attachments`` keys for managed policies), so moving a caller onto this helper changes no
URN.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from rendering import iam


@dataclass(frozen=True)
class ClusterOidc:
    """A cluster's IAM OIDC provider: what every IRSA role of that cluster trusts."""

    provider_arn: pulumi.Input[str]
    issuer_host_path: pulumi.Input[str]
    """``oidc.eks.<region>.amazonaws.com/id/<ID>``: the prefix of the ``sub``/``aud`` condition keys."""


def irsa_trust_policy(oidc: ClusterOidc, service_account: tuple[str, str]) -> pulumi.Output[str]:
    """The same IRSA trust statement as the tracking roles (``rendering.iam``): ``sub`` pinned to
    the one service account (namespace, name) and ``aud`` to STS, both with StringEquals."""
    namespace, account = service_account
    subject = f"system:serviceaccount:{namespace}:{account}"
    return pulumi.Output.json_dumps(
        pulumi.Output.all(oidc.provider_arn, oidc.issuer_host_path).apply(
            lambda values: {
                "Version": "2012-10-17",
                "Statement": [iam.irsa_trust_statement(values[0], values[1], [subject])],
            }
        )
    )


def managed_policy_arn(partition: pulumi.Input[str], name: str) -> pulumi.Output[str]:
    """``arn:<partition>:iam::aws:policy/<name>``: an AWS managed policy in the stack's partition."""
    return pulumi.Output.concat("arn:", partition, ":iam::aws:policy/", name)


@dataclass(frozen=True)
class IrsaRole:
    """The role, and the resources that grant it its permissions: what a workload using the role
    waits for (``depends_on=irsa.grants``), so it never starts with a role that can do nothing."""

    role: aws.iam.Role
    grants: list[pulumi.Resource]


def irsa_role(
    name: str,
    oidc: ClusterOidc,
    service_account: tuple[str, str],
    opts: pulumi.ResourceOptions,
    *,
    tags: Mapping[str, str],
    owner: str = "",
    inline_policy: pulumi.Input[str] | None = None,
    policy_attachments: Mapping[str, pulumi.Input[str]] | None = None,
) -> IrsaRole:
    """The role ``name`` that only ``service_account`` (namespace, name) of ``oidc``'s cluster may
    assume, then its permissions: an inline policy (a ``RolePolicy`` also named ``name``) and/or
    managed policies (one ``RolePolicyAttachment`` per ``policy_attachments`` entry: resource
    name → policy ARN). ``owner`` (e.g. the cluster's name) prefixes the description; ``opts``
    carries the parent."""
    namespace, account = service_account
    who = f"{namespace}/{account} (IRSA)"
    role = aws.iam.Role(
        name,
        description=f"{owner}: {who}" if owner else who,
        assume_role_policy=irsa_trust_policy(oidc, service_account),
        tags=dict(tags),
        opts=opts,
    )
    grants: list[pulumi.Resource] = []
    if inline_policy is not None:
        grants.append(aws.iam.RolePolicy(name, role=role.id, policy=inline_policy, opts=opts))
    grants += [
        aws.iam.RolePolicyAttachment(attachment, role=role.name, policy_arn=arn, opts=opts)
        for attachment, arn in (policy_attachments or {}).items()
    ]
    return IrsaRole(role, grants)

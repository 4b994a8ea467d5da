"""Where the platform runs: a VPC and EKS cluster this stack creates, or existing ones from config.

Either way the rest of the program sees the same :class:`ClusterFacts` and builds exactly one
Kubernetes provider from them, with an exec-based kubeconfig (never the ambient ~/.kube/config).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.cluster import Cluster
from components.network import Network
from rendering.kubeconfig import eks_exec_kubeconfig
from stackconfig.schema import StackConfig


@dataclass(frozen=True)
class ClusterFacts:
    name: pulumi.Input[str]
    endpoint: pulumi.Input[str]
    certificate_authority_data: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer_host_path: pulumi.Input[str]
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    database_client_security_group_ids: Sequence[pulumi.Input[str]]
    """Who may open connections to Postgres: the created cluster's security group, or the
    configured groups of an existing cluster."""
    network: Network | None = None
    cluster: Cluster | None = None
    load_balancer_subnet_ids: Sequence[pulumi.Input[str]] = ()
    """Where the tracking server's load balancer goes (pinned in the Ingress / NLB Service)."""
    load_balancer_cidrs: Sequence[str] = ()
    """Their CIDRs: the only sources the server's NetworkPolicy admits as the ALB."""


def cluster_facts(
    config: StackConfig,
    base: str,
    tags: dict[str, str],
    key_administrators: pulumi.Input[Sequence[str]] = (),
    log_kms_key_arn: pulumi.Input[str] | None = None,
) -> ClusterFacts:
    """``key_administrators`` and ``log_kms_key_arn`` (``infra.keys``, ``components.kms.LogsKey``):
    the Secrets key's administrators and the key of the control-plane and flow-log groups."""
    settings = config.cluster
    if not settings.creates:
        return ClusterFacts(
            name=settings.name,
            endpoint=settings.endpoint,
            certificate_authority_data=settings.certificate_authority_data,
            oidc_provider_arn=settings.oidc_provider_arn,
            oidc_issuer_host_path=settings.oidc_issuer_host_path,
            vpc_id=config.network.vpc_id,
            private_subnet_ids=config.network.private_subnet_ids,
            database_client_security_group_ids=config.network.database_client_security_group_ids,
            load_balancer_subnet_ids=[subnet.id for subnet in config.network.load_balancer_subnets],
            load_balancer_cidrs=[subnet.cidr_block for subnet in config.network.load_balancer_subnets],
        )
    network = Network(
        f"{base}-network",
        {
            "settings": config.network,
            "cluster_name": settings.name,
            "region": settings.region,
            "tags": tags,
            "deployer_cidrs": settings.deployer_cidrs,
            "log_kms_key_arn": log_kms_key_arn,
        },
    )
    public_lb = config.server.ingress.scheme == "internet-facing"
    cluster = Cluster(
        f"{base}-cluster",
        {
            "settings": settings,
            "vpc_id": network.vpc_id,
            "private_subnet_ids": network.private_subnet_ids,
            "tags": tags,
            "key_administrators": key_administrators,
            "log_kms_key_arn": log_kms_key_arn,
        },
    )
    return ClusterFacts(
        name=cluster.cluster_name,
        endpoint=cluster.endpoint,
        certificate_authority_data=cluster.certificate_authority_data,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer_host_path=cluster.oidc_issuer_host_path,
        vpc_id=network.vpc_id,
        private_subnet_ids=network.private_subnet_ids,
        database_client_security_group_ids=[cluster.cluster_security_group_id],
        network=network,
        cluster=cluster,
        # Internal: the dedicated load-balancer subnets; internet-facing: the public ones. Neither
        # holds a node, so neither holds a pod.
        load_balancer_subnet_ids=network.public_subnet_ids if public_lb else network.load_balancer_subnet_ids,
        load_balancer_cidrs=network.public_cidrs if public_lb else network.load_balancer_cidrs,
    )


def kubeconfig(facts: ClusterFacts, region: str) -> pulumi.Output[str]:
    """The exec-based kubeconfig (``aws eks get-token``): no token in state, no invoke at preview."""
    return pulumi.Output.json_dumps(
        pulumi.Output.all(facts.name, facts.endpoint, facts.certificate_authority_data).apply(
            lambda values: eks_exec_kubeconfig(values[0], values[1], values[2], region)
        )
    )


def kubernetes_provider(name: str, facts: ClusterFacts, region: str) -> k8s.Provider:
    """The program's only Kubernetes provider. On a created cluster it waits for everything the
    cluster component builds: nodes, add-ons and the admins' access entries (without those the
    deployer is not authorised to talk to the API)."""
    return k8s.Provider(
        name,
        kubeconfig=kubeconfig(facts, region),
        enable_server_side_apply=True,
        opts=pulumi.ResourceOptions(depends_on=[facts.cluster] if facts.cluster else []),
    )

"""Who reaches the API endpoint of a cluster this stack creates: the deployer's network and the
read-only roles of previews and drift checks. Plain functions: the stack-config validation and
the ``Cluster``/``Network`` components use the same ones.

Why a deployer network at all: with the public endpoint off (prod), the API answers only on the
private endpoint's ENIs in the VPC that the same ``pulumi up`` creates, behind the cluster
security group, which EKS creates admitting only itself. AWS: "Private access endpoints: The API
server can be accessed only from within an Amazon VPC. You can further lock down access to
specific VPC CIDR blocks through cluster security groups"
(https://repost.aws/knowledge-center/eks-lock-api-access-IP-addresses), reachable from peered,
Direct Connect or VPN-connected networks, whose DNS resolves the endpoint name to the private
addresses since December 2019
(https://aws.amazon.com/blogs/compute/enabling-dns-resolution-for-amazon-eks-cluster-endpoints/).
Public access CIDRs "can't include reserved addresses" (same knowledge-center page), so only
publicly routable deployer networks go on the public endpoint's allow list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

CONNECTED_NETWORK_RANGES = tuple(
    ipaddress.IPv4Network(cidr) for cidr in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
)
"""RFC 1918 and RFC 6598 (carrier-grade NAT, common on VPNs): reachable only over a connected
network (transit gateway, peering, VPN), never from the internet."""

API_PORT = 443

PREVIEW_ACCESS_POLICY = "AmazonEKSViewPolicy"
"""Pull-request previews. pulumi-kubernetes v4 computes a diff from the old live state pruned to
the inputs and the new inputs (``Diff``, no API write); its create/update previews try a
server-side-apply dry run and fall back to the inputs when the API answers Forbidden
(``provider/pkg/provider/provider.go``, ``Create``/``Update``: ``req.GetPreview() &&
apierrors.IsForbidden(awaitErr)``). View is enough, and no Secret is readable by PR code."""

DRIFT_ACCESS_POLICY = "AmazonEKSAdminViewPolicy"
"""The nightly ``preview --refresh``: ``Read`` GETs every object in the state (our Secrets
included; a 403 fails the refresh, only 404 means deleted), and the Helm release provider's
``Read`` runs ``helm get``, which lists the release's Secrets in its namespace. The objects span
several namespaces and a cluster-scoped custom resource (the ClusterIssuer), which a namespace
scope cannot cover, so this is the cluster-scoped read-only policy that includes Secrets."""


def is_connected_network(cidr: str) -> bool:
    """True for a CIDR inside RFC 1918/6598 space: it reaches the private endpoint over a
    connected network (security-group rule and a route back), not the public endpoint."""
    network = ipaddress.IPv4Network(cidr, strict=True)
    return any(network.subnet_of(block) for block in CONNECTED_NETWORK_RANGES)


def connected_deployer_cidrs(deployer_cidrs: Iterable[str]) -> tuple[str, ...]:
    """Deployer networks that need a route back from the VPC (through the transit gateway)."""
    return tuple(cidr for cidr in deployer_cidrs if is_connected_network(cidr))


def public_endpoint_cidrs(public_access_cidrs: Iterable[str], deployer_cidrs: Iterable[str]) -> tuple[str, ...]:
    """The public endpoint's allow list: the operators' CIDRs and the publicly routable deployer
    networks, in order, without duplicates. Empty keeps the public endpoint off: a deployer
    network never turns it on (prod stays private)."""
    operators = tuple(public_access_cidrs)
    if not operators:
        return ()
    merged = list(operators)
    for cidr in deployer_cidrs:
        if not is_connected_network(cidr) and cidr not in merged:
            merged.append(cidr)
    return tuple(merged)

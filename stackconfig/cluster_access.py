"""Config keys for reaching a created cluster's API: the deployer's network, the transit gateway
that routes back to it, the preview/drift roles and the ``kubernetes`` phase switch, and the
check that refuses a configuration whose first ``pulumi up`` could never reach the API.

The keys themselves are declared in ``stackconfig.schema``; what is here are the readers of the
structured ones and the cross-section check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from rendering.cluster_access import connected_deployer_cidrs, is_connected_network

from .errors import MISSING, ConfigProblem
from .namespaces import PROJECT
from .reader import Section
from .schema import StackConfig

_MIN_CONNECTED_PREFIX = 8
MIN_PUBLIC_PREFIX = 16
"""The narrowest a public CIDR may be: operators' egress ranges, never the internet."""


def _key(name: str) -> str:
    return f"{PROJECT}:{name}"


def cidr_list(
    section: Section, field: str, expected: str, narrowest: Callable[[ipaddress.IPv4Network], int]
) -> tuple[str, ...]:
    """A list of IPv4 CIDRs without host bits or duplicates, each at most as wide as
    ``narrowest(network)`` allows (its smallest prefix length); empty is allowed."""
    found, value = section._get(field, (), False, expected)
    if not found:
        return ()
    if not isinstance(value, list):
        section.problem(field, value, expected)
        return ()
    bad: list[object] = []
    for item in value:
        try:
            network = ipaddress.IPv4Network(item, strict=True) if isinstance(item, str) else None
        except ValueError:
            network = None
        if network is None or network.prefixlen < narrowest(network):
            bad.append(item)
    if bad:
        section.problem(field, value, f"{expected}; refused: {bad!r}")
        return ()
    if len(set(value)) != len(value):
        section.problem(field, value, f"{expected}, without duplicates")
        return ()
    return tuple(value)


def deployer_cidrs(section: Section) -> tuple[str, ...]:
    public = MIN_PUBLIC_PREFIX
    expected = (
        "a list of IPv4 CIDRs the deployer (CI runner, VPN) connects from: RFC 1918/6598 networks of at most "
        f"a /{_MIN_CONNECTED_PREFIX}, public ones of at most a /{public}, never 0.0.0.0/0"
    )
    return cidr_list(
        section,
        "deployerCidrs",
        expected,
        lambda network: _MIN_CONNECTED_PREFIX if is_connected_network(str(network)) else public,
    )


def kubernetes_switch(raw: object, problems: list[ConfigProblem]) -> bool:
    """``mlflow-platform:kubernetes``: true unless the first phase of a first deployment sets it
    false on the command line (``--config`` stores the string, which the program JSON-decodes)."""
    if raw is None:
        return True
    if isinstance(raw, bool):
        return raw
    problems.append(
        ConfigProblem(
            _key("kubernetes"),
            raw,
            "true or false (false only for the first phase of a first deployment: docs/cluster.md)",
        )
    )
    return True


def check_cluster_access(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """Mode create only: configurations whose ``pulumi up`` cannot reach the API it creates."""
    cluster, network = config.cluster, config.network
    if not cluster.creates:
        return
    has_deployer = bool(cluster.deployer_cidrs or cluster.deployer_security_group_ids)
    if config.kubernetes and not cluster.public_access_cidrs and not has_deployer:
        problems.append(
            ConfigProblem(
                _key("cluster.deployerCidrs"),
                MISSING,
                f"the network pulumi runs from (or {_key('cluster.deployerSecurityGroupIds')}): with "
                f"{_key('cluster.mode')} 'create', an empty {_key('cluster.publicAccessCidrs')} (private API "
                f"endpoint only) and {_key('kubernetes')} true, the API answers only inside the VPC this stack "
                'creates and every Kubernetes resource would time out (docs/cluster.md, "First deployment")',
            )
        )
    vpc = ipaddress.IPv4Network(network.cidr_block)
    inside = [cidr for cidr in cluster.deployer_cidrs if ipaddress.IPv4Network(cidr).overlaps(vpc)]
    if inside:
        problems.append(
            ConfigProblem(
                _key("cluster.deployerCidrs"),
                list(cluster.deployer_cidrs),
                f"networks outside the VPC this stack creates ({_key('network.cidrBlock')} {network.cidr_block}); "
                f"overlapping: {inside!r}",
            )
        )
    routed = connected_deployer_cidrs(cluster.deployer_cidrs)
    if routed and not network.transit_gateway_id:
        problems.append(
            ConfigProblem(
                _key("network.transitGatewayId"),
                MISSING,
                f"a transit gateway id (tgw-…) connecting {_key('cluster.deployerCidrs')} {list(routed)} to the VPC "
                "this stack creates: without it the VPC has no route back to them",
            )
        )
    _check_one_entry_per_principal(
        cluster.admin_role_arns, cluster.preview_role_arns, cluster.drift_role_arns, problems
    )


def _check_one_entry_per_principal(
    admins: tuple[str, ...], previews: tuple[str, ...], drifts: tuple[str, ...], problems: list[ConfigProblem]
) -> None:
    """EKS holds one access entry per principal; a role in two lists would collide."""
    seen = {arn: "adminRoleArns" for arn in admins}
    for field, arns in (("previewRoleArns", previews), ("driftRoleArns", drifts)):
        clashes = [arn for arn in arns if arn in seen]
        if clashes:
            problems.append(
                ConfigProblem(
                    _key(f"cluster.{field}"),
                    list(arns),
                    f"roles not already in {_key('cluster.' + seen[clashes[0]])} (one access entry per principal; "
                    f"repeated: {clashes!r})",
                )
            )
        seen.update({arn: field for arn in arns})

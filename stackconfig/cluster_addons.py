"""Parsing and cross-checks of the settings that shape the cluster add-ons (issue 17, finding 6):
the ServiceMonitor selector of a reused cluster's Prometheus, and whether ``server.maxReplicas``
pods fit on ``cluster.nodeGroup.maxSize`` nodes (``rendering.node_capacity``).

``stackconfig.sections`` calls the readers with its ``Section`` and ``stackconfig.load`` the
checks with its problem list, so problems are reported the same way.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from rendering import autoscaler
from rendering.node_capacity import INSTANCE_TYPES, SystemPod, nodes_needed, server_pod_requests, system_pods
from rendering.prometheus_stack import prometheus_stack_pods

from .errors import MISSING, ConfigProblem
from .namespaces import PROJECT
from .patterns import LABEL_KEY, LABEL_VALUE, SUBNET_ID
from .reader import Section
from .schema import LoadBalancerSubnet, StackConfig


def service_monitor_labels(section: Section) -> dict[str, str]:
    """``monitoring.serviceMonitorLabels``: the labels a reused cluster's Prometheus selects
    ServiceMonitors by (its ``serviceMonitorSelector.matchLabels``)."""
    expected = (
        "an object of the label keys and values your Prometheus's serviceMonitorSelector matches, "
        "e.g. {release: kube-prometheus-stack}"
    )
    found, labels = section._get("serviceMonitorLabels", {}, False, expected)
    if not found:
        return {}
    if (
        not isinstance(labels, Mapping)
        or not labels
        or not all(
            isinstance(k, str) and LABEL_KEY.match(k) and isinstance(v, str) and LABEL_VALUE.match(v)
            for k, v in labels.items()
        )
    ):
        section.problem("serviceMonitorLabels", labels, expected)
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def check(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """Create mode installs kube-prometheus-stack and renders the selector; reuse mode must name it,
    and its load-balancer subnets must lie in ``server.vpcCidr``."""
    monitoring = config.monitoring
    key = f"{PROJECT}:monitoring.serviceMonitorLabels"
    if config.cluster.creates:
        if monitoring.service_monitor_labels:
            problems.append(
                ConfigProblem(
                    key,
                    monitoring.service_monitor_labels,
                    f"no value with {PROJECT}:cluster.mode 'create' (the stack installs kube-prometheus-stack and "
                    "renders its ServiceMonitor selector)",
                )
            )
    else:
        vpc = ipaddress.IPv4Network(config.server.vpc_cidr, strict=False)
        outside = [
            subnet.cidr_block
            for subnet in config.network.load_balancer_subnets
            if not ipaddress.IPv4Network(subnet.cidr_block).subnet_of(vpc)
        ]
        if outside:
            problems.append(
                ConfigProblem(
                    f"{PROJECT}:network.loadBalancerSubnets",
                    outside,
                    f"CIDRs inside {PROJECT}:server.vpcCidr ({config.server.vpc_cidr})",
                )
            )
    if not config.cluster.creates and monitoring.prometheus_operator and not monitoring.service_monitor_labels:
        problems.append(
            ConfigProblem(
                key,
                MISSING,
                f"the labels your Prometheus's serviceMonitorSelector matches, when {PROJECT}:monitoring."
                f"prometheusOperator is true and {PROJECT}:cluster.mode is 'reuse' (without them Prometheus "
                "ignores the tracking server's ServiceMonitor)",
            )
        )


def stack_system_pods(config: StackConfig) -> tuple[SystemPod, ...]:
    """Every pod a created cluster runs besides the tracking server."""
    return system_pods(
        ingress_class=config.server.ingress.class_name,
        prometheus_operator=config.monitoring.prometheus_operator,
        autoscaler=autoscaler.REQUESTS,
        prometheus=prometheus_stack_pods(),
    )


def check_node_capacity(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """Created cluster: the node group at ``maxSize`` of each listed instance type holds
    ``server.maxReplicas`` server pods at their requests next to every system pod."""
    if not config.cluster.creates:
        return
    nodes = config.cluster.node_group
    unknown = [name for name in nodes.instance_types if name not in INSTANCE_TYPES]
    if unknown:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:cluster.nodeGroup.instanceTypes",
                list(nodes.instance_types),
                f"instance types whose node capacity is known ({', '.join(sorted(INSTANCE_TYPES))}); add others "
                f"to rendering/node_capacity.py with their vCPUs, memory and ENI limits (unknown: {unknown})",
            )
        )
        return
    server = config.server
    pod = server_pod_requests(server.cpu, server.memory)
    system = stack_system_pods(config)
    for name in nodes.instance_types:
        placement = nodes_needed(INSTANCE_TYPES[name], pod, server.max_replicas, system)
        if placement.nodes_needed is not None and placement.nodes_needed <= nodes.max_size:
            continue
        need = (
            f"at least {placement.nodes_needed} nodes of {name}"
            if placement.nodes_needed
            else f"an instance type larger than {name} (one server pod does not fit next to the DaemonSets)"
        )
        problems.append(
            ConfigProblem(
                f"{PROJECT}:cluster.nodeGroup.maxSize",
                nodes.max_size,
                f"{need} to hold {PROJECT}:server.maxReplicas ({server.max_replicas}) server pods of "
                f"{pod.cpu_millis}m CPU / {pod.memory_mib}Mi next to the system pods and DaemonSets "
                f"(rendering/node_capacity.py), or fewer or smaller replicas",
            )
        )
        return


def load_balancer_subnets(section: Section, node_subnet_ids: tuple[str, ...]) -> tuple[LoadBalancerSubnet, ...]:
    """``network.loadBalancerSubnets`` (mode reuse, required): ``[{id, cidrBlock}]``, at least two
    (an ALB needs two AZs), none of them a node subnet, CIDRs not overlapping each other. Their
    CIDRs are what the server's NetworkPolicy admits as the load balancer, so a pod must never get
    an address there: keep every node group out of them."""
    expected = (
        "at least two {id: subnet-…, cidrBlock: <IPv4 CIDR>} in different AZs that no node group uses "
        "(the tracking server's load balancer goes there and its NetworkPolicy admits their CIDRs)"
    )
    found, value = section._get("loadBalancerSubnets", (), True, expected)
    if not found:
        return ()
    if not isinstance(value, list) or len(value) < 2:
        section.problem("loadBalancerSubnets", value, expected)
        return ()
    subnets: list[LoadBalancerSubnet] = []
    for index, item in enumerate(value):
        key = f"loadBalancerSubnets[{index}]"
        ident = item.get("id") if isinstance(item, Mapping) else None
        cidr = item.get("cidrBlock") if isinstance(item, Mapping) else None
        try:
            network = ipaddress.IPv4Network(cidr, strict=True) if isinstance(cidr, str) else None
        except ValueError:
            network = None
        if (
            not isinstance(item, Mapping)
            or set(item) != {"id", "cidrBlock"}
            or not isinstance(ident, str)
            or not SUBNET_ID.match(ident)
            or network is None
        ):
            section.problem(key, item, "{id: subnet-…, cidrBlock: <IPv4 CIDR without host bits>}")
            continue
        if ident in node_subnet_ids:
            section.problem(
                key, item, "a subnet no node uses: it is also in privateSubnetIds, so pods get addresses in it"
            )
            continue
        if any(network.overlaps(ipaddress.IPv4Network(other.cidr_block)) for other in subnets):
            section.problem(key, item, "a CIDR not overlapping the other load-balancer subnets")
            continue
        subnets.append(LoadBalancerSubnet(ident, str(network)))
    return tuple(subnets)

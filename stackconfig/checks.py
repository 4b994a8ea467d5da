"""Rules between sections, each a named function: what one key's declaration cannot say because
it depends on another section (the cluster mode, the database's size, the region)."""

from __future__ import annotations

from collections.abc import Mapping

from rendering.capacity import CapacityEstimate, Demand, ReplicaShape, cpu_cores, estimate
from rendering.pools import CapacityInputs, PoolSizingError, plan_pools
from rendering.postgres import PostgresTuning, max_connections_for

from .errors import MISSING, ConfigProblem
from .namespaces import PROJECT
from .schema import ServerConfig, StackConfig


def capacity(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """Pools and admission limits must fit the database's rendered max_connections."""
    if not config.database.memory_bytes:
        return  # the instance class was already reported
    max_connections = max_connections_for(
        PostgresTuning(memory_bytes=config.database.memory_bytes, max_connections=config.database.max_connections)
    )
    server = config.server
    try:
        plan_pools(CapacityInputs(server.max_replicas, server.workers, server.in_flight_per_worker, max_connections))
    except PoolSizingError as error:
        problems.append(
            ConfigProblem(f"{PROJECT}:server.maxReplicas", server.max_replicas, f"a size that fits: {error}")
        )
    needed = replicas_for_declared_peak(server)
    if needed is not None and needed.replicas_needed > server.max_replicas:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:server.maxReplicas",
                server.max_replicas,
                f"at least {needed.replicas_needed} to carry the declared peak "
                f"({server.peak_requests_per_second} requests/s, {server.peak_metrics_per_second} metrics/s) at "
                f"{needed.requests_per_s_per_replica:.0f} requests/s and {needed.metrics_per_s_per_replica:,.0f} "
                f"metrics/s per replica of cpu {server.cpu} (docs/capacity.md), or more cpu per replica",
            )
        )


def replicas_for_declared_peak(server: ServerConfig) -> CapacityEstimate | None:
    """The capacity estimate for the stack's declared peak, or None if it declares none."""
    if not (server.peak_requests_per_second or server.peak_metrics_per_second):
        return None
    return estimate(
        Demand(server.peak_requests_per_second, server.peak_metrics_per_second),
        ReplicaShape(cpu_cores(server.cpu), server.workers),
    )


def cluster_mode(config: StackConfig, values: Mapping[str, object], problems: list[ConfigProblem]) -> None:
    """Settings of other sections that depend on whether the cluster is created or reused."""
    ingress = config.server.ingress
    raw_server = values.get("server")
    raw_ingress = raw_server.get("ingress") if isinstance(raw_server, Mapping) else None
    given_certificate = isinstance(raw_ingress, Mapping) and raw_ingress.get("acmCertificateArn") is not None
    if config.cluster.mode == "reuse":
        if ingress.class_name == "alb" and not given_certificate:
            problems.append(
                ConfigProblem(
                    f"{PROJECT}:server.ingress.acmCertificateArn",
                    MISSING,
                    "an ACM certificate ARN when className is 'alb' and the cluster is reused",
                )
            )
        return
    if given_certificate:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:server.ingress.acmCertificateArn",
                raw_ingress.get("acmCertificateArn") if isinstance(raw_ingress, Mapping) else None,
                f"no value with {PROJECT}:cluster.mode 'create' (the program issues the certificate, DNS-validated "
                f"in {PROJECT}:cluster.hostedZoneId)",
            )
        )
    if ingress.class_name == "nginx" and not config.cluster.acme_email:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:cluster.acmeEmail",
                MISSING,
                "an e-mail address for the Let's Encrypt account of the cert-manager ClusterIssuer, when "
                "server.ingress.className is 'nginx' and the cluster is created",
            )
        )
    if config.server.vpc_cidr != config.network.cidr_block:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:server.vpcCidr",
                config.server.vpc_cidr,
                f"the created VPC's CIDR, {PROJECT}:network.cidrBlock ({config.network.cidr_block}): "
                "NetworkPolicies admit the ALB and reach the database through it",
            )
        )


def replication(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """A replica in the bucket's own region protects against nothing a region loses."""
    if config.artifacts.replication_region and config.artifacts.replication_region == config.cluster.region:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:artifacts.replicationRegion",
                config.artifacts.replication_region,
                f"another region than {PROJECT}:cluster.region ({config.cluster.region})",
            )
        )

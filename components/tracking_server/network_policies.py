"""The tracking server's NetworkPolicies: default deny both ways for its pods and Jobs, then only
what each needs (rules from ``components.pod_toolkit``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.pod_toolkit import (
    GC_COMPONENT,
    api_object,
    dns_egress,
    https_egress_without_instance_metadata,
    namespace_peer,
    network_policy_spec,
    postgres_egress,
)
from rendering.eks_pod import APP, PGBOUNCER_METRICS_PORT, PROXY_PORT
from rendering.mlflow_server import ArtifactAccessMode
from stackconfig.schema import MonitoringConfig, ServerConfig

from .common import ADMIN_PASSWORD_LABELS, MIGRATION_LABELS, SERVER_LABELS


def server_network_policies(
    name: str,
    settings: ServerConfig,
    *,
    access_mode: ArtifactAccessMode,
    training_namespaces: Sequence[str],
    monitoring: MonitoringConfig,
    load_balancer_cidrs: Sequence[str] | None,
    opts: pulumi.ResourceOptions,
) -> list[k8s.networking.v1.NetworkPolicy]:
    """The server pods: clients (the edge, the training namespaces, gc in proxied mode) reach the
    admission proxy only; the scraper reaches the metrics ports only; egress is DNS, PostgreSQL
    and HTTPS (S3, STS) without the instance metadata service. The migration Job: no ingress."""
    if settings.ingress.class_name == "nginx":
        edge = [namespace_peer(settings.ingress.controller_namespace)]
    else:  # ALB with target-type ip: traffic comes from the load balancer's addresses
        cidrs = load_balancer_cidrs if load_balancer_cidrs is not None else [settings.vpc_cidr]
        edge = [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]
    clients: list[dict[str, Any]] = [*edge, *[namespace_peer(n) for n in training_namespaces]]
    if access_mode == "proxied":  # gc resolves mlflow-artifacts:/ through the server
        clients.append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": GC_COMPONENT}}})
    scraper = {
        "from": [
            {
                **namespace_peer(settings.monitoring_namespace),
                "podSelector": {"matchLabels": dict(monitoring.scraper_pod_labels)},
            }
        ],
        # 8080 serves the API too (NetworkPolicy cannot filter paths); basic-auth guards it.
        "ports": [{"protocol": "TCP", "port": PROXY_PORT}, {"protocol": "TCP", "port": PGBOUNCER_METRICS_PORT}],
    }
    dns, database = dns_egress(), postgres_egress(settings.vpc_cidr)
    server = k8s.networking.v1.NetworkPolicy(
        f"{name}-server-network-policy",
        metadata={"name": f"{APP}-server", "namespace": settings.namespace},
        spec=api_object(
            network_policy_spec(
                SERVER_LABELS,
                ingress=[{"from": clients, "ports": [{"protocol": "TCP", "port": PROXY_PORT}]}, scraper],
                egress=[dns, database, https_egress_without_instance_metadata()],
            )
        ),
        opts=opts,
    )
    job = k8s.networking.v1.NetworkPolicy(
        f"{name}-migration-network-policy",
        metadata={"name": f"{APP}-db-migration", "namespace": settings.namespace},
        spec=api_object(network_policy_spec(MIGRATION_LABELS, egress=[dns, database])),
        opts=opts,
    )
    return [server, job]


def admin_password_network_policy(
    name: str, namespace: str, opts: pulumi.ResourceOptions
) -> k8s.networking.v1.NetworkPolicy:
    """The admin-password Job: no ingress; DNS and HTTPS (the public tracking URL) out."""
    return k8s.networking.v1.NetworkPolicy(
        f"{name}-admin-password-network-policy",
        metadata={"name": f"{APP}-admin-password", "namespace": namespace},
        spec=api_object(
            network_policy_spec(ADMIN_PASSWORD_LABELS, egress=[dns_egress(), https_egress_without_instance_metadata()])
        ),
        opts=opts,
    )

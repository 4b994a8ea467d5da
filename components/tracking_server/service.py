"""How the tracking server is reached: the ClusterIP Service (in front of the admission proxy) and
the TLS Ingress (ingress-nginx with cert-manager, or the AWS Load Balancer Controller's ALB)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from components.pod_toolkit import api_object
from rendering.eks_pod import APP, SERVICE_PORT
from rendering.ingress import IngressSettings, ingress_nginx_annotations
from stackconfig.schema import ServerConfig

from .common import SERVER_LABELS


def service(name: str, namespace: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    return k8s.core.v1.Service(
        f"{name}-service",
        metadata={"name": APP, "namespace": namespace, "labels": SERVER_LABELS},
        spec=api_object(
            {
                "type": "ClusterIP",
                "selector": SERVER_LABELS,
                "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "proxy", "protocol": "TCP"}],
            }
        ),
        opts=opts,
    )


def ingress(
    name: str,
    settings: ServerConfig,
    request_handling: IngressSettings,
    certificate_arn: pulumi.Input[str],
    opts: pulumi.ResourceOptions,
    subnet_ids: Sequence[pulumi.Input[str]] = (),
) -> k8s.networking.v1.Ingress:
    """``certificate_arn`` and ``subnet_ids``: the ALB's (ignored on nginx, whose certificate
    cert-manager issues into the ``mlflow-tls`` Secret)."""
    config = settings.ingress
    if config.class_name == "nginx":
        annotations = {
            **ingress_nginx_annotations(request_handling),
            "cert-manager.io/cluster-issuer": config.cert_manager_issuer,
        }
        tls = [{"hosts": [settings.host], "secretName": f"{APP}-tls"}]
    else:
        idle_timeout = f"idle_timeout.timeout_seconds={request_handling.proxy_read_timeout_s}"
        annotations: dict[str, pulumi.Input[str]] = {
            "alb.ingress.kubernetes.io/scheme": config.scheme,
            "alb.ingress.kubernetes.io/target-type": "ip",
            "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
            "alb.ingress.kubernetes.io/ssl-redirect": "443",
            "alb.ingress.kubernetes.io/certificate-arn": certificate_arn,
            "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
            "alb.ingress.kubernetes.io/healthcheck-path": "/health",
            "alb.ingress.kubernetes.io/load-balancer-attributes": idle_timeout,
        }
        if subnet_ids:  # pinned: never subnets that hold pods, whatever else is tagged
            annotations["alb.ingress.kubernetes.io/subnets"] = pulumi.Output.all(*subnet_ids).apply(",".join)
        tls = [{"hosts": [settings.host]}]
    return k8s.networking.v1.Ingress(
        f"{name}-ingress",
        metadata={
            "name": APP,
            "namespace": settings.namespace,
            "labels": dict(SERVER_LABELS),
            "annotations": annotations,
        },
        spec=api_object(
            {
                "ingressClassName": config.class_name,
                "tls": tls,
                "rules": [
                    {
                        "host": settings.host,
                        "http": {
                            "paths": [
                                {
                                    "path": "/",
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": APP, "port": {"number": SERVICE_PORT}}},
                                }
                            ]
                        },
                    }
                ],
            }
        ),
        opts=opts,
    )

"""The ingress-nginx Service's load balancer, reconciled by the AWS Load Balancer Controller.

Why: with the Service handed to the in-tree/cloud controller (``aws-load-balancer-type: nlb``) the
NLB gets *instance* targets, which preserve the client IP; a target whose request the NLB routes back
to itself then sees its own address as source and the connection times out (ELB user guide, Network
Load Balancers, troubleshooting: "Requests from a target to its load balancer time out", which
recommends IP targets; "Edit target group attributes": client IP preservation defaults to enabled for
instance targets, disabled for IP targets over TCP/TLS). Dev's in-cluster clients (training jobs)
call ``https://<host>`` through that NLB. So the LBC owns the Service (``loadBalancerClass:
service.k8s.aws/nlb``, ``aws-load-balancer-type: external``), with IP targets (the NLB sends to the
pods) and client IP preservation off explicitly.

``LBC_SERVICE_ANNOTATIONS``: the Service annotation suffixes the controller reads, from
kubernetes-sigs/aws-load-balancer-controller ``pkg/annotations/constants.go`` (``SvcLBSuffix*``),
and the values it accepts for the ones we set (its "Service annotations" guide); the cloud test
checks the rendered Service uses nothing else.
"""

from __future__ import annotations

from typing import Literal

LoadBalancerScheme = Literal["internal", "internet-facing"]
"""``server.ingress.scheme`` (``stackconfig.schema`` reads it from here)."""

LOAD_BALANCER_CLASS = "service.k8s.aws/nlb"
PREFIX = "service.beta.kubernetes.io/"
LBC_SERVICE_ANNOTATIONS: dict[str, tuple[str, ...] | None] = {
    "aws-load-balancer-type": ("external", "nlb-ip"),
    "aws-load-balancer-nlb-target-type": ("ip", "instance"),
    "aws-load-balancer-scheme": ("internal", "internet-facing"),
    "aws-load-balancer-target-group-attributes": None,  # key=value list, checked below
    "aws-load-balancer-subnets": None,
    "aws-load-balancer-attributes": None,
    "aws-load-balancer-ip-address-type": ("ipv4", "dualstack"),
    "aws-load-balancer-backend-protocol": ("tcp", "ssl", "tls", "http", "https"),
    "aws-load-balancer-healthcheck-protocol": ("tcp", "http", "https"),
    "aws-load-balancer-healthcheck-port": None,
    "aws-load-balancer-healthcheck-path": None,
    "aws-load-balancer-additional-resource-tags": None,
}
TARGET_GROUP_ATTRIBUTES = (
    "preserve_client_ip.enabled",
    "proxy_protocol_v2.enabled",
    "deregistration_delay.timeout_seconds",
)


def nlb_service_annotations(scheme: LoadBalancerScheme) -> dict[str, str]:
    return {
        f"{PREFIX}aws-load-balancer-type": "external",
        f"{PREFIX}aws-load-balancer-nlb-target-type": "ip",
        f"{PREFIX}aws-load-balancer-scheme": scheme,
        # Off explicitly (it is off by default only for IP targets over TCP): no hairpin failure.
        f"{PREFIX}aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=false",
    }


def unhonoured(annotations: dict[str, str]) -> list[str]:
    """Annotations (or values) on a Service that the installed controller would not act on."""
    problems: list[str] = []
    for key, value in annotations.items():
        suffix = key.removeprefix(PREFIX)
        if not key.startswith(PREFIX) or suffix not in LBC_SERVICE_ANNOTATIONS:
            problems.append(f"{key}: not an annotation the AWS Load Balancer Controller reads")
            continue
        allowed = LBC_SERVICE_ANNOTATIONS[suffix]
        if allowed is not None and value not in allowed:
            problems.append(f"{key}={value}: the controller accepts {allowed}")
        if suffix == "aws-load-balancer-target-group-attributes":
            names = [pair.split("=", 1)[0] for pair in value.split(",")]
            problems += [f"{key}: unknown attribute {n}" for n in names if n not in TARGET_GROUP_ATTRIBUTES]
    return problems

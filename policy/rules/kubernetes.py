"""Kubernetes workloads and ingress: non-root, requests and limits, probes, TLS at the ingress."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs, Severity

from policy.rules.common import as_list, as_mapping, get_path, is_mapping
from policy.rules.registry import resource_rule

POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:core/v1:Pod": ("spec",),
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
LONG_RUNNING = frozenset(
    {
        "kubernetes:apps/v1:Deployment",
        "kubernetes:apps/v1:StatefulSet",
        "kubernetes:apps/v1:DaemonSet",
        "kubernetes:apps/v1:ReplicaSet",
    }
)
DEFAULT_EXCLUDED_NAMESPACES = ("kube-system",)
EXCLUDE_NAMESPACES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string"},
    "default": list(DEFAULT_EXCLUDED_NAMESPACES),
    "description": "Namespaces whose workloads are not checked (cluster add-ons managed by AWS).",
}


def _pod_spec(args: ResourceValidationArgs) -> Mapping[str, Any] | None:
    path = POD_SPEC_PATHS.get(args.resource_type)
    if path is None:
        return None
    excluded = args.get_config().get("excludeNamespaces")
    excluded = DEFAULT_EXCLUDED_NAMESPACES if excluded is None else excluded
    if get_path(args.props, "metadata", "namespace") in set(excluded):
        return None
    spec = get_path(args.props, *path)
    return as_mapping(spec)


def _containers(spec: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """``(role, container)``: role is ``container``, ``sidecar`` (native: an init container with
    ``restartPolicy: Always``) or ``init``."""
    for container in as_list(spec.get("initContainers")):
        if is_mapping(container):
            yield ("sidecar" if container.get("restartPolicy") == "Always" else "init"), container
    for container in as_list(spec.get("containers")):
        if is_mapping(container):
            yield "container", container


def _label(role: str, container: Mapping[str, Any]) -> str:
    return f"{role} {container.get('name', '<unnamed>')!r}"


@resource_rule(
    name="k8s-run-as-non-root",
    description="Every container runs as a non-root user and unprivileged (CKV_K8S_23/40, CKV_K8S_16, CIS K8s 5.2.7).",
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(properties={"excludeNamespaces": EXCLUDE_NAMESPACES_SCHEMA}),
)
def k8s_non_root(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args)
    if spec is None:
        return
    pod_context = as_mapping(spec.get("securityContext"))
    for role, container in _containers(spec):
        context = as_mapping(container.get("securityContext"))
        user = context.get("runAsUser", pod_context.get("runAsUser"))
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        label = _label(role, container)
        if user is not None and int(user) == 0:
            report(f"{label} runs as UID 0.", None)
        elif non_root is False:
            report(f"{label} sets runAsNonRoot: false.", None)
        elif non_root is not True and user is None:
            report(f"{label} sets neither runAsNonRoot: true nor a non-zero runAsUser (pod or container).", None)
        if context.get("privileged") is True:
            report(f"{label} is privileged (root on the node).", None)


@resource_rule(
    name="k8s-resource-limits",
    description="Every container declares CPU and memory requests and limits (CKV_K8S_10/11/12/13).",
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(
        properties={
            "excludeNamespaces": EXCLUDE_NAMESPACES_SCHEMA,
            "requiredLimits": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
            "requiredRequests": {"type": "array", "items": {"type": "string"}, "default": ["cpu", "memory"]},
        }
    ),
)
def k8s_resource_limits(args: ResourceValidationArgs, report: ReportViolation) -> None:
    spec = _pod_spec(args)
    if spec is None:
        return
    config = args.get_config()
    wanted = {
        "limits": config.get("requiredLimits") or ["cpu", "memory"],
        "requests": config.get("requiredRequests") or ["cpu", "memory"],
    }
    for role, container in _containers(spec):
        resources = as_mapping(container.get("resources"))
        for kind, names in wanted.items():
            have = as_mapping(resources.get(kind))
            missing = [n for n in names if not have.get(n)]
            if missing:
                report(f"{_label(role, container)} has no {kind} for {', '.join(missing)}.", None)


@resource_rule(
    name="k8s-liveness-and-readiness-probes",
    description="Every long-running container has liveness and readiness probes (CKV_K8S_8/9).",
    severity=Severity.MEDIUM,
    config_schema=PolicyConfigSchema(
        properties={
            "excludeNamespaces": EXCLUDE_NAMESPACES_SCHEMA,
            "includeNativeSidecars": {
                "type": "boolean",
                "default": False,
                "description": "Also require probes on native sidecars (init containers with restartPolicy Always).",
            },
        }
    ),
)
def k8s_probes(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type not in LONG_RUNNING:
        return  # Jobs run to completion: probes would only get in the way
    spec = _pod_spec(args)
    if spec is None:
        return
    roles = {"container", "sidecar"} if args.get_config().get("includeNativeSidecars") else {"container"}
    for role, container in _containers(spec):
        if role not in roles:
            continue
        missing = [p for p in ("livenessProbe", "readinessProbe") if not is_mapping(container.get(p))]
        if missing:
            report(f"{_label(role, container)} has no {' and no '.join(missing)}.", None)


INGRESS_TYPE = "kubernetes:networking.k8s.io/v1:Ingress"
ALB = "alb.ingress.kubernetes.io/"


def _host_covered(host: str, tls_hosts: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(host, pattern) and host.count(".") == pattern.count(".") for pattern in tls_hosts)


@resource_rule(
    name="k8s-ingress-tls",
    description="Ingresses terminate TLS for every host and redirect HTTP to HTTPS (CIS EKS 5.4.5).",
    severity=Severity.HIGH,
    config_schema=PolicyConfigSchema(
        properties={"albClassNames": {"type": "array", "items": {"type": "string"}, "default": ["alb"]}}
    ),
)
def k8s_ingress_tls(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != INGRESS_TYPE:
        return
    annotations = as_mapping(get_path(args.props, "metadata", "annotations"))
    spec = as_mapping(args.props.get("spec"))
    class_name = spec.get("ingressClassName") or annotations.get("kubernetes.io/ingress.class")
    albs = args.get_config().get("albClassNames") or ["alb"]
    tls = [t for t in as_list(spec.get("tls")) if is_mapping(t)]
    tls_hosts = [str(h) for t in tls for h in as_list(t.get("hosts"))]
    hosts = [str(r.get("host")) for r in as_list(spec.get("rules")) if is_mapping(r) and r.get("host")]

    if class_name in albs:
        certificate = annotations.get(f"{ALB}certificate-arn")
        # The controller's default listener: HTTPS:443 when a certificate is named, else HTTP:80.
        default_listeners = '[{"HTTPS": 443}]' if certificate else '[{"HTTP": 80}]'
        try:
            listeners = json.loads(str(annotations.get(f"{ALB}listen-ports") or default_listeners))
        except json.JSONDecodeError:
            report("alb.ingress.kubernetes.io/listen-ports is not valid JSON.", None)
            return
        protocols = {str(key).upper() for entry in as_list(listeners) if is_mapping(entry) for key in entry}
        if "HTTPS" not in protocols:
            report("The ALB has no HTTPS listener (alb.ingress.kubernetes.io/listen-ports).", None)
        elif not certificate and not tls_hosts:
            report("The ALB HTTPS listener has no certificate (certificate-arn annotation or spec.tls hosts).", None)
        if "HTTP" in protocols and not annotations.get(f"{ALB}ssl-redirect"):
            report("The ALB listens on HTTP without alb.ingress.kubernetes.io/ssl-redirect.", None)
        return

    if not tls:
        report("spec.tls is empty: the ingress serves plain HTTP.", None)
        return
    if any(not t.get("secretName") for t in tls):
        report("Every spec.tls entry needs a secretName holding the certificate.", None)
    uncovered = [h for h in hosts if not _host_covered(h, tls_hosts)]
    if uncovered:
        report(f"Hosts without TLS: {uncovered} (spec.tls hosts: {tls_hosts}).", None)
    if str(annotations.get("nginx.ingress.kubernetes.io/ssl-redirect", "true")).lower() == "false":
        report("nginx.ingress.kubernetes.io/ssl-redirect is false: HTTP is served instead of redirected.", None)

"""The parts every pod the platform runs on EKS is built from: labels, the locked-down security
contexts, resources, the stage-secrets init container and its volumes, the NetworkPolicy peers
and rules (DNS, PostgreSQL, HTTPS without the instance metadata service), and the API-object
helper. The tracking server (``components.tracking_server``) and the gc CronJob
(``components.garbage_collection``) are built from it; a new workload is one module that is too.

Why one module: each of these facts is a security property (non-root, no privilege escalation,
read-only root, 0600 secrets, no route to node credentials) that a copy could silently weaken.
Model: the MLflow community Helm chart keeps one template per object and shared snippets in one
``_helpers.tpl``; cdk8s-plus has one module per kind (``src/pod.ts``, ``src/container.ts``).

Functions return the objects as the Kubernetes API spells them (camelCase dicts): see
:func:`api_object`. Names, ports and paths come from ``rendering.eks_pod`` (pure, shared with the
parity test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rendering.eks_pod import APP, RDS_CA_IN_IMAGE, RUN_DIR, SECRETS_DIR, UID

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server puts on every namespace, holding its name (immutable, Kubernetes
>= 1.22): how a NetworkPolicy ``namespaceSelector`` picks a namespace by name."""
SERVER_COMPONENT = "tracking-server"
GC_COMPONENT = "garbage-collection"
"""``app.kubernetes.io/component`` of the workloads whose NetworkPolicies name each other: the gc
CronJob reaches the server pods in proxied mode, and the server admits it."""
POSTGRES_PORT = 5432
INSTANCE_METADATA_CIDR = "169.254.169.254/32"


def api_object(spec: Mapping[str, Any]) -> Any:
    """Object specs here are written as the Kubernetes API spells them (camelCase), exactly what
    the API server receives; tests validate every object against the Kubernetes JSON schema in
    strict mode, a stronger check than the SDK's TypedDicts, which expect snake_case keys."""
    return spec


def workload_labels(component: str | None = None) -> dict[str, str]:
    """The recommended labels (kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/)
    of the platform's objects; ``component`` tells its workloads apart (NetworkPolicies select by it)."""
    labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "mlflow-platform"}
    return {**labels, "app.kubernetes.io/component": component} if component else labels


@dataclass(frozen=True)
class Resources:
    """A container's requests; limits are the same memory (no overcommit) and twice the CPU."""

    cpu_request: str
    memory: str

    def spec(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory},
            "limits": {"cpu": double_cpu(self.cpu_request), "memory": self.memory},
        }


def double_cpu(quantity: str) -> str:
    """CPU limit = 2 × request: bursts for migrations of state at start-up, bounded for neighbours."""
    if quantity.endswith("m"):
        return f"{int(quantity[:-1]) * 2}m"
    return str(float(quantity) * 2).removesuffix(".0")


def container_security() -> dict[str, Any]:
    """The ``restricted`` Pod Security Standard and more: the image's user, no privilege
    escalation, no capability, read-only root (writable paths are emptyDirs)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        # Secret volumes become group-readable by this GID; the init container copies them 0600.
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container(name: str, image: str, resources: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A container with the platform's fixed parts: always pulled (a tag names a mutable image;
    stacks pin digests in config) and the locked-down security context. ``fields`` are the API's
    own keys (``command``, ``env``, ``ports``, probes, ``volumeMounts``…)."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Always",
        **fields,
        "securityContext": container_security(),
        "resources": resources,
    }


def stage_command(files: Sequence[str], *, rds_ca: bool) -> list[str]:
    """Copy mounted secrets to the in-memory run dir as 0600 (libpq refuses group-readable
    password files); with ``rds_ca``, also the RDS CA where PgBouncer and libpq look for it."""
    copies = " && ".join(f"install -m 0600 {SECRETS_DIR}/{name} {RUN_DIR}/{name}" for name in files)
    if rds_ca:
        return ["sh", "-ec", f"{copies} && install -m 0444 {RDS_CA_IN_IMAGE} {RUN_DIR}/rds-ca.pem"]
    return ["sh", "-ec", copies]


def stage_secrets_container(
    image: str, files: Sequence[str], resources: Mapping[str, Any], *, rds_ca: bool
) -> dict[str, Any]:
    """The init container that stages ``files`` of the ``secrets`` volume into the ``run`` one
    (see :func:`stage_command`, :func:`secrets_volume`, :func:`run_volume`)."""
    return container(
        "stage-secrets",
        image,
        resources,
        command=stage_command(files, rds_ca=rds_ca),
        volumeMounts=[
            {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
            {"name": "run", "mountPath": RUN_DIR},
        ],
    )


def secrets_volume(secret_name: str, keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The Secret the stage-secrets container reads, group-readable only (0440 with ``fsGroup``);
    ``keys``: only those, else every key."""
    secret: dict[str, Any] = {"secretName": secret_name, "defaultMode": 0o440}
    if keys is not None:
        secret["items"] = [{"key": key, "path": key} for key in keys]
    return {"name": "secrets", "secret": secret}


def run_volume(size_limit: str) -> dict[str, Any]:
    """The in-memory run dir: staged secrets never touch the node's disk."""
    return {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": size_limit}}


def scratch_volume(size_limit: str, name: str = "tmp") -> dict[str, Any]:
    """A disk-backed emptyDir for ``/tmp`` (the root filesystem is read-only); past its size limit
    the kubelet evicts the pod rather than let it fill the node's disk."""
    return {"name": name, "emptyDir": {"sizeLimit": size_limit}}


def pod_spec(
    service_account: str,
    *,
    init_containers: Sequence[Mapping[str, Any]],
    containers: Sequence[Mapping[str, Any]],
    volumes: Sequence[Mapping[str, Any]],
    restart_policy: Literal["Never"] | None = None,
) -> dict[str, Any]:
    """A pod on the platform: its own ServiceAccount without an API token (no workload talks to
    the Kubernetes API; IRSA injects its own projected token) and the pod security context.
    ``restart_policy="Never"`` for a Job's pod: a failed pod is kept for its logs, the Job retries."""
    return {
        **({"restartPolicy": restart_policy} if restart_policy else {}),
        "serviceAccountName": service_account,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(),
        "initContainers": list(init_containers),
        "containers": list(containers),
        "volumes": list(volumes),
    }


def job_spec(
    labels: Mapping[str, str], pod: Mapping[str, Any], *, backoff_limit: int, active_deadline_seconds: int
) -> dict[str, Any]:
    """A Job spec (also a CronJob's ``jobTemplate.spec``): bounded retries and run time."""
    return {
        "backoffLimit": backoff_limit,
        "activeDeadlineSeconds": active_deadline_seconds,
        "template": {"metadata": {"labels": dict(labels)}, "spec": dict(pod)},
    }


def namespace_peer(name: str) -> dict[str, Any]:
    """A NetworkPolicy peer: every pod of the namespace called ``name``."""
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: name}}}


def dns_egress() -> dict[str, Any]:
    """Egress to the cluster DNS (CoreDNS, labelled ``k8s-app: kube-dns`` on EKS), UDP and TCP."""
    return {
        "to": [{**namespace_peer("kube-system"), "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }


def postgres_egress(vpc_cidr: str) -> dict[str, Any]:
    """Egress to PostgreSQL (RDS) inside the VPC."""
    return {"to": [{"ipBlock": {"cidr": vpc_cidr}}], "ports": [{"protocol": "TCP", "port": POSTGRES_PORT}]}


def https_egress_without_instance_metadata() -> dict[str, Any]:
    """HTTPS anywhere (S3, STS for IRSA, the public tracking URL) except the instance metadata
    service, which would hand out the node's credentials (webhook SSRF CVE-2026-64849)."""
    return {
        "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [INSTANCE_METADATA_CIDR]}}],
        "ports": [{"protocol": "TCP", "port": 443}],
    }


def network_policy_spec(
    pod_labels: Mapping[str, str],
    *,
    egress: Sequence[Mapping[str, Any]],
    ingress: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Default deny both ways for the pods with ``pod_labels``, then only ``ingress`` and ``egress``
    (an empty ``ingress``: nothing may connect to them)."""
    return {
        "podSelector": {"matchLabels": dict(pod_labels)},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": list(ingress),
        "egress": list(egress),
    }

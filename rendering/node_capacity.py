"""Do ``server.maxReplicas`` tracking-server pods fit on ``nodeGroup.maxSize`` nodes?

The node autoscaler can only grow the node group to ``maxSize``; the HPA can only ask for
``maxReplicas``. If the pods at their requests, next to every system pod and DaemonSet this stack
installs, do not fit on that many nodes of the smallest listed instance type, the last replicas
stay Pending exactly when the load is highest. The config validation (``stackconfig.cluster_addons``)
and ``tests/cloud/test_cluster_add_ons.py`` use the same arithmetic.

Sources for the numbers:

- Allocatable on EKS AL2023 nodes (awslabs/amazon-eks-ami, ``nodeadm/internal/kubelet/config.go``):
  kube-reserved memory ``11 MiB × maxPods + 255 MiB``; kube-reserved CPU 6 % of the first core,
  1 % of the second, 0.5 % of cores 3-4, 0.25 % above; eviction at ``memory.available < 100Mi``.
- maxPods without prefix delegation: ``ENIs × (IPv4 addresses per ENI − 1) + 2``
  (``nodeadm/internal/kubelet/eni_max_pods.go``); ENIs and addresses per ENI from the EC2 user
  guide, "Maximum IP addresses per network interface".
- The memory the kernel keeps from the instance's nominal memory: 7.5 %, Karpenter's
  ``VM_MEMORY_OVERHEAD_PERCENT`` default (karpenter.sh, "Settings"), a measured fleet average.
- System pods: the requests this stack renders where it sets them (cluster autoscaler,
  kube-prometheus-stack), else the components' published defaults, named per entry below.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

VM_MEMORY_OVERHEAD = 0.075
EVICTION_HARD_MIB = 100


@dataclass(frozen=True)
class Requests:
    cpu_millis: int
    memory_mib: int

    def __add__(self, other: Requests) -> Requests:
        return Requests(self.cpu_millis + other.cpu_millis, self.memory_mib + other.memory_mib)

    def fits_in(self, other: Requests) -> bool:
        return self.cpu_millis <= other.cpu_millis and self.memory_mib <= other.memory_mib


NOTHING = Requests(0, 0)


def cpu_millis(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else round(float(quantity) * 1000)


def memory_mib(quantity: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return round(float(quantity[: -len(suffix)]) * factor)
    return round(int(quantity) / 2**20)


def requests_of(resources: Mapping[str, Any] | None) -> Requests:
    wanted = (resources or {}).get("requests") or {}
    return Requests(cpu_millis(str(wanted.get("cpu", "0"))), memory_mib(str(wanted.get("memory", "0"))))


def pod_requests(pod_spec: Mapping[str, Any]) -> Requests:
    """A pod's effective request as the scheduler computes it: the larger of (sidecars + app
    containers) and, for each ordinary init container, itself plus the sidecars started before it
    (Kubernetes docs, "Sidecar containers": resource sharing within containers)."""
    sidecars = NOTHING
    peak = NOTHING
    for init in pod_spec.get("initContainers", []):
        own = requests_of(init.get("resources"))
        if init.get("restartPolicy") == "Always":
            sidecars = sidecars + own
        else:
            candidate = sidecars + own
            peak = Requests(max(peak.cpu_millis, candidate.cpu_millis), max(peak.memory_mib, candidate.memory_mib))
    running = sidecars
    for container in pod_spec.get("containers", []):
        running = running + requests_of(container.get("resources"))
    return Requests(max(peak.cpu_millis, running.cpu_millis), max(peak.memory_mib, running.memory_mib))


SERVER_SIDECAR_REQUESTS = Requests(50, 64)
"""Each of the tracking server pod's small containers (``components.tracking_server``: PgBouncer
sidecar, admission proxy, PgBouncer exporter; the secret-staging init container runs first)."""


def server_pod_requests(cpu: str, memory: str) -> Requests:
    """The tracking server pod's effective request for ``server.cpu``/``server.memory``; the
    cloud test checks it equals :func:`pod_requests` of the rendered Deployment."""
    small = SERVER_SIDECAR_REQUESTS
    return Requests(cpu_millis(cpu), memory_mib(memory)) + small + small + small


@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_gib: int
    enis: int
    ipv4_per_eni: int

    @property
    def max_pods(self) -> int:
        return self.enis * (self.ipv4_per_eni - 1) + 2

    @property
    def allocatable(self) -> Requests:
        total = self.vcpus * 1000
        reserved_cpu = 0
        for start, end, basis_points in ((0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, total, 25)):
            if total > start:
                reserved_cpu += (min(total, end) - start) * basis_points // 10000
        memory = int(self.memory_gib * 1024 * (1 - VM_MEMORY_OVERHEAD))
        reserved_memory = 11 * self.max_pods + 255 + EVICTION_HARD_MIB
        return Requests(total - reserved_cpu, memory - reserved_memory)


INSTANCE_TYPES: dict[str, InstanceType] = {
    # vCPUs, GiB, ENIs, IPv4 per ENI (EC2 user guide tables)
    "t3.medium": InstanceType(2, 4, 3, 6),
    "t3.large": InstanceType(2, 8, 3, 12),
    "t3a.large": InstanceType(2, 8, 3, 12),
    "t3.xlarge": InstanceType(4, 16, 4, 15),
    "m5.large": InstanceType(2, 8, 3, 10),
    "m5.xlarge": InstanceType(4, 16, 4, 15),
    "m5.2xlarge": InstanceType(8, 32, 4, 15),
    "m6i.large": InstanceType(2, 8, 3, 10),
    "m6i.xlarge": InstanceType(4, 16, 4, 15),
    "m6i.2xlarge": InstanceType(8, 32, 4, 15),
    "m7i.large": InstanceType(2, 8, 3, 10),
    "m7i.xlarge": InstanceType(4, 16, 4, 15),
    "m7i.2xlarge": InstanceType(8, 32, 4, 15),
    "r6i.large": InstanceType(2, 16, 3, 10),
    "r6i.xlarge": InstanceType(4, 32, 4, 15),
}


@dataclass(frozen=True)
class SystemPod:
    name: str
    requests: Requests
    replicas: int | None
    """None: a DaemonSet (one on every node)."""
    source: str


EKS_ADDON_PODS: tuple[SystemPod, ...] = (
    SystemPod("aws-node (vpc-cni)", Requests(25, 0), None, "amazon-vpc-cni-k8s chart: requests.cpu 25m"),
    SystemPod("kube-proxy", Requests(100, 0), None, "EKS kube-proxy add-on: requests.cpu 100m"),
    SystemPod("ebs-csi-node", Requests(30, 120), None, "aws-ebs-csi-driver chart: 3 containers × 10m/40Mi"),
    SystemPod("coredns", Requests(100, 70), 2, "CoreDNS deployment: 100m/70Mi, 2 replicas"),
    SystemPod("ebs-csi-controller", Requests(60, 240), 2, "aws-ebs-csi-driver chart: 6 containers × 10m/40Mi"),
    SystemPod("metrics-server", Requests(100, 200), 1, "metrics-server manifests: 100m/200Mi"),
)


def system_pods(
    *,
    ingress_class: str,
    prometheus_operator: bool,
    autoscaler: Requests,
    prometheus: Iterable[SystemPod] = (),
) -> tuple[SystemPod, ...]:
    """Everything the stack runs on the node group besides the tracking server."""
    pods = [
        *EKS_ADDON_PODS,
        SystemPod("cluster-autoscaler", autoscaler, 1, "rendered (components.cluster_scaling)"),
        # On both ingress paths: the ALB's, or ingress-nginx's NLB (rendering.nlb).
        SystemPod("aws-load-balancer-controller", NOTHING, 2, "chart default: no requests"),
    ]
    if ingress_class != "alb":
        pods += [
            SystemPod("ingress-nginx-controller", Requests(100, 90), 2, "ingress-nginx chart: 100m/90Mi"),
            SystemPod("cert-manager (controller, webhook, cainjector)", NOTHING, 3, "chart default: no requests"),
        ]
    if prometheus_operator:
        pods += list(prometheus)
    return tuple(pods)


@dataclass(frozen=True)
class Placement:
    nodes_needed: int | None
    """Nodes of the instance type that hold everything; None: a pod fits on no node at all."""
    per_node: Requests
    pod_slots: int


def nodes_needed(
    instance: InstanceType, server: Requests, replicas: int, system: Sequence[SystemPod], limit: int = 100
) -> Placement:
    """First-fit decreasing of the server pods and the system Deployments onto nodes that each
    already run every DaemonSet; returns how many nodes that takes."""
    daemons = [pod for pod in system if pod.replicas is None]
    free = instance.allocatable
    for pod in daemons:
        free = Requests(free.cpu_millis - pod.requests.cpu_millis, free.memory_mib - pod.requests.memory_mib)
    slots = instance.max_pods - len(daemons)
    pods = [server] * replicas + [pod.requests for pod in system if pod.replicas for _ in range(pod.replicas)]
    pods.sort(key=lambda r: (r.cpu_millis, r.memory_mib), reverse=True)
    if any(not pod.fits_in(free) for pod in pods) or slots < 1:
        return Placement(None, free, slots)
    nodes: list[tuple[Requests, int]] = []  # used, pods
    for pod in pods:
        for index, (used, count) in enumerate(nodes):
            if (used + pod).fits_in(free) and count < slots:
                nodes[index] = (used + pod, count + 1)
                break
        else:
            nodes.append((pod, 1))
        if len(nodes) > limit:
            return Placement(None, free, slots)
    return Placement(len(nodes), free, slots)


def smallest(instance_types: Sequence[str]) -> str:
    """The listed type with the least allocatable (a mixed or spot group may launch any of them)."""
    return min(instance_types, key=lambda name: (INSTANCE_TYPES[name].allocatable.memory_mib, name))

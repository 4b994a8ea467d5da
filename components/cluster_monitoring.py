"""The Prometheus Operator on a cluster this stack creates (``monitoring.prometheusOperator: true``).

Without it the API server answers "no matches for kind ServiceMonitor" for the tracking server's
ServiceMonitor. The release installs the operator's CRDs (the chart's ``crds`` dependency) and a
Prometheus selecting ServiceMonitors by :func:`rendering.prometheus_stack.service_monitor_labels`;
``infra.stack`` makes the ServiceMonitor wait for it. On a reused cluster the operator is taken as
given and the selector labels are config (``monitoring.serviceMonitorLabels``).
"""

from __future__ import annotations

from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.cluster_addons import Chart
from rendering.prometheus_stack import RELEASE_NAME, kube_prometheus_stack_values

KUBE_PROMETHEUS_STACK = Chart("kube-prometheus-stack", "67.8.0", "https://prometheus-community.github.io/helm-charts")
"""The newest release whose Chart.yaml was readable here (prometheus-community/helm-charts,
appVersion v0.79.2 of the operator); no registry was reachable, so no digest. Bump deliberately."""


class ClusterMonitoringArgs(TypedDict):
    namespace: str
    """``server.monitoringNamespace``: where Prometheus runs (the NetworkPolicy admits it from there)."""
    retention_days: NotRequired[int]


class ClusterMonitoring(pulumi.ComponentResource):
    release: k8s.helm.v3.Release

    def __init__(self, name: str, args: ClusterMonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:ClusterMonitoring", name, {}, opts)
        self.release = k8s.helm.v3.Release(
            f"{name}-kube-prometheus-stack",
            name=RELEASE_NAME,
            chart=KUBE_PROMETHEUS_STACK.name,
            version=KUBE_PROMETHEUS_STACK.version,
            repository_opts={"repo": KUBE_PROMETHEUS_STACK.repository},
            namespace=args["namespace"],
            create_namespace=True,
            values=kube_prometheus_stack_values(args.get("retention_days", 15)),
            atomic=True,
            cleanup_on_fail=True,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"release": self.release.name})

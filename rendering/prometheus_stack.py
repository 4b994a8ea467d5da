"""Values of the kube-prometheus-stack release the stack installs on a cluster it creates, and the
label its Prometheus selects ServiceMonitors by (the tracking server's ServiceMonitor carries it).

Chart facts (prometheus-community/helm-charts, ``charts/kube-prometheus-stack``):

- ``templates/prometheus/prometheus.yaml``: ``serviceMonitorSelector`` is the configured one if
  set, else ``matchLabels: {release: <release name>}`` while ``serviceMonitorSelectorNilUsesHelmValues``
  is true (the default); ``serviceMonitorNamespaceSelector`` defaults to ``{}`` (every namespace).
  We set the selector explicitly, from :func:`service_monitor_labels`, so the two ends are rendered
  from one function instead of relying on the release name matching.
- The Prometheus pods the operator runs carry ``app.kubernetes.io/name: prometheus`` (the same
  template's anti-affinity selects them by it): ``monitoring.scraperPodLabels``' default, which
  the tracking server's NetworkPolicy admits.
- Grafana is a dependency enabled by default with the well-known admin password ``prom-operator``
  in ``values.yaml``: it is turned off (dashboards: docs/observability.md).
"""

from __future__ import annotations

from typing import Any

from rendering.node_capacity import Requests, SystemPod, cpu_millis, memory_mib

RELEASE_NAME = "kube-prometheus-stack"

PROMETHEUS_REQUESTS = {"cpu": "500m", "memory": "2Gi"}
OPERATOR_REQUESTS = {"cpu": "100m", "memory": "128Mi"}
KUBE_STATE_METRICS_REQUESTS = {"cpu": "50m", "memory": "128Mi"}
NODE_EXPORTER_REQUESTS = {"cpu": "20m", "memory": "32Mi"}
"""Requests set explicitly (the chart sets none), so the node capacity check can count them."""


def service_monitor_labels(release_name: str = RELEASE_NAME) -> dict[str, str]:
    """The labels the release's Prometheus selects ServiceMonitors by (the chart's convention)."""
    return {"release": release_name}


def kube_prometheus_stack_values(retention_days: int = 15) -> dict[str, Any]:
    return {
        "grafana": {"enabled": False},  # its chart default admin password is public
        # Alarms go to CloudWatch and SNS (components/monitoring.py); no Alertmanager receivers here.
        "alertmanager": {"enabled": False},
        "prometheusOperator": {"resources": {"requests": dict(OPERATOR_REQUESTS)}},
        "kube-state-metrics": {"resources": {"requests": dict(KUBE_STATE_METRICS_REQUESTS)}},
        "prometheus-node-exporter": {"resources": {"requests": dict(NODE_EXPORTER_REQUESTS)}},
        "prometheus": {
            "prometheusSpec": {
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "serviceMonitorSelector": {"matchLabels": service_monitor_labels()},
                "serviceMonitorNamespaceSelector": {},
                "retention": f"{retention_days}d",
                "resources": {"requests": dict(PROMETHEUS_REQUESTS)},
            }
        },
    }


def _requests(wanted: dict[str, str]) -> Requests:
    return Requests(cpu_millis(wanted["cpu"]), memory_mib(wanted["memory"]))


def prometheus_stack_pods() -> tuple[SystemPod, ...]:
    """The release's pods as the node capacity check counts them (the requests set above)."""
    rendered = "rendered (rendering.prometheus_stack)"
    return (
        SystemPod("prometheus", _requests(PROMETHEUS_REQUESTS), 1, rendered),
        SystemPod("prometheus-operator", _requests(OPERATOR_REQUESTS), 1, rendered),
        SystemPod("kube-state-metrics", _requests(KUBE_STATE_METRICS_REQUESTS), 1, rendered),
        SystemPod("node-exporter", _requests(NODE_EXPORTER_REQUESTS), None, rendered),
    )

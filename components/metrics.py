"""How Prometheus finds the tracking server's metrics: a headless Service over the pods' two
metrics ports and, where the cluster has the Prometheus Operator CRDs (stack config), a
ServiceMonitor that scrapes them — MLflow's ``/metrics`` with basic-auth from a Secret, the
PgBouncer exporter without (it is reachable only from the scraper's pods: NetworkPolicy in
``components.tracking_server``). Without the operator, docs/observability.md has the equivalent
scrape config.

The scrape login is the admin: MLflow 3.17's basic-auth has no permission rule for ``/metrics``
and fails closed for every non-admin user (``MLFLOW_BASIC_AUTH_FAIL_CLOSED``, default true;
``tests/ops/test_observability.py`` proves the 403), so a least-privilege scrape user does not
exist in MLflow. The Secret lives in the server's namespace, readable by the operator only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from components.pod_toolkit import api_object
from rendering.eks_pod import APP, PGBOUNCER_METRICS_PORT, PROXY_PORT
from stackconfig.schema import MonitoringConfig

SCRAPE_SECRET = f"{APP}-metrics-scrape"
METRICS_SERVICE = f"{APP}-metrics"


class TrackingServerMetricsArgs(TypedDict):
    settings: MonitoringConfig
    namespace: str
    server_labels: Mapping[str, str]
    """The tracking server pods' labels (the Service's selector)."""
    admin_username: pulumi.Input[str]
    admin_password: pulumi.Input[str]
    service_monitor_crds: NotRequired[pulumi.Resource | None]
    """What installs the ServiceMonitor CRD on a created cluster (the kube-prometheus-stack
    release): the ServiceMonitor itself waits for it (a component's depends_on is not its children's)."""
    service_monitor_labels: NotRequired[Mapping[str, str]]
    """The labels the cluster's Prometheus selects ServiceMonitors by (``rendering.prometheus_stack``
    on a created cluster, ``monitoring.serviceMonitorLabels`` on a reused one)."""


def service_monitor_spec(
    namespace: str, selector: Mapping[str, str], interval_seconds: int, scrape_secret: str
) -> dict[str, Any]:
    """The ServiceMonitor's spec (monitoring.coreos.com/v1)."""
    interval = f"{interval_seconds}s"
    return {
        "selector": {"matchLabels": dict(selector)},
        "namespaceSelector": {"matchNames": [namespace]},
        "endpoints": [
            {
                "port": "http-metrics",
                "path": "/metrics",
                "scheme": "http",
                "interval": interval,
                "basicAuth": {
                    "username": {"name": scrape_secret, "key": "username"},
                    "password": {"name": scrape_secret, "key": "password"},
                },
            },
            {"port": "pgbouncer-metrics", "path": "/metrics", "scheme": "http", "interval": interval},
        ],
    }


class TrackingServerMetrics(pulumi.ComponentResource):
    service_monitor: k8s.apiextensions.CustomResource | None

    def __init__(self, name: str, args: TrackingServerMetricsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:TrackingServerMetrics", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        settings, ns = args["settings"], args["namespace"]
        labels = {
            "app.kubernetes.io/name": APP,
            "app.kubernetes.io/part-of": "mlflow-platform",
            "app.kubernetes.io/component": "metrics",
        }
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": METRICS_SERVICE, "namespace": ns, "labels": labels},
            spec=api_object(
                {
                    # Headless: Prometheus scrapes every pod, not one behind a virtual IP.
                    "clusterIP": "None",
                    "selector": dict(args["server_labels"]),
                    "ports": [
                        {"name": "http-metrics", "port": PROXY_PORT, "targetPort": "proxy", "protocol": "TCP"},
                        {
                            "name": "pgbouncer-metrics",
                            "port": PGBOUNCER_METRICS_PORT,
                            "targetPort": "pgb-metrics",
                            "protocol": "TCP",
                        },
                    ],
                }
            ),
            opts=child,
        )
        self.service_monitor = None
        self.scrape_secret = None
        if settings.prometheus_operator:
            self.scrape_secret = k8s.core.v1.Secret(
                f"{name}-scrape-secret",
                metadata={"name": SCRAPE_SECRET, "namespace": ns, "labels": labels},
                type="kubernetes.io/basic-auth",
                string_data={
                    "username": args["admin_username"],
                    "password": pulumi.Output.secret(args["admin_password"]),
                },
                opts=child,
            )
            self.service_monitor = k8s.apiextensions.CustomResource(
                f"{name}-service-monitor",
                api_version="monitoring.coreos.com/v1",
                kind="ServiceMonitor",
                metadata={"name": APP, "namespace": ns, "labels": {**labels, **args.get("service_monitor_labels", {})}},
                spec=service_monitor_spec(ns, labels, settings.scrape_interval_seconds, SCRAPE_SECRET),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[
                        self.scrape_secret,
                        self.service,
                        *filter(None, [args.get("service_monitor_crds")]),
                    ],
                ),
            )
        self.register_outputs({"serviceName": METRICS_SERVICE})

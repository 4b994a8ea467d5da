"""The cluster add-ons a real cluster needs (issue 17, finding 6), on the inputs Kubernetes and AWS
would receive: the Prometheus Operator before the ServiceMonitor, selected by the label its
Prometheus expects."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from components.cluster_monitoring import KUBE_PROMETHEUS_STACK
from rendering.prometheus_stack import RELEASE_NAME, kube_prometheus_stack_values, service_monitor_labels
from stackconfig import ConfigError, load_stack_config, load_stack_file
from tests.pulumi_harness import ROOT, RecordingMocks, captured_program, reused_values

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"


def _run(stack: str, mode: str = "create") -> RecordingMocks:
    return captured_program(stack, mode)[0]


def _release(mocks: RecordingMocks, chart: str) -> dict[str, Any]:
    (release,) = [r.inputs for r in mocks.of_type(RELEASE) if r.inputs["chart"] == chart]
    return release


# --- Prometheus Operator -------------------------------------------------------------------


def test_created_cluster_gets_kube_prometheus_stack_before_the_service_monitor():
    mocks = _run("prod")
    release = _release(mocks, "kube-prometheus-stack")
    assert release["name"] == RELEASE_NAME
    assert release["version"] == KUBE_PROMETHEUS_STACK.version == "67.8.0"
    assert release["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert release["namespace"] == "monitoring"  # server.monitoringNamespace: the NetworkPolicy's source
    assert release["values"] == kube_prometheus_stack_values()
    # The CRD must exist before the ServiceMonitor ("no matches for kind ServiceMonitor").
    monitor = mocks.one(SERVICE_MONITOR)
    assert any(
        u.endswith("::mlflow-prod-cluster-monitoring-kube-prometheus-stack") for u in mocks.dependencies[monitor.name]
    )


def test_service_monitor_carries_the_label_the_releases_prometheus_selects():
    mocks = _run("prod")
    spec = _release(mocks, "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]
    selector = spec["serviceMonitorSelector"]["matchLabels"]
    assert selector == service_monitor_labels() == {"release": "kube-prometheus-stack"}
    labels = mocks.one(SERVICE_MONITOR).inputs["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert spec["serviceMonitorNamespaceSelector"] == {}  # the monitor lives in the server's namespace


def test_grafana_with_its_public_default_password_is_not_installed():
    values = _release(_run("prod"), "kube-prometheus-stack")["values"]
    assert values["grafana"] == {"enabled": False}


def test_operator_prometheus_pods_are_the_ones_the_network_policy_admits():
    """The operator labels Prometheus pods app.kubernetes.io/name=prometheus; the NetworkPolicy
    admits monitoring.scraperPodLabels from server.monitoringNamespace."""
    mocks = _run("prod")
    policy = next(
        r.inputs
        for r in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.name.endswith("-server-network-policy")
    )
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    } in peers


def test_no_operator_is_installed_where_the_stack_does_not_want_one():
    assert [r.inputs["chart"] for r in _run("dev").of_type(RELEASE)] == ["ingress-nginx", "cert-manager"]
    assert _run("dev").of_type(SERVICE_MONITOR) == []


def test_reused_cluster_takes_the_selector_from_config():
    mocks = _run("prod", "reuse")
    assert mocks.of_type(RELEASE) == []
    labels = mocks.one(SERVICE_MONITOR).inputs["metadata"]["labels"]
    assert labels["prometheus"] == "platform"  # tests/pulumi_harness.py REUSED["prod"]


def test_reused_cluster_with_the_operator_requires_the_selector():
    values = reused_values("prod", load_stack_file(ROOT / "Pulumi.prod.yaml"))
    values["monitoring"].pop("serviceMonitorLabels")
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:monitoring.serviceMonitorLabels"]


def test_created_cluster_refuses_a_configured_selector():
    values = copy.deepcopy(load_stack_file(ROOT / "Pulumi.prod.yaml"))
    values["monitoring"]["serviceMonitorLabels"] = {"release": "other"}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:monitoring.serviceMonitorLabels"]

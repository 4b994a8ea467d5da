"""Parsing and cross-checks of the settings that shape the cluster add-ons (issue 17, finding 6):
the ServiceMonitor selector of a reused cluster's Prometheus.

Kept out of ``load.py`` (already long); ``load.py`` calls these with its ``_Section`` reader and
problem list, so problems are reported the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from .errors import MISSING, ConfigProblem
from .schema import StackConfig

if TYPE_CHECKING:
    from .load import _Section


def service_monitor_labels(section: _Section) -> dict[str, str]:
    """``monitoring.serviceMonitorLabels``: the labels a reused cluster's Prometheus selects
    ServiceMonitors by (its ``serviceMonitorSelector.matchLabels``)."""
    from .load import _LABEL_KEY, _LABEL_VALUE  # late: load imports this module

    expected = (
        "an object of the label keys and values your Prometheus's serviceMonitorSelector matches, "
        "e.g. {release: kube-prometheus-stack}"
    )
    found, labels = section._get("serviceMonitorLabels", {}, False, expected)
    if not found:
        return {}
    if (
        not isinstance(labels, Mapping)
        or not labels
        or not all(
            isinstance(k, str) and _LABEL_KEY.match(k) and isinstance(v, str) and _LABEL_VALUE.match(v)
            for k, v in labels.items()
        )
    ):
        section.problem("serviceMonitorLabels", labels, expected)
        return {}
    return {str(k): str(v) for k, v in labels.items()}


def check(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """Create mode installs kube-prometheus-stack and renders the selector; reuse mode must name it."""
    from .load import PROJECT  # late: load imports this module

    monitoring = config.monitoring
    key = f"{PROJECT}:monitoring.serviceMonitorLabels"
    if config.cluster.creates:
        if monitoring.service_monitor_labels:
            problems.append(
                ConfigProblem(
                    key,
                    monitoring.service_monitor_labels,
                    f"no value with {PROJECT}:cluster.mode 'create' (the stack installs kube-prometheus-stack and "
                    "renders its ServiceMonitor selector)",
                )
            )
    elif monitoring.prometheus_operator and not monitoring.service_monitor_labels:
        problems.append(
            ConfigProblem(
                key,
                MISSING,
                f"the labels your Prometheus's serviceMonitorSelector matches, when {PROJECT}:monitoring."
                f"prometheusOperator is true and {PROJECT}:cluster.mode is 'reuse' (without them Prometheus "
                "ignores the tracking server's ServiceMonitor)",
            )
        )

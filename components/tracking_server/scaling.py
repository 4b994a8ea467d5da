"""How many server pods run: the PodDisruptionBudget (with more than one replica) and the CPU
HorizontalPodAutoscaler (when ``server.maxReplicas`` exceeds ``server.replicas``)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.pod_toolkit import api_object
from rendering.capacity import HPA_TARGET_CPU_UTILISATION_PERCENT
from rendering.eks_pod import APP
from stackconfig.schema import ServerConfig

from .common import SERVER_LABELS


def disruption_budget(
    name: str, settings: ServerConfig, opts: pulumi.ResourceOptions
) -> k8s.policy.v1.PodDisruptionBudget | None:
    """One pod down at a time during node drains; none with a single replica (it would block
    every drain)."""
    if settings.replicas <= 1:
        return None
    return k8s.policy.v1.PodDisruptionBudget(
        f"{name}-pdb",
        metadata={"name": APP, "namespace": settings.namespace, "labels": SERVER_LABELS},
        spec=api_object(
            {
                "maxUnavailable": 1,
                "selector": {"matchLabels": SERVER_LABELS},
                "unhealthyPodEvictionPolicy": "AlwaysAllow",
            }
        ),
        opts=opts,
    )


def autoscaler(
    name: str, settings: ServerConfig, opts: pulumi.ResourceOptions
) -> k8s.autoscaling.v2.HorizontalPodAutoscaler | None:
    if not has_autoscaler(settings):
        return None
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        f"{name}-hpa",
        metadata={"name": APP, "namespace": settings.namespace, "labels": SERVER_LABELS},
        spec=api_object(
            {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                "minReplicas": settings.replicas,
                "maxReplicas": settings.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": HPA_TARGET_CPU_UTILISATION_PERCENT},
                        },
                    }
                ],
                # Scale down slowly: long artifact transfers should not be cut by churn.
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            }
        ),
        opts=opts,
    )


def has_autoscaler(settings: ServerConfig) -> bool:
    """Whether the HPA owns the Deployment's replica count (the Deployment then ignores it as drift)."""
    return settings.max_replicas > settings.replicas

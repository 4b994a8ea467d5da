"""The cluster autoscaler's IAM policy and Helm values (``components.cluster_scaling``).

Sources: kubernetes/autoscaler ``cluster-autoscaler/cloudprovider/aws/README.md`` ("IAM Policy":
the actions; "Auto-Discovery Setup": ``--node-group-auto-discovery`` on the tag keys
``k8s.io/cluster-autoscaler/enabled`` and ``k8s.io/cluster-autoscaler/<cluster-name>``, which EKS
puts on a managed node group's Auto Scaling group), and the chart's ``values.yaml``
(``autoDiscovery.clusterName``, ``awsRegion``, ``rbac.serviceAccount``, ``image.tag``).
"""

from __future__ import annotations

from typing import Any

from rendering.node_capacity import Requests

SERVICE_ACCOUNT = ("kube-system", "cluster-autoscaler")
REQUESTS = Requests(100, 600)
"""As the upstream example manifests request (cluster-autoscaler-autodiscover.yaml)."""

DISCOVERY_ACTIONS = (
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeAutoScalingInstances",
    "autoscaling:DescribeLaunchConfigurations",
    "autoscaling:DescribeScalingActivities",
    "autoscaling:DescribeTags",
    "ec2:DescribeImages",
    "ec2:DescribeInstanceTypes",
    "ec2:DescribeLaunchTemplateVersions",
    "ec2:GetInstanceTypesFromInstanceRequirements",
)
"""Read-only, and without resource-level scoping (``Resource: *``)."""
SCALING_ACTIONS = ("autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup")


def image_tag(kubernetes_version: str) -> str:
    """The autoscaler release matching the cluster's minor version (the project releases
    ``1.N.0`` with Kubernetes ``1.N`` and supports only its own minor)."""
    return f"v{kubernetes_version}.0"


def cluster_autoscaler_policy(cluster_name: str, partition: str, region: str, account_id: str) -> dict[str, Any]:
    """Discovery (read-only), this cluster's node groups, and scaling only of this account's Auto
    Scaling groups tagged as this cluster's (``aws:ResourceTag/k8s.io/cluster-autoscaler/<cluster>``:
    ``owned``, as EKS tags a managed node group's group)."""
    groups = f"arn:{partition}:autoscaling:{region}:{account_id}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Discovery", "Effect": "Allow", "Action": list(DISCOVERY_ACTIONS), "Resource": "*"},
            {
                "Sid": "ThisClustersNodeGroups",
                "Effect": "Allow",
                "Action": "eks:DescribeNodegroup",
                "Resource": f"arn:{partition}:eks:{region}:{account_id}:nodegroup/{cluster_name}/*/*",
            },
            {
                "Sid": "ScaleThisClustersNodeGroups",
                "Effect": "Allow",
                "Action": list(SCALING_ACTIONS),
                "Resource": f"{groups}:autoScalingGroup:*:autoScalingGroupName/*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}},
            },
        ],
    }


def cluster_autoscaler_values(cluster_name: str, region: str, kubernetes_version: str, role_arn: Any) -> dict[str, Any]:
    service_account = SERVICE_ACCOUNT[1]
    return {
        "autoDiscovery": {"clusterName": cluster_name},
        "awsRegion": region,
        "image": {"tag": image_tag(kubernetes_version)},
        "rbac": {
            "serviceAccount": {
                "create": True,
                "name": service_account,
                "annotations": {"eks.amazonaws.com/role-arn": role_arn},
            }
        },
        "resources": {"requests": {"cpu": f"{REQUESTS.cpu_millis}m", "memory": f"{REQUESTS.memory_mib}Mi"}},
        "extraArgs": {"balance-similar-node-groups": True, "expander": "least-waste"},
    }

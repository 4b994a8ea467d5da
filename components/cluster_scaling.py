"""The node autoscaler of a cluster this stack creates: cluster-autoscaler, pinned, with its own
IRSA role. With metrics-server (an EKS add-on, ``components.cluster``) the HPA can scale the
tracking server and the node group can grow to ``nodeGroup.maxSize`` to hold the new pods
(``rendering.node_capacity`` checks that it can).

cluster-autoscaler rather than Karpenter: it drives the managed node group the stack already has
(its ``minSize``/``maxSize`` stay the bounds), needs no extra node IAM or interruption queue.
"""

from __future__ import annotations

import json
from typing import TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster_addons import Chart
from components.irsa import ClusterOidc, irsa_role
from rendering.autoscaler import SERVICE_ACCOUNT, cluster_autoscaler_policy, cluster_autoscaler_values

CLUSTER_AUTOSCALER = Chart("cluster-autoscaler", "9.38.0", "https://kubernetes.github.io/autoscaler")
"""The newest chart whose Chart.yaml was readable here (kubernetes/autoscaler); the image follows
the cluster's minor version (``rendering.autoscaler.image_tag``). Bump deliberately."""


class ClusterAutoscalingArgs(TypedDict):
    cluster_name: pulumi.Input[str]
    kubernetes_version: str
    region: str
    oidc_provider_arn: pulumi.Input[str]
    issuer_host_path: pulumi.Input[str]
    tags: dict[str, str]


class ClusterAutoscaling(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterAutoscalingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:ClusterAutoscaling", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = SERVICE_ACCOUNT[0]
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        account = aws.get_caller_identity_output(opts=invoke).account_id
        irsa = irsa_role(
            f"{name}-role",
            ClusterOidc(args["oidc_provider_arn"], args["issuer_host_path"]),
            SERVICE_ACCOUNT,
            child,
            tags=args["tags"],
            inline_policy=pulumi.Output.all(args["cluster_name"], partition, account).apply(
                lambda values: json.dumps(cluster_autoscaler_policy(values[0], values[1], args["region"], values[2]))
            ),
        )
        self.role = irsa.role
        self.release = k8s.helm.v3.Release(
            f"{name}-cluster-autoscaler",
            name=CLUSTER_AUTOSCALER.name,
            chart=CLUSTER_AUTOSCALER.name,
            version=CLUSTER_AUTOSCALER.version,
            repository_opts={"repo": CLUSTER_AUTOSCALER.repository},
            namespace=namespace,
            values=pulumi.Output.all(args["cluster_name"], self.role.arn).apply(
                lambda values: cluster_autoscaler_values(
                    values[0], args["region"], args["kubernetes_version"], values[1]
                )
            ),
            atomic=True,
            cleanup_on_fail=True,
            max_history=5,
            opts=pulumi.ResourceOptions(parent=self, depends_on=irsa.grants),
        )
        self.register_outputs({"roleArn": self.role.arn, "release": self.release.name})

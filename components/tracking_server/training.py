"""Where training jobs run: their namespaces, an IRSA ServiceAccount per configured account, and
a ConfigMap with the client settings (no credentials: those are per user, from a Secret the team
creates; see docs/training-job.yaml)."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as k8s

from rendering.client import TRAINING_CLIENT_RETRY
from stackconfig.schema import ServerConfig, ServiceAccountRef

from .common import LABELS


def training_namespaces(accounts: Sequence[ServiceAccountRef]) -> list[str]:
    """The namespaces the training service accounts live in, each once, sorted."""
    return sorted({account.namespace for account in accounts})


def training_service_accounts(
    name: str,
    settings: ServerConfig,
    *,
    accounts: Sequence[ServiceAccountRef],
    role_arn: pulumi.Input[str],
    region: str,
    parent: pulumi.Resource,
) -> list[k8s.core.v1.ServiceAccount]:
    """One restricted namespace per namespace of ``accounts``, with the client ConfigMap, and
    the ServiceAccounts annotated with the training role (``role_arn``)."""
    created: list[k8s.core.v1.ServiceAccount] = []
    for namespace in training_namespaces(accounts):
        ns = k8s.core.v1.Namespace(
            f"{name}-training-{namespace}",
            metadata={"name": namespace, "labels": {**LABELS, "pod-security.kubernetes.io/enforce": "restricted"}},
            opts=pulumi.ResourceOptions(parent=parent),
        )
        in_ns = pulumi.ResourceOptions(parent=parent, depends_on=[ns])
        k8s.core.v1.ConfigMap(
            f"{name}-training-{namespace}-client",
            metadata={"name": "mlflow-client", "namespace": namespace, "labels": dict(LABELS)},
            data={
                "MLFLOW_TRACKING_URI": f"https://{settings.host}",
                **TRAINING_CLIENT_RETRY.env(),
                "AWS_DEFAULT_REGION": region,
            },
            opts=in_ns,
        )
        for account in accounts:
            if account.namespace != namespace:
                continue
            created.append(
                k8s.core.v1.ServiceAccount(
                    f"{name}-training-{namespace}-{account.name}",
                    metadata={
                        "name": account.name,
                        "namespace": namespace,
                        "labels": dict(LABELS),
                        "annotations": {"eks.amazonaws.com/role-arn": role_arn},
                    },
                    automount_service_account_token=False,
                    opts=in_ns,
                )
            )
    return created

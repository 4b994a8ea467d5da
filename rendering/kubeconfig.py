"""An exec-based kubeconfig for an EKS cluster: the only way the program talks to Kubernetes.

Why exec: the token is minted by ``aws eks get-token`` at each call with the deployer's own
credentials (OIDC role in CI), so no long-lived token is stored in state, and no invoke is
needed at preview time. Never the ambient ``~/.kube/config``.
"""

from __future__ import annotations

from typing import Any


def eks_exec_kubeconfig(
    cluster_name: str, endpoint: str, certificate_authority_data: str, region: str
) -> dict[str, Any]:
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
            "interactiveMode": "Never",
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": endpoint, "certificate-authority-data": certificate_authority_data},
            }
        ],
        "users": [{"name": f"{cluster_name}-deployer", "user": user}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": f"{cluster_name}-deployer"}}],
        "current-context": cluster_name,
    }

"""IRSA as EKS applies it, and the S3/STS stand-ins it talks to.

EKS's pod-identity webhook (github.com/aws/amazon-eks-pod-identity-webhook, README "EKS
Walkthrough": the example pod spec it produces) mutates every pod whose ServiceAccount carries
``eks.amazonaws.com/role-arn``: each container gets ``AWS_ROLE_ARN``,
``AWS_WEB_IDENTITY_TOKEN_FILE``, ``AWS_STS_REGIONAL_ENDPOINTS=regional`` and the region
(``AWS_REGION``/``AWS_DEFAULT_REGION``) unless it sets them itself, and a projected
service-account token (audience ``sts.amazonaws.com``) mounted read-only at
``/var/run/secrets/eks.amazonaws.com/serviceaccount``. The SDK then calls
``AssumeRoleWithWebIdentity`` at the regional STS endpoint and uses the credentials it returns.

Both endpoints are one moto server on the node's service address, with a certificate from the
test CA for the regional names (trusted by the image's CA bundles: a listed deviation). moto
accepts any web-identity token and enforces no IAM policy: the role's permissions are not
proved here (``scripts/check_artifact_store.py`` does that against AWS).
"""

from __future__ import annotations

import copy
import subprocess
import time
from pathlib import Path
from typing import Any

from .images import project_venv
from .network import NODE_SERVICE_IP, Network
from .node import TestCa

ROLE_ARN_ANNOTATION = "eks.amazonaws.com/role-arn"
TOKEN_VOLUME = "aws-iam-token"
TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
TOKEN = b"eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOlsic3RzLmFtYXpvbmF3cy5jb20iXX0.pod-contract"
"""A projected token's shape (JWT); moto does not verify it."""


def irsa_mutation(pod: dict[str, Any], service_account: dict[str, Any], region: str) -> dict[str, Any]:
    """The pod as the webhook admits it (unchanged when the account has no role annotation)."""
    role_arn = service_account.get("metadata", {}).get("annotations", {}).get(ROLE_ARN_ANNOTATION)
    if not role_arn:
        return pod
    pod = copy.deepcopy(pod)
    added = {
        "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ROLE_ARN": role_arn,
        "AWS_WEB_IDENTITY_TOKEN_FILE": f"{TOKEN_DIR}/token",
    }
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        present = {e["name"] for e in container.get("env", [])}
        container["env"] = [
            *container.get("env", []),
            *({"name": k, "value": v} for k, v in added.items() if k not in present),
        ]
        container["volumeMounts"] = [
            *container.get("volumeMounts", []),
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ]
    pod["volumes"] = [
        *pod.get("volumes", []),
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "sts.amazonaws.com",
                            "expirationSeconds": 86400,
                            "path": "token",
                        }
                    }
                ]
            },
        },
    ]
    return pod


def endpoint_names(region: str, buckets: list[str]) -> list[str]:
    """The names the SDK resolves: regional STS, S3 (global and regional, virtual-hosted)."""
    names = [f"sts.{region}.amazonaws.com", "s3.amazonaws.com", f"s3.{region}.amazonaws.com"]
    for bucket in buckets:
        names += [f"{bucket}.s3.amazonaws.com", f"{bucket}.s3.{region}.amazonaws.com"]
    return names


def start_aws(network: Network, directory: Path, ca: TestCa, names: list[str]) -> subprocess.Popen[bytes]:
    """moto (S3 and STS) on the node's service address, port 443, TLS for ``names``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = ca.leaf(directory / "tls", [*names, NODE_SERVICE_IP])
    log = (directory / "moto.log").open("ab")
    argv = [str(project_venv() / "bin" / "python"), "-m", "moto.server", "-H", NODE_SERVICE_IP, "-p", "443"]
    process = subprocess.Popen(
        [*network.exec_argv(network.node), *argv, "-c", str(cert), "-k", str(key)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=directory,
    )
    deadline = time.monotonic() + 60
    while True:
        probe = [*network.exec_argv(network.node), "bash", "-c", f"exec 3<>/dev/tcp/{NODE_SERVICE_IP}/443"]
        assert process.poll() is None, (directory / "moto.log").read_text()[-2000:]
        if subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            time.sleep(0.5)
            assert process.poll() is None, (directory / "moto.log").read_text()[-2000:]
            return process
        assert time.monotonic() < deadline, "moto did not start"
        time.sleep(0.5)

"""Kubernetes objects captured from a mocked run, as plain manifests, and the offline checks
that run on them: the Kubernetes JSON schema (strict) and checkov's Kubernetes framework."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from tests.pulumi_harness import ROOT, RecordingMocks

KUBERNETES_VERSION = "1.33.0"
"""Native sidecars (init containers with restartPolicy Always) are GA from 1.33."""
CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"


def _integers(value: Any) -> Any:
    """Mock inputs carry every number as a float (``replicas: 2.0``); the provider sends the
    integers the program wrote, and schema and checkov checks need them as such."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integers(item) for item in value]
    return value


def is_builtin_object(typ: str) -> bool:
    """A Kubernetes object of a built-in API group (``kubernetes:apps/v1:Deployment``,
    ``kubernetes:networking.k8s.io/v1:Ingress``): what the JSON schema and checkov know. Helm
    releases (``kubernetes:helm.sh/v3:Release``) and custom resources such as cert-manager's
    ClusterIssuer are not manifests of that schema; tests/cloud/test_cluster.py checks them."""
    if not typ.startswith("kubernetes:"):
        return False
    group = typ.split(":")[1].split("/")[0]
    return "." not in group or group.endswith(".k8s.io")


def manifests(mocks: RecordingMocks) -> list[dict[str, Any]]:
    return [_integers(dict(r.inputs)) for r in mocks.resources if is_builtin_object(r.typ)]


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    try:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{manifest['kind']}/{manifest['metadata']['name']}: {error.message}"]
    return []


def checkov_failures(objects: list[dict[str, Any]], directory: Path) -> tuple[int, list[str]]:
    """(passed count, failed check descriptions) of checkov on the manifests."""
    target = directory / "manifests.yaml"
    target.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    result = subprocess.run(
        [str(CHECKOV), "-f", str(target), "--framework", "kubernetes", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(result.stdout)
    if isinstance(report, list):
        report = report[0]
    results = report.get("results", {})
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}" for check in results.get("failed_checks", [])
    ]
    return len(results.get("passed_checks", [])), failed

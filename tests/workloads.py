"""The pods the Pulumi program renders, taken from its recorded objects (never rendered again).

Both stack files run under the mocks with ``rotation.adminPassword: 1`` given as a config
override, so the admin-password Job exists too. Shared by the dependency test
(``tests/cloud/test_workload_dependencies.py``) and the pod-contract suite (``tests/pod``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from dataclasses import dataclass
from typing import Any

from stackconfig import PROJECT
from tests.k8s_manifests import _integers
from tests.pulumi_harness import Recorded, RecordingMocks, run_program, stack_file_config

STACKS = ("dev", "prod")
ROTATION_OVERRIDE = {"adminPassword": 1}
"""Config override that makes the program render the admin-password Job."""
WORKLOAD_KINDS = ("Deployment", "Job", "CronJob")


@functools.cache
def program(stack: str) -> RecordingMocks:
    """One mocked run of ``infra/__main__.py`` for the stack file plus the rotation override."""
    config = stack_file_config(stack)
    rotation = json.loads(config.get(f"{PROJECT}:rotation", "{}"))
    config[f"{PROJECT}:rotation"] = json.dumps({**rotation, **ROTATION_OVERRIDE})
    try:
        previous: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
    except RuntimeError:  # between tests (tests/conftest.py leaves none set)
        previous = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        mocks, _, _ = run_program(stack, config)
    finally:
        asyncio.set_event_loop(previous)
        loop.close()
    return mocks


def kind_of(record: Recorded) -> str:
    return record.typ.rsplit(":", 1)[1]


def manifest(record: Recorded) -> dict[str, Any]:
    """The object as the API server would receive it (integers as integers)."""
    return _integers(dict(record.inputs))


@dataclass(frozen=True)
class Workload:
    """A pod template and the object that owns it."""

    record: Recorded
    kind: str
    name: str
    namespace: str
    pod: dict[str, Any]
    """The pod spec (``spec.template.spec``; a CronJob's job template's)."""
    labels: dict[str, str]


def workloads(mocks: RecordingMocks) -> list[Workload]:
    found = []
    for record in mocks.resources:
        kind = kind_of(record)
        if not record.typ.startswith("kubernetes:") or kind not in WORKLOAD_KINDS:
            continue
        obj = manifest(record)
        spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
        template = spec["template"]
        found.append(
            Workload(
                record=record,
                kind=kind,
                name=obj["metadata"]["name"],
                namespace=obj["metadata"]["namespace"],
                pod=template["spec"],
                labels=dict(template.get("metadata", {}).get("labels", {})),
            )
        )
    return found


def namespaced(mocks: RecordingMocks, kind: str, namespace: str, name: str) -> Recorded:
    matches = [
        r
        for r in mocks.resources
        if r.typ.startswith("kubernetes:")
        and kind_of(r) == kind
        and r.inputs.get("metadata", {}).get("name") == name
        and r.inputs.get("metadata", {}).get("namespace") == namespace
    ]
    assert len(matches) == 1, f"{kind} {namespace}/{name}: {len(matches)} rendered"
    return matches[0]


def referenced_objects(workload: Workload) -> list[tuple[str, str]]:
    """(kind, name) of every ServiceAccount, Secret and ConfigMap the pod mounts or reads:
    its service account, volumes (secret, configMap, projected sources) and env/envFrom refs."""
    pod = workload.pod
    refs: set[tuple[str, str]] = {("ServiceAccount", pod.get("serviceAccountName", "default"))}
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                refs.add(("Secret", source["secret"]["name"]))
            if "configMap" in source:
                refs.add(("ConfigMap", source["configMap"]["name"]))
    for container in [*pod.get("initContainers", []), *pod["containers"]]:
        for env in container.get("env", []):
            source = env.get("valueFrom", {})
            if "secretKeyRef" in source:
                refs.add(("Secret", source["secretKeyRef"]["name"]))
            if "configMapKeyRef" in source:
                refs.add(("ConfigMap", source["configMapKeyRef"]["name"]))
        for env_from in container.get("envFrom", []):
            if "secretRef" in env_from:
                refs.add(("Secret", env_from["secretRef"]["name"]))
            if "configMapRef" in env_from:
                refs.add(("ConfigMap", env_from["configMapRef"]["name"]))
    return sorted(refs)

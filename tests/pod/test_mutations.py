"""The suite fails when the pod is wrong: each case changes one thing in a copy of the rendered
Deployment (or its ConfigMap) and the executor must stop at the container and reason the
kubelet would. Probe thresholds are shortened in the copies (the issue allows it) so each
case waits seconds, not the rendered failureThreshold x periodSeconds.

The unchanged copy passes the same steps first, so a failure is the mutation's doing. None of
these steps reaches the database: they stop at the PgBouncer sidecar, before MLflow starts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workloads import STACKS

from .harness import Cluster, cluster
from .kubelet import Objects, PodFailure

pytestmark = pytest.mark.usefixtures("as_root")


@pytest.fixture(scope="module", params=STACKS)
def node(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    with cluster(request.param, database=False) as instance:
        yield instance


def _sidecar(pod: dict[str, Any]) -> dict[str, Any]:
    (sidecar,) = [c for c in pod["initContainers"] if c.get("restartPolicy") == "Always"]
    return sidecar


def _quick(pod: dict[str, Any]) -> dict[str, Any]:
    pod = copy.deepcopy(pod)
    for container in [*pod["initContainers"], *pod["containers"]]:
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            if kind in container:
                container[kind].update(periodSeconds=1, failureThreshold=3)
    return pod


def _run_init(node: Cluster, pod: dict[str, Any], objects: Objects | None = None) -> list[str]:
    """Runs the init containers (sidecar gate included); returns who was started."""
    run = node.pod(node.workload("Deployment", "mlflow"), pod=pod, objects=objects)
    try:
        run.run_init_containers(timeout_s=60)
        return [r.name for r in run.running]
    finally:
        run.stop()


def test_the_unchanged_pod_passes_the_sidecar_gate(node: Cluster):
    pod = _quick(node.workload("Deployment", "mlflow").pod)
    assert _run_init(node, pod) == [_sidecar(pod)["name"]]


def test_pgbouncer_on_loopback_only_fails_its_startup_probe(node: Cluster):
    objects = node.objects()
    config_maps = {name: dict(files) for name, files in objects.config_maps.items()}
    ini = config_maps["mlflow-pgbouncer"]["pgbouncer.ini"].decode()
    assert "listen_addr = 0.0.0.0" in ini
    config_maps["mlflow-pgbouncer"]["pgbouncer.ini"] = ini.replace(
        "listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1"
    ).encode()
    pod = _quick(node.workload("Deployment", "mlflow").pod)
    with pytest.raises(PodFailure, match=r"container pgbouncer: startupProbe failed .*Connection refused"):
        _run_init(node, pod, Objects(objects.secrets, config_maps))


def test_a_probe_on_a_port_nobody_serves_fails(node: Cluster):
    pod = _quick(node.workload("Deployment", "mlflow").pod)
    _sidecar(pod)["startupProbe"]["tcpSocket"]["port"] = 6999
    with pytest.raises(PodFailure, match=r"container pgbouncer: startupProbe failed .*:6999: .*refused"):
        _run_init(node, pod)


def test_a_mounted_file_at_another_path_than_the_command_reads_fails(node: Cluster):
    pod = _quick(node.workload("Deployment", "mlflow").pod)
    sidecar = _sidecar(pod)
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "pgbouncer-config")
    mount["mountPath"] = mount["mountPath"] + "-moved"
    with pytest.raises(PodFailure, match=r"container pgbouncer: startupProbe failed .*process exited"):
        _run_init(node, pod)

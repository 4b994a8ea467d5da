"""One stack's pods, from the Pulumi program's recorded objects, on a node of their own.

:class:`Cluster` holds what a run needs: the recorded objects, the image table, the network
namespaces, the test CA and PostgreSQL playing RDS. Tests mutate nothing recorded; a mutation
case passes a changed copy of a pod spec or of a rendered object.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certifi

from stackconfig import PROJECT
from tests.pulumi_harness import stack_file_config
from tests.workloads import Workload, kind_of, manifest, program, workloads

from .aws import TOKEN, TOKEN_VOLUME, endpoint_names, irsa_mutation, start_aws
from .images import Image, image_table, project_venv
from .kubelet import Objects, PodRun
from .network import INGRESS_IP, NODE_SERVICE_IP, Network
from .node import Database, TestCa, make_ca, start_database, start_ingress

REGION = "us-east-1"


def _objects(stack: str, namespace: str) -> Objects:
    secrets: dict[str, dict[str, bytes]] = {}
    config_maps: dict[str, dict[str, bytes]] = {}
    for record in program(stack).resources:
        if not record.typ.startswith("kubernetes:core/v1:"):
            continue
        obj = manifest(record)
        if obj.get("metadata", {}).get("namespace") != namespace:
            continue
        if kind_of(record) == "Secret":
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
            data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
            secrets[obj["metadata"]["name"]] = data
        elif kind_of(record) == "ConfigMap":
            config_maps[obj["metadata"]["name"]] = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    return Objects(secrets, config_maps)


def rendered(stack: str, kind: str, name: str | None = None) -> list[dict[str, Any]]:
    found = [manifest(r) for r in program(stack).resources if r.typ.startswith("kubernetes:") and kind_of(r) == kind]
    return [o for o in found if name is None or o["metadata"]["name"] == name]


def host_paths() -> list[Path]:
    """This machine's paths every container needs besides ``rootfs.BOUND_HOST_DIRS``: the base
    Python the virtualenv runs on, the project tree (the image's files are bound from it) and the
    virtualenv (console scripts start ``<venv>/bin/python`` by absolute path). Nested paths are
    covered by their parent."""
    project = Path(__file__).resolve().parents[2]
    paths = sorted({Path(sys.base_prefix).resolve(), project, project_venv()})
    return [p for p in paths if not any(p != q and p.is_relative_to(q) for q in paths)]


@dataclass
class Cluster:
    stack: str
    directory: Path
    network: Network
    ca: TestCa
    images: dict[str, Image]
    database: Database | None = None
    runs: list[PodRun] = field(default_factory=list)
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def server_config(self) -> dict[str, Any]:
        return json.loads(stack_file_config(self.stack)[f"{PROJECT}:server"])

    def rds(self) -> dict[str, Any]:
        (record,) = [r for r in program(self.stack).resources if r.typ == "aws:rds/instance:Instance"]
        return record.inputs

    def rds_endpoint(self) -> str:
        """The database host name the program rendered into the pods (the mocks' RDS address)."""
        for workload in workloads(program(self.stack)):
            for config in _objects(self.stack, workload.namespace).config_maps.values():
                for content in config.values():
                    for word in content.decode().split():
                        if word.startswith("host=") and ".rds.amazonaws.com" in word:
                            return word.removeprefix("host=")
        raise AssertionError("no RDS endpoint in the rendered objects")

    def workload(self, kind: str, name_prefix: str) -> Workload:
        (found,) = [w for w in workloads(program(self.stack)) if w.kind == kind and w.name.startswith(name_prefix)]
        return found

    def start_database(self) -> Database:
        rds = self.rds()
        self.database = start_database(
            self.network,
            self.directory / "postgres",
            self.ca,
            self.rds_endpoint(),
            int(rds["port"]),
            rds["username"],
            rds["password"],
        )
        return self.database

    def service_account(self, namespace: str, name: str) -> dict[str, Any]:
        found = [o for o in rendered(self.stack, "ServiceAccount", name) if o["metadata"]["namespace"] == namespace]
        assert len(found) == 1, (namespace, name)
        return found[0]

    def pod(self, workload: Workload, *, pod: dict[str, Any] | None = None, objects: Objects | None = None) -> PodRun:
        """A run of ``workload``'s pod (or of a mutated copy of it) with its own network
        namespace, admitted as EKS admits it (the IRSA webhook's mutation, tests/pod/aws.py)."""
        name = f"{workload.name}"[:20].rstrip("-")
        spec = pod if pod is not None else workload.pod
        account = self.service_account(workload.namespace, spec.get("serviceAccountName", "default"))
        run = PodRun(
            name=name,
            pod=irsa_mutation(spec, account, REGION),
            token_files={TOKEN_VOLUME: {"token": TOKEN}},
            objects=objects or _objects(self.stack, workload.namespace),
            images=self.images,
            network=self.network,
            directory=self.directory / "pods" / f"{len(self.runs)}-{name}",
            extra_host_paths=host_paths(),
        )
        self.runs.append(run)
        run.directory.mkdir(parents=True)
        run.start_network()
        run.prepare_volumes()
        return run

    def objects(self, namespace: str = "mlflow") -> Objects:
        return _objects(self.stack, namespace)

    def artifact_bucket(self) -> str:
        (bucket,) = [
            r
            for r in program(self.stack).resources
            # The artifact bucket itself, not its access-log bucket or prod's replica.
            if r.typ == "aws:s3/bucket:Bucket" and r.name.endswith("-artifacts-bucket")
        ]
        return f"{bucket.name}-7f3a2b"  # the mocks' physical name (tests/pulumi_harness.py)

    def start_aws(self) -> None:
        names = endpoint_names(REGION, [self.artifact_bucket()])
        self.background.append(start_aws(self.network, self.directory / "aws", self.ca, names))

    def ingress(self, upstream: str) -> None:
        host = self.server_config["host"]
        self.background.append(start_ingress(self.network, self.directory / "ingress", self.ca, host, upstream))

    def node_python(self, code: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """The project's Python in the node namespace (a client outside the pod)."""
        argv = [*self.network.exec_argv(self.network.node), str(project_venv() / "bin" / "python"), "-c", code]
        return subprocess.run(
            argv, env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=timeout, check=False
        )

    def close(self) -> None:
        for run in self.runs:
            run.stop()
        for process in self.background:
            if process.poll() is None:
                process.kill()
                process.wait()
        if self.database is not None:
            self.database.stop()
        self.network.close()


def _server_image(stack: str) -> str:
    return json.loads(stack_file_config(stack)[f"{PROJECT}:server"])["image"]


@contextmanager
def cluster(stack: str, *, database: bool = True) -> Iterator[Cluster]:
    """A node with PostgreSQL as the stack's RDS endpoint; everything removed afterwards, also
    when the test fails."""
    directory = Path(tempfile.mkdtemp(prefix=f"mlfp-pod-{os.getpid()}-{stack}-", dir="/tmp"))
    directory.chmod(0o711)  # the containers' users (10001, postgres) traverse it
    ca = make_ca(directory / "ca")
    images = image_table(_server_image(stack), ca.cert, directory)
    server = images[_server_image(stack)]
    # The public host's certificate comes from the test CA: the image trusts it (listed deviation).
    # botocore trusts certifi's bundle, the rest of the image the system's. The virtualenv's
    # console scripts name its interpreter by the machine's path (their shebang), so certifi's
    # bundle is replaced there as well as at /opt/mlflow.
    certifi_bundle = Path(certifi.where()).resolve()
    trusted = {
        "/etc/ssl/certs/ca-certificates.crt": ca.bundle,
        "/opt/mlflow/" + str(certifi_bundle.relative_to(project_venv())): ca.bundle,
        str(certifi_bundle): ca.bundle,
    }
    images[_server_image(stack)] = Image(**{**server.__dict__, "files": {**server.files, **trusted}})
    hosts: dict[str, str] = {}
    network = Network.create(hosts, stack)
    instance = Cluster(stack, directory, network, ca, images)
    try:
        names = [instance.rds_endpoint(), *endpoint_names(REGION, [instance.artifact_bucket()])]
        network.hosts.update({name: NODE_SERVICE_IP for name in names})
        network.hosts[instance.server_config["host"]] = INGRESS_IP
        if database:
            instance.start_database()
        yield instance
    finally:
        instance.close()
        shutil.rmtree(directory, ignore_errors=True)

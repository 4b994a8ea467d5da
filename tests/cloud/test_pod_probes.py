"""Where the kubelet probes, something must listen (issue 16).

The kubelet sends ``tcpSocket`` and ``httpGet`` probes to the pod IP unless the probe sets
``host`` (Kubernetes API, ``TCPSocketAction.host`` / ``HTTPGetAction.host``: "defaults to the pod
IP"). A server bound to loopback inside the pod therefore fails every probe, and a native
sidecar that fails its startupProbe keeps every later container from starting. Asserted on the
objects the program renders for both stack files; ``tests/pod`` runs the same pods for real.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import pytest

from rendering.server_side import TargetParameters
from tests.k8s_manifests import manifests
from tests.pulumi_harness import captured_program

STACKS = ["dev", "prod"]


def _objects(stack: str, kind: str) -> list[dict[str, Any]]:
    mocks, _, _ = captured_program(stack)
    return [m for m in manifests(mocks) if m["kind"] == kind]


def _one(stack: str, kind: str, name: str) -> dict[str, Any]:
    found = [m for m in _objects(stack, kind) if m["metadata"]["name"] == name]
    assert len(found) == 1, [m["metadata"]["name"] for m in _objects(stack, kind)]
    return found[0]


def _reaches_pod_ip(bind: str) -> bool:
    """Whether a server bound to ``bind`` accepts connections to the pod's (non-loopback) IP."""
    if bind in ("*", "", "0.0.0.0", "::"):  # noqa: S104 - compared, not bound
        return True
    return not ipaddress.ip_address(bind).is_loopback


def _bind_addresses(stack: str) -> dict[int, str]:
    """container port -> the address its server binds, read from the rendered files/commands."""
    ini = _one(stack, "ConfigMap", "mlflow-pgbouncer")["data"]["pgbouncer.ini"]
    pgbouncer = dict(line.split(" = ", 1) for line in ini.splitlines() if " = " in line and not line.startswith(";"))
    nginx = _one(stack, "ConfigMap", "mlflow-admission-proxy")["data"]["nginx.conf"]
    (proxy_host, proxy_port) = re.findall(r"^\s*listen\s+([^:\s]+):(\d+)", nginx, re.MULTILINE)[0]
    spec = _one(stack, "Deployment", "mlflow")["spec"]["template"]["spec"]
    mlflow = next(c for c in spec["containers"] if c["name"] == "mlflow")["command"]
    exporter = next(c for c in spec["containers"] if c["name"] == "pgbouncer-exporter")["args"]
    exporter_listen = next(a.split("=", 1)[1] for a in exporter if a.startswith("--web.listen-address="))
    return {
        int(pgbouncer["listen_port"]): pgbouncer["listen_addr"],
        int(mlflow[mlflow.index("--port") + 1]): mlflow[mlflow.index("--host") + 1],
        int(proxy_port): proxy_host,
        int(exporter_listen.rsplit(":", 1)[1]): exporter_listen.rsplit(":", 1)[0],
    }


@pytest.mark.parametrize("stack", STACKS)
def test_every_probed_port_listens_on_the_pod_ip(stack: str):
    spec = _one(stack, "Deployment", "mlflow")["spec"]["template"]["spec"]
    binds = _bind_addresses(stack)
    probed = 0
    for container in [*spec["initContainers"], *spec["containers"]]:
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container.get(kind)
            if probe is None or "exec" in probe:
                continue
            action = probe.get("tcpSocket") or probe["httpGet"]
            assert "host" not in action, (container["name"], kind)  # so: the pod IP
            port = ports.get(action["port"], action["port"])
            assert port in binds, (container["name"], kind, port, "no server renders this port")
            assert _reaches_pod_ip(binds[port]), (container["name"], kind, port, binds[port])
            probed += 1
    assert probed >= 8  # pgbouncer x3, mlflow x3, proxy x2, exporter x2


@pytest.mark.parametrize("stack", STACKS)
def test_pgbouncer_port_is_admitted_from_no_peer(stack: str):
    """Binding all of the pod's interfaces is safe only because no NetworkPolicy admits the
    port: the server, the auth store and the exporter reach PgBouncer over loopback."""
    ini = _one(stack, "ConfigMap", "mlflow-pgbouncer")["data"]["pgbouncer.ini"]
    port = int(re.findall(r"^listen_port = (\d+)$", ini, re.MULTILINE)[0])
    for policy in _objects(stack, "NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            assert port not in [p.get("port") for p in rule.get("ports", [])], policy["metadata"]["name"]
            assert rule.get("ports"), (policy["metadata"]["name"], "a rule without ports admits every port")
    dsn = _one(stack, "Secret", "mlflow-server")["stringData"]["PGBOUNCER_EXPORTER_CONNECTION_STRING"]
    assert f"@127.0.0.1:{port}/" in dsn


def test_pgbouncer_listens_on_loopback_unless_a_target_says_otherwise():
    """Secure by default: the local target (and any target that does not ask) keeps loopback."""
    assert TargetParameters.__dataclass_fields__["pgbouncer_listen_host"].default == "127.0.0.1"

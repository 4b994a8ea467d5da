"""Network namespaces: a "node" and one namespace per pod, with addresses only they have.

Each pod gets its own namespace and a veth pair to the node (pod ``198.18.<n>.2/24``, node
side ``198.18.<n>.1/24``, default route via the node). The node's services listen on
``198.19.0.1`` (its loopback), the address the rendered host names resolve to inside every pod
(``/etc/netns/<pod>/hosts``, which the pod's containers get as ``/etc/hosts``, as the kubelet
manages a pod's hosts file). ``198.18.0.0/15`` is reserved for network tests (RFC 2544);
nothing routes out of these namespaces and nothing is added to the machine's own.
Names carry the pid, so concurrent runs never collide; :meth:`Network.close` removes all.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

NODE_SERVICE_IP = "198.19.0.1"
"""Where PostgreSQL and the S3/STS stand-ins listen, on the node."""
INGRESS_IP = "198.19.0.2"
"""The ingress stand-in's address (its own: it also listens on 443)."""
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class PodNetwork:
    namespace: str
    pod_ip: str
    node_ip: str
    hosts_file: Path


@dataclass
class Network:
    prefix: str
    """``mlfp<pid>-<tag>``: every namespace of this network starts with it."""
    node: str = ""
    pods: list[PodNetwork] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)
    """Host name -> address, written into every pod's hosts file."""
    _prober: ThreadPoolExecutor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, hosts: dict[str, str], tag: str) -> Network:
        network = cls(prefix=f"mlfp{os.getpid()}-{tag}", hosts=dict(hosts))
        network.node = f"{network.prefix}-node"
        try:
            _ip("netns", "add", network.node)
            _ip("-n", network.node, "link", "set", "lo", "up")
            _ip("-n", network.node, "addr", "add", f"{NODE_SERVICE_IP}/32", "dev", "lo")
            _ip("-n", network.node, "addr", "add", f"{INGRESS_IP}/32", "dev", "lo")
        except BaseException:
            network.close()
            raise
        return network

    def add_pod(self, name: str) -> PodNetwork:
        with self._lock:
            index = len(self.pods) + 1
            namespace = f"{self.prefix}-{index}-{name}"[:40]
            pod = PodNetwork(
                namespace, f"198.18.{index}.2", f"198.18.{index}.1", Path("/etc/netns") / namespace / "hosts"
            )
            self.pods.append(pod)
        veth_node, veth_pod = f"v{os.getpid() % 100000}n{index}", f"v{os.getpid() % 100000}p{index}"
        _ip("netns", "add", namespace)
        _ip("-n", namespace, "link", "set", "lo", "up")
        # Created inside the node namespace, its peer moved straight into the pod's.
        _ip("-n", self.node, "link", "add", veth_node, "type", "veth", "peer", "name", veth_pod, "netns", namespace)
        _ip("-n", self.node, "addr", "add", f"{pod.node_ip}/24", "dev", veth_node)
        _ip("-n", self.node, "link", "set", veth_node, "up")
        _ip("-n", namespace, "addr", "add", f"{pod.pod_ip}/24", "dev", veth_pod)
        _ip("-n", namespace, "link", "set", veth_pod, "up")
        _ip("-n", namespace, "route", "add", "default", "via", pod.node_ip)
        pod.hosts_file.parent.mkdir(parents=True, exist_ok=True)
        lines = ["127.0.0.1 localhost", f"{pod.pod_ip} {name}"]
        lines += [f"{address} {host}" for host, address in sorted(self.hosts.items())]
        pod.hosts_file.write_text("\n".join(lines) + "\n")
        pod.hosts_file.chmod(0o644)
        return pod

    def in_node(self, call: Callable[[], T]) -> T:
        """Run ``call`` on a thread that lives in the node's namespace: sockets it opens are
        the node's (the prober's, the ingress stand-in's clients)."""
        if self._prober is None:
            node = self.node

            def enter() -> None:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{node}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns into the node namespace failed")
                finally:
                    os.close(fd)

            self._prober = ThreadPoolExecutor(max_workers=4, initializer=enter, thread_name_prefix="node")
        return self._prober.submit(call).result()

    def exec_argv(self, namespace: str) -> list[str]:
        return ["ip", "netns", "exec", namespace]

    def close(self) -> None:
        """Kill whatever still runs in our namespaces, then remove them and their hosts files."""
        if self._prober is not None:
            self._prober.shutdown(wait=False, cancel_futures=True)
        for namespace in [p.namespace for p in self.pods] + ([self.node] if self.node else []):
            pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True, check=False)
            for pid in pids.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
            shutil.rmtree(Path("/etc/netns") / namespace, ignore_errors=True)


def leftover_namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]

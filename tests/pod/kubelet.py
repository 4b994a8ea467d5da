"""Runs a rendered pod spec on real processes as the kubelet would. Generic: nothing here knows
a container by name; pods that other changes add are executed the same way.

* **Order.** Init containers one after another, each to exit 0; a native sidecar
  (``restartPolicy: Always``) is started and, if it has a ``startupProbe``, must pass it before
  the next init container starts. Then every app container.
* **Per container.** The image's ENTRYPOINT/CMD replaced by ``command``/``args`` with ``$(VAR)``
  expanded from the container's ``env`` (``$$`` escapes, unknown references stay); the image's
  ENV overlaid by ``env`` (values, ``secretKeyRef``/``configMapKeyRef`` from the rendered
  objects, ``fieldRef`` ``status.podIP``/``metadata.*``); ``workingDir`` or the image's
  WORKDIR; ``runAsUser``/``runAsGroup`` (container, then pod, then image USER) with ``fsGroup``
  and ``supplementalGroups`` as supplementary groups; ``readOnlyRootFilesystem``.
* **Volumes.** ``emptyDir`` (``0777``, group ``fsGroup`` with setgid), ``secret``/``configMap``
  with ``items``, ``defaultMode``/``mode`` and, with ``fsGroup``, group ``fsGroup`` and mode
  ``| 0440`` (the kubelet's ownership rule for read-only volume types), ``projected``
  service-account tokens; ``subPath``; ``readOnly``.
* **Probes** run from the node namespace, exactly as the kubelet's prober: ``tcpSocket`` and
  ``httpGet`` to the pod IP unless ``host`` is set (``httpHeaders``, ``scheme``; a status in
  [200, 400) passes), ``exec`` inside the container; each within its ``initialDelaySeconds``,
  ``periodSeconds``, ``timeoutSeconds`` and ``failureThreshold``.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .images import Image
from .network import Network, PodNetwork
from .rootfs import Bind, Process, launch_script

PROBE_KINDS = ("startupProbe", "readinessProbe", "livenessProbe")
KUBE_PROBE_USER_AGENT = "kube-probe/1.33"


class PodFailure(AssertionError):
    """The pod did not run as the spec requires; the message names the container and why."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: known references replaced, ``$$`` an escaped ``$``,
    anything else left as written."""
    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        text,
    )


@dataclass(frozen=True)
class Objects:
    """The rendered Secrets and ConfigMaps of the pod's namespace, by name: key -> bytes."""

    secrets: dict[str, dict[str, bytes]]
    config_maps: dict[str, dict[str, bytes]]


@dataclass
class Running:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    sidecar: bool


@dataclass
class PodRun:
    name: str
    pod: dict[str, Any]
    objects: Objects
    images: Mapping[str, Image]
    network: Network
    directory: Path
    extra_host_paths: list[Path]
    pod_net: PodNetwork | None = None
    running: list[Running] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)
    """What differed from the rendered input (e.g. configuration keys dropped), for the report."""
    token_files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """Projected volume name -> path -> content (the service-account token IRSA projects)."""
    volume_dirs: dict[str, Path] = field(default_factory=dict)

    # -- setup -------------------------------------------------------------------------------

    def start_network(self) -> PodNetwork:
        self.pod_net = self.network.add_pod(self.name)
        return self.pod_net

    @property
    def pod_ip(self) -> str:
        assert self.pod_net is not None
        return self.pod_net.pod_ip

    def _containers(self) -> list[dict[str, Any]]:
        return [*self.pod.get("initContainers", []), *self.pod["containers"]]

    def _fs_group(self) -> int | None:
        return self.pod.get("securityContext", {}).get("fsGroup")

    def _volume_files(self, volume: dict[str, Any]) -> tuple[dict[str, bytes], int, dict[str, int]]:
        """(path -> content, default mode, path -> item mode) of a secret/configMap/projected volume."""
        if "secret" in volume:
            source, data, default = volume["secret"], self.objects.secrets[volume["secret"]["secretName"]], 0o644
        elif "configMap" in volume:
            source, data, default = volume["configMap"], self.objects.config_maps[volume["configMap"]["name"]], 0o644
        else:  # projected: the service-account tokens the IRSA webhook adds (token_files)
            return dict(self.token_files.get(volume["name"], {})), volume["projected"].get("defaultMode", 0o644), {}
        mode = source.get("defaultMode", default)
        if "items" not in source:
            return dict(data), mode, {}
        files, modes = {}, {}
        for item in source["items"]:
            files[item["path"]] = data[item["key"]]
            if "mode" in item:
                modes[item["path"]] = item["mode"]
        return files, mode, modes

    def _drop_unknown_keys(self, volume_name: str, path: str, content: bytes) -> bytes:
        """Configuration keys the mounting container's local binary predates (images.py)."""
        dropped: set[str] = set()
        for container in self._containers():
            if any(m["name"] == volume_name for m in container.get("volumeMounts", [])):
                dropped |= set(self.images[container["image"]].dropped_config_keys)
        lines = content.decode(errors="surrogateescape").splitlines(keepends=True)
        kept = []
        for line in lines:
            key = line.split("=", 1)[0].strip()
            if "=" in line and key in dropped:
                self.deviations.append(f"volume {volume_name}/{path}: dropped `{line.strip()}`")
                continue
            kept.append(line)
        return "".join(kept).encode(errors="surrogateescape")

    def prepare_volumes(self) -> None:
        fs_group = self._fs_group()
        for volume in self.pod.get("volumes", []):
            target = self.directory / "volumes" / volume["name"]
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            self.volume_dirs[volume["name"]] = target
            if "emptyDir" in volume:  # the kubelet's emptyDir: world-writable, setgid fsGroup
                os.chmod(target, 0o777)  # noqa: S103 - as the kubelet creates it
                if fs_group is not None:
                    os.chown(target, 0, fs_group)
                    os.chmod(target, 0o2777)  # noqa: S103 - as the kubelet creates it
                continue
            files, mode, modes = self._volume_files(volume)
            read_only_mask = 0o440 if fs_group is not None else 0
            for path, content in files.items():
                out = target / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(self._drop_unknown_keys(volume["name"], path, content))
                os.chmod(out, modes.get(path, mode) | read_only_mask)
                if fs_group is not None:
                    os.chown(out, 0, fs_group)
            if fs_group is not None:
                os.chown(target, 0, fs_group)
                os.chmod(target, 0o2755)  # noqa: S103 - a read-only volume's directory

    # -- containers --------------------------------------------------------------------------

    def environment(self, container: dict[str, Any]) -> dict[str, str]:
        image = self.images[container["image"]]
        declared: dict[str, str] = {}
        for entry in container.get("env", []):
            if "value" in entry:
                declared[entry["name"]] = expand(entry["value"], declared)
                continue
            source = entry["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                declared[entry["name"]] = self.objects.secrets[ref["name"]][ref["key"]].decode()
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                declared[entry["name"]] = self.objects.config_maps[ref["name"]][ref["key"]].decode()
            elif "fieldRef" in source:
                path = source["fieldRef"]["fieldPath"]
                values = {"status.podIP": self.pod_ip, "metadata.name": self.name, "status.hostIP": "198.19.0.1"}
                if path not in values:
                    raise PodFailure(f"{container['name']}: fieldRef {path} is not supported by this executor")
                declared[entry["name"]] = values[path]
            else:
                raise PodFailure(f"{container['name']}: env source {sorted(source)} is not supported")
        return {**image.env, **declared}

    def argv(self, container: dict[str, Any], env: Mapping[str, str]) -> tuple[str, ...]:
        """ENTRYPOINT/CMD vs command/args as the kubelet combines them, then ``$(VAR)``."""
        image = self.images[container["image"]]
        declared = {e["name"]: v for e in container.get("env", []) if (v := env.get(e["name"])) is not None}
        if "command" in container:
            words = [*container["command"], *container.get("args", [])]
        else:
            words = [*image.entrypoint, *container.get("args", image.cmd)]
        return tuple(expand(word, declared) for word in words)

    def process(self, container: dict[str, Any], argv: tuple[str, ...]) -> Process:
        image = self.images[container["image"]]
        pod_sc = self.pod.get("securityContext", {})
        sc = container.get("securityContext", {})
        uid = sc.get("runAsUser", pod_sc.get("runAsUser", image.user[0] if image.user else 0))
        gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image.user[1] if image.user else 0))
        groups = [gid, *([pod_sc["fsGroup"]] if "fsGroup" in pod_sc else []), *pod_sc.get("supplementalGroups", [])]
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
            raise PodFailure(f"{container['name']}: runAsNonRoot with UID 0 (the kubelet refuses to start it)")
        return Process(
            argv=argv,
            uid=uid,
            gid=gid,
            groups=tuple(dict.fromkeys(groups)),
            workdir=container.get("workingDir", image.workdir),
            read_only_root=bool(sc.get("readOnlyRootFilesystem", False)),
        )

    def binds(self, container: dict[str, Any]) -> list[Bind]:
        image = self.images[container["image"]]
        assert self.pod_net is not None
        binds = [Bind(path, source, True) for path, source in image.files.items()]
        binds.append(Bind("/etc/hosts", self.pod_net.hosts_file, True))
        for mount in container.get("volumeMounts", []):
            source = self.volume_dirs[mount["name"]]
            if "subPath" in mount:
                source = source / mount["subPath"]
            binds.append(Bind(mount["mountPath"], source, bool(mount.get("readOnly", False))))
        return binds

    def _spawn(
        self, container: dict[str, Any], argv: tuple[str, ...] | None = None, suffix: str = ""
    ) -> tuple[subprocess.Popen[bytes], Path]:
        assert self.pod_net is not None
        env = self.environment(container)
        proc = self.process(container, argv or self.argv(container, env))
        name = container["name"] + suffix
        scratch = self.directory / "containers" / name
        shutil.rmtree(scratch, ignore_errors=True)
        (scratch / "root").mkdir(parents=True)
        script = scratch / "launch.sh"
        script.write_text(launch_script(scratch / "root", scratch, self.binds(container), proc, self.extra_host_paths))
        log = self.directory / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = log.open("ab")
        # runc hands the container's stdio to its user (fixStdioPermissions), so a process may
        # reopen /dev/stdout, as nginx's ``access_log /dev/stdout`` does.
        os.fchown(handle.fileno(), proc.uid, proc.gid)
        command = [*self.network.exec_argv(self.pod_net.namespace), "unshare", "-m", "--propagation", "private"]
        process = subprocess.Popen(
            [*command, "/bin/sh", str(script)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return process, log

    def start(self, container: dict[str, Any], sidecar: bool = False) -> Running:
        process, log = self._spawn(container)
        running = Running(container["name"], process, log, sidecar)
        self.running.append(running)
        return running

    def log_tail(self, name: str, size: int = 3000) -> str:
        path = self.directory / "logs" / f"{name}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"

    # -- probes ------------------------------------------------------------------------------

    def _port(self, container: dict[str, Any], port: int | str) -> int:
        if isinstance(port, int):
            return port
        for declared in container.get("ports", []):
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise PodFailure(f"{container['name']}: probe names port {port!r}, which the container does not declare")

    def probe_once(self, container: dict[str, Any], probe: dict[str, Any]) -> str | None:
        """None when the probe passes, else why it failed."""
        timeout = float(probe.get("timeoutSeconds", 1))
        if "exec" in probe:
            process, log = self._spawn(container, tuple(probe["exec"]["command"]), suffix="-probe")
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return "exec probe timed out"
            return None if code == 0 else f"exec probe exited {code}: {log.read_text()[-300:]}"
        action = probe.get("tcpSocket") or probe.get("httpGet")
        if action is None:
            raise PodFailure(f"{container['name']}: probe {sorted(probe)} is not supported")
        host = action.get("host") or self.pod_ip
        port = self._port(container, action["port"])
        if "tcpSocket" in probe:

            def connect() -> str | None:
                try:
                    socket.create_connection((host, port), timeout=timeout).close()
                except OSError as error:
                    return f"tcp {host}:{port}: {error}"
                return None

            return self.network.in_node(connect)

        def get() -> str | None:
            scheme = action.get("scheme", "HTTP").upper()
            if scheme == "HTTPS":  # the kubelet does not verify the certificate
                context = ssl._create_unverified_context()  # noqa: S323 - as the kubelet
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    host, port, timeout=timeout, context=context
                )
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            headers = {"User-Agent": KUBE_PROBE_USER_AGENT, "Accept": "*/*", "Host": f"{host}:{port}"}
            for header in action.get("httpHeaders", []):
                headers[header["name"]] = header["value"]
            try:
                conn.request("GET", action.get("path", "/"), headers=headers)
                response = conn.getresponse()
                body = response.read(300)
            except OSError as error:
                return f"http {host}:{port}{action.get('path', '/')}: {error}"
            finally:
                conn.close()
            if 200 <= response.status < 400:
                return None
            return f"http {host}:{port}{action.get('path', '/')}: {response.status} {body!r}"

        return self.network.in_node(get)

    def run_probe(self, container: dict[str, Any], kind: str, running: Running | None = None) -> None:
        """Until the first success within the probe's own schedule, else :class:`PodFailure`."""
        probe = container[kind]
        time.sleep(float(probe.get("initialDelaySeconds", 0)))
        period = float(probe.get("periodSeconds", 10))
        threshold = int(probe.get("failureThreshold", 3))
        reason = "never ran"
        for attempt in range(threshold):
            started = time.monotonic()
            reason = self.probe_once(container, probe) or ""
            if not reason:
                return
            if running is not None and running.process.poll() is not None:
                break
            if attempt + 1 < threshold:
                time.sleep(max(0.0, period - (time.monotonic() - started)))
        exited = (
            f" (process exited {running.process.returncode})" if running and running.process.poll() is not None else ""
        )
        raise PodFailure(
            f"container {container['name']}: {kind} failed {threshold}x every {period:g}s: {reason}{exited}\n"
            f"--- log ---\n{self.log_tail(container['name'])}"
        )

    def run_probes(self, containers: list[dict[str, Any]], kinds: tuple[str, ...]) -> None:
        """The given probes of the given containers at once (the kubelet runs each on its own)."""
        failures: list[PodFailure] = []
        by_name = {r.name: r for r in self.running}

        def worker(container: dict[str, Any], kind: str) -> None:
            try:
                self.run_probe(container, kind, by_name.get(container["name"]))
            except PodFailure as failure:
                failures.append(failure)

        threads = [threading.Thread(target=worker, args=(c, k)) for c in containers for k in kinds if k in c]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]

    # -- lifecycle ---------------------------------------------------------------------------

    def run_init_containers(self, timeout_s: float) -> None:
        for container in self.pod.get("initContainers", []):
            if container.get("restartPolicy") == "Always":
                running = self.start(container, sidecar=True)
                if "startupProbe" in container:
                    self.run_probe(container, "startupProbe", running)
                continue
            process, log = self._spawn(container)
            try:
                code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                raise PodFailure(f"init container {container['name']} did not finish in {timeout_s:g}s") from None
            if code != 0:
                raise PodFailure(f"init container {container['name']} exited {code}:\n{log.read_text()[-3000:]}")

    def start_service(self) -> None:
        """A Deployment's pod up to ready: init containers, app containers, then every probe."""
        self.run_init_containers(timeout_s=120)
        for container in self.pod["containers"]:
            self.start(container)
        self.run_probes(self.pod["containers"], ("startupProbe",))
        sidecars = [c for c in self.pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
        self.run_probes([*sidecars, *self.pod["containers"]], ("readinessProbe", "livenessProbe"))
        for running in self.running:
            if running.process.poll() is not None:
                raise PodFailure(f"{running.name} exited {running.process.returncode}:\n{self.log_tail(running.name)}")

    def run_to_completion(self, timeout_s: float) -> None:
        """A Job's pod: init containers, then every app container must exit 0."""
        self.run_init_containers(timeout_s=timeout_s)
        started = [self.start(c) for c in self.pod["containers"]]
        deadline = time.monotonic() + timeout_s
        for running in started:
            try:
                code = running.process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise PodFailure(
                    f"{running.name} did not finish in {timeout_s:g}s:\n{self.log_tail(running.name)}"
                ) from None
            if code != 0:
                raise PodFailure(f"{running.name} exited {code}:\n{self.log_tail(running.name)}")

    def stop(self) -> None:
        """App containers first, sidecars last, each SIGTERM then SIGKILL (as on pod deletion)."""
        grace = min(10.0, float(self.pod.get("terminationGracePeriodSeconds", 30)))
        for running in sorted(self.running, key=lambda r: r.sidecar):
            if running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
                try:
                    running.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    running.process.kill()
                    running.process.wait()
        self.running.clear()

"""A container's root filesystem and process, as a container runtime would set them up.

Each container runs in its own mount namespace (``unshare -m``) inside the pod's network
namespace, chrooted into a fresh root: this machine's ``/usr``, ``/etc``, ``/var``, ``/opt`` and
the project tree read-only, empty ``/tmp``/``/run``/``/root``, then the image's own files and the
pod's volumes bind-mounted at the exact paths the pod spec names. No path is remapped: the
command reads ``/run/mlflow/auth.ini`` because that is where the volume is. Paths that do not
exist on this machine (``/secrets``, ``/opt/mlflow-platform``) are created in the new root
(an overlay over the machine's directory when they fall inside one), never on the machine.
The root is then remounted read-only when ``readOnlyRootFilesystem`` is set, and the process
is started as the container's UID/GID with ``no_new_privs``.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

BOUND_HOST_DIRS = ("usr", "etc", "var", "opt")
"""Top-level directories of this machine a container sees (read-only): the programs, their
libraries and configuration defaults. The project tree and its virtualenv (whose console scripts
name its Python by absolute path) come in as ``extra_host_paths``, wherever the clone lives."""


@dataclass(frozen=True)
class Bind:
    target: str
    """Absolute path inside the container."""
    source: Path
    read_only: bool


@dataclass(frozen=True)
class Process:
    argv: tuple[str, ...]
    uid: int
    gid: int
    groups: tuple[int, ...]
    workdir: str
    read_only_root: bool


def resolve_top(path: str) -> str:
    """``/bin/x`` -> ``/usr/bin/x`` where the machine's top-level entry is a symlink (merged
    /usr): the container's root has the same symlinks, so that is where the file lands."""
    top = Path("/") / path.strip("/").split("/", 1)[0]
    if top.is_symlink():
        return str(Path("/") / os.readlink(top) / Path(path).relative_to(top))
    return path


def _top(path: str) -> str:
    return path.strip("/").split("/", 1)[0]


def _overlaid_tops(binds: list[Bind]) -> set[str]:
    """Bound host directories in which a mount point must be created (it does not exist on
    this machine): those become a read-only overlay of the machine's directory and a staging
    layer that holds only the new mount points."""
    return {_top(b.target) for b in binds if _top(b.target) in BOUND_HOST_DIRS and not Path(b.target).exists()}


def launch_script(root: Path, staging: Path, binds: list[Bind], process: Process, extra_host_paths: list[Path]) -> str:
    """A shell script (run as root inside ``unshare -m``) that builds the root and execs the
    process. ``staging`` is a scratch directory of this container on the machine."""
    q = shlex.quote
    binds = [Bind(resolve_top(b.target), b.source, b.read_only) for b in binds]
    overlaid = _overlaid_tops(binds)
    lines = ["set -eu", f"/usr/bin/mount -t tmpfs -o mode=0755 container-root {q(str(root))}"]
    for entry in sorted(os.listdir("/")):
        host = Path("/") / entry
        inside = root / entry
        if host.is_symlink():
            lines.append(f"/usr/bin/ln -s {q(os.readlink(host))} {q(str(inside))}")
        elif entry in BOUND_HOST_DIRS and entry in overlaid:
            layer = staging / "layers" / entry
            lines.append(f"/usr/bin/mkdir -p {q(str(inside))} {q(str(layer))}")
            for bind in binds:
                if _top(bind.target) == entry and not Path(bind.target).exists():
                    point = staging / "layers" / bind.target.lstrip("/")
                    make = (
                        "/usr/bin/mkdir -p"
                        if bind.source.is_dir()
                        else f"/usr/bin/mkdir -p {q(str(point.parent))} && /usr/bin/touch"
                    )
                    lines.append(f"{make} {q(str(point))}")
            lines.append(f"/usr/bin/mount -t overlay overlay -o ro,lowerdir={layer}:{host} {q(str(inside))}")
        elif entry in BOUND_HOST_DIRS:
            lines.append(
                f"/usr/bin/mkdir -p {q(str(inside))} && /usr/bin/mount --rbind {q(str(host))} {q(str(inside))}"
            )
            lines.append(f"/usr/bin/mount -o remount,bind,ro {q(str(inside))}")
        elif host.is_dir():
            lines.append(f"/usr/bin/mkdir -p {q(str(inside))}")
    lines.append(f"/usr/bin/mount -t proc proc {q(str(root / 'proc'))}")
    lines.append(f"/usr/bin/mount --rbind /dev {q(str(root / 'dev'))}")
    lines.append(f"/usr/bin/chmod 1777 {q(str(root / 'tmp'))}")
    # Parents before children, as containerd orders a container's mounts (by the number of path
    # components of the destination): a /tmp emptyDir first, then a clone under /tmp, then an
    # image file inside that clone's virtualenv (the certifi bundle) on top of both.
    host_binds = [Bind(str(path), path, read_only=True) for path in extra_host_paths]
    for bind in sorted([*binds, *host_binds], key=lambda b: len(Path(b.target).parts)):
        inside = root / bind.target.lstrip("/")
        if bind in host_binds:
            lines.append(
                f"/usr/bin/mkdir -p {q(str(inside))} && /usr/bin/mount --rbind {q(str(bind.source))} {q(str(inside))}"
            )
            lines.append(f"/usr/bin/mount -o remount,bind,ro {q(str(inside))}")
            continue
        if _top(bind.target) not in BOUND_HOST_DIRS:
            make = (
                "/usr/bin/mkdir -p"
                if bind.source.is_dir()
                else f"/usr/bin/mkdir -p {q(str(inside.parent))} && /usr/bin/touch"
            )
            lines.append(f"[ -e {q(str(inside))} ] || {{ {make} {q(str(inside))}; }}")
        lines.append(f"/usr/bin/mount --bind {q(str(bind.source))} {q(str(inside))}")
        if bind.read_only:
            lines.append(f"/usr/bin/mount -o remount,bind,ro {q(str(inside))}")
    if process.read_only_root:
        lines.append(f"/usr/bin/mount -o remount,bind,ro {q(str(root))}")
    groups = ",".join(str(g) for g in process.groups) or str(process.gid)
    argv = [
        "/usr/sbin/chroot",
        f"--userspec={process.uid}:{process.gid}",
        f"--groups={groups}",
        str(root),
        "/usr/bin/setpriv",
        "--no-new-privs",
        "--",
        "/usr/bin/env",
        f"--chdir={process.workdir}",
        "--",
        *process.argv,
    ]
    lines.append("exec " + shlex.join(argv))
    return "\n".join(lines) + "\n"

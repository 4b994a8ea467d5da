"""Who runs what: PostgreSQL and PgBouncer refuse to run as root, nginx should not.

When the platform is started by root, those three run as an unprivileged *service user*
(``postgres`` by default, which the Debian packages create). Python components (MLflow, moto)
keep the invoking user, because the interpreter may live where the service user cannot read
(e.g. pyenv under ``/root``). When started by anyone else, everything runs as that user.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import PlatformError

DEFAULT_SERVICE_USER = "postgres"


@dataclass(frozen=True)
class RunAs:
    """An OS account a component runs as."""

    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]

    @property
    def is_current(self) -> bool:
        return self.uid == os.geteuid()


def current_user() -> RunAs:
    entry = pwd.getpwuid(os.geteuid())
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, tuple(os.getgroups()))


def service_user(requested: str | None) -> RunAs:
    """The account for PostgreSQL, PgBouncer and nginx (the current one unless we are root)."""
    if os.geteuid() != 0:
        if requested and requested != pwd.getpwuid(os.geteuid()).pw_name:
            raise PlatformError(f"--service-user {requested} needs root; omit it to run everything as yourself")
        return current_user()
    name = requested or DEFAULT_SERVICE_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise PlatformError(
            f"service user '{name}' does not exist: install PostgreSQL (`apt-get install -y postgresql`, "
            "which creates it) or pass --service-user <unprivileged user>"
        ) from None
    if entry.pw_uid == 0:
        raise PlatformError("--service-user must not be root: PostgreSQL and PgBouncer refuse to run as root")
    groups = (*(g.gr_gid for g in grp.getgrall() if name in g.gr_mem), entry.pw_gid)
    return RunAs(name, entry.pw_uid, entry.pw_gid, entry.pw_dir, tuple(sorted(set(groups))))


def _can_search(path: Path, who: RunAs) -> bool:
    st = path.stat()
    if who.uid == 0:
        return True
    if st.st_uid == who.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in who.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def unreachable_ancestor(path: Path, who: RunAs) -> Path | None:
    """The first existing directory above ``path`` that ``who`` cannot enter, if any."""
    for directory in reversed(path.parents):
        if directory.exists() and not _can_search(directory, who):
            return directory
    return None


@dataclass(frozen=True)
class ProcessIdentity:
    """``user``/``group``/``extra_groups`` for subprocess: all None when no switch is needed."""

    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None


def identity_for(who: RunAs | None) -> ProcessIdentity:
    """Switch to ``who`` (primary group only, no inherited root groups) when we are root."""
    if who is None or who.is_current or os.geteuid() != 0:
        return ProcessIdentity()
    return ProcessIdentity(who.uid, who.gid, [])


def chown(path: Path, who: RunAs) -> None:
    if not who.is_current:
        os.chown(path, who.uid, who.gid)


def make_dir(path: Path, who: RunAs, mode: int = 0o700) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    chown(path, who)
    return path


def open_log(path: Path) -> BinaryIO:
    """Open a log for appending, readable by its owner only (0600, also an older log's mode is
    corrected): logs name users, databases and hosts, and a log is no place to widen access."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")


def write_file(path: Path, content: str | bytes, who: RunAs, mode: int = 0o600) -> Path:
    """Write atomically with the final mode from the start (secrets are never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    data = content.encode() if isinstance(content, str) else content
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    chown(tmp, who)
    os.replace(tmp, path)
    return path

"""Images → the same programs on this machine, in one table, with what each mapping does not prove.

The tracking-server image's ``ENV``, ``USER``, ``WORKDIR`` and ``COPY`` lines are parsed from
``images/tracking-server/Dockerfile`` (not restated here); the official images use their
documented defaults. A container's root filesystem is the machine's own (``tests/pod/rootfs.py``),
with each image's own files placed at the paths the image has them.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rendering.images import PGBOUNCER_EXPORTER_IMAGE, PGBOUNCER_IMAGE, PROXY_IMAGE
from rendering.pgbouncer import DEBIAN_BOOKWORM_VERSION, PREPARED_STATEMENTS_VERSION, VERSION_NOTES

ROOT = Path(__file__).resolve().parents[2]
SERVER_DOCKERFILE = ROOT / "images" / "tracking-server" / "Dockerfile"
EXPORTER_SUBSTITUTE = Path(__file__).resolve().parent / "exporter_substitute.py"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The PATH of the official Debian/Alpine-based images (and of a container without one)."""
PYTHON_BASE_ENV = {"PATH": "/usr/local/bin:" + DEFAULT_PATH, "LANG": "C.UTF-8"}
"""python:3.11-slim-bookworm's documented ENV (PYTHON_VERSION and GPG_KEY are not used here)."""


@dataclass(frozen=True)
class Image:
    """What a container of this image finds before the pod spec applies."""

    reference: str
    env: dict[str, str]
    user: tuple[int, int] | None
    workdir: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    files: dict[str, Path] = field(default_factory=dict)
    """Path in the image -> the local file or directory that stands in for it."""
    dropped_config_keys: tuple[str, ...] = ()
    """Keys of mounted configuration files this machine's older binary does not know."""
    runs: str = ""
    does_not_prove: str = ""


def _logical_lines(text: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _env_pairs(rest: str, env: dict[str, str]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for token in shlex.split(rest):
        key, _, value = token.partition("=")
        pairs[key] = re.sub(r"\$\{?(\w+)\}?", lambda m: {**env, **pairs}.get(m.group(1), ""), value)
    return pairs


def parse_dockerfile(path: Path, base_env: dict[str, str], venv: Path) -> Image:
    """The final stage's ENV, USER, WORKDIR, ENTRYPOINT, CMD and the files it COPYs from the
    repository. ``COPY --from=build /opt/mlflow`` is the virtualenv the build stage made from
    requirements.txt: the project's own pinned virtualenv stands in for it."""
    lines = _logical_lines(path.read_text())
    final = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    env = dict(base_env)
    user: tuple[int, int] | None = None
    workdir = "/"
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    files: dict[str, Path] = {}
    for line in lines[final + 1 :]:
        instruction, _, rest = line.partition(" ")
        match instruction.upper():
            case "ENV":
                env.update(_env_pairs(rest, env))
            case "USER":
                uid, _, gid = rest.strip().partition(":")
                user = (int(uid), int(gid or uid))
            case "WORKDIR":
                workdir = rest.strip()
            case "ENTRYPOINT":
                entrypoint = tuple(shlex.split(rest.strip().strip("[]").replace(",", " ")))
            case "CMD":
                cmd = tuple(shlex.split(rest.strip().strip("[]").replace(",", " ")))
            case "COPY":
                words = rest.split()
                sources, target = [w for w in words[:-1] if not w.startswith("--")], words[-1]
                if any(w.startswith("--from=") for w in words):
                    files[target] = venv  # the build stage's virtualenv (see docstring)
                else:
                    files[target] = ROOT / sources[0]
    return Image(
        reference="",
        env=env,
        user=user,
        workdir=workdir,
        entrypoint=entrypoint,
        cmd=cmd,
        files=files,
    )


def project_venv() -> Path:
    """The project's pinned virtualenv (the server image's /opt/mlflow)."""
    return Path(sys.prefix).resolve()


def _exporter_entrypoint(scratch: Path) -> Path:
    """The exporter image's entrypoint: the substitute, under the project's Python."""
    wrapper = scratch / "pgbouncer_exporter"
    wrapper.write_text(f'#!/bin/sh\nexec {project_venv()}/bin/python {EXPORTER_SUBSTITUTE} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def image_table(server_image: str, test_ca: Path, scratch: Path) -> dict[str, Image]:
    """Every image the stacks render, mapped to a program on this machine."""
    server = parse_dockerfile(SERVER_DOCKERFILE, PYTHON_BASE_ENV, project_venv())
    rds_bundle = "/etc/ssl/rds/global-bundle.pem"
    # Keys the renderer writes only for versions this machine's binary predates (an unknown key
    # stops PgBouncer); VERSION_NOTES documents each.
    dropped = ("max_prepared_statements",) if DEBIAN_BOOKWORM_VERSION < PREPARED_STATEMENTS_VERSION else ()
    assert all(key in VERSION_NOTES for key in dropped)
    return {
        server_image: Image(
            reference=server_image,
            env=server.env,
            user=server.user,
            workdir=server.workdir,
            entrypoint=server.entrypoint,
            cmd=server.cmd,
            files={**server.files, rds_bundle: test_ca},
            runs=f"Python {sys.version.split()[0]} with requirements.txt's pins ({project_venv()}) at /opt/mlflow",
            does_not_prove="the image build itself (CI builds it); the RDS CA bundle is the test CA",
        ),
        PGBOUNCER_IMAGE: Image(
            reference=PGBOUNCER_IMAGE,
            env={"PATH": DEFAULT_PATH},
            user=None,
            workdir="/",
            entrypoint=("pgbouncer",),
            cmd=(),
            dropped_config_keys=dropped,
            runs="Debian's pgbouncer " + ".".join(map(str, DEBIAN_BOOKWORM_VERSION)),
            does_not_prove="PgBouncer >= 1.24 behaviour; the dropped keys are never exercised",
        ),
        PROXY_IMAGE: Image(
            reference=PROXY_IMAGE,
            env={"PATH": DEFAULT_PATH},
            user=(101, 101),
            workdir="/",
            entrypoint=("/docker-entrypoint.sh",),
            cmd=("nginx", "-g", "daemon off;"),
            runs="Debian's nginx (1.22) at the same config path",
            does_not_prove="nginx 1.29 and the Alpine build; the image's entrypoint scripts "
            "(the pod overrides the command)",
        ),
        PGBOUNCER_EXPORTER_IMAGE: Image(
            reference=PGBOUNCER_EXPORTER_IMAGE,
            env={"PATH": DEFAULT_PATH},
            user=(65534, 65534),
            workdir="/",
            entrypoint=("/bin/pgbouncer_exporter",),
            cmd=(),
            files={"/bin/pgbouncer_exporter": _exporter_entrypoint(scratch)},
            runs="localplatform.pgbouncer_exporter behind the exporter's own flags (exporter_substitute.py)",
            does_not_prove="the Go exporter itself: its other metrics and flags",
        ),
    }

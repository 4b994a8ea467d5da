"""The local-platform API: start, stop and inspect the whole topology in one state directory.

    platform = LocalPlatform(PlatformOptions(state_dir=Path(".local")))
    info = platform.start()          # idempotent; returns when HTTPS answers and auth works
    platform.component("pgbouncer").kill()   # the supervisor restarts it
    platform.client_env()            # what mlflow.env contains
    platform.stop()

``start()`` prepares every file (rendered by ``rendering/``), writes the supervisor's plan,
launches the supervisor detached (it outlives this process, like ``make up`` needs) and waits
for it to report the platform ready, then checks the HTTPS endpoint itself.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rendering.mlflow_server import MINIMUM_MLFLOW_VERSION, PLATFORM_APP, PLATFORM_APP_SOURCE, ArtifactAccessMode
from rendering.server_side import PlatformSettings
from rendering.tracking_store import STORE_SCHEME, STORE_SOURCE

from . import components as comp
from .binaries import Binaries, find_binaries
from .clientenv import read_env_file, write_env_file, write_env_script
from .errors import PlatformError
from .layout import StateLayout
from .options import PORT_NAMES, PlatformOptions, option_problems
from .plan import Plan, plan_to_json
from .ports import allocate
from .secrets_store import load_or_create
from .status import (
    ComponentStatus,
    PlatformStatus,
    is_alive,
    read_status,
    signal_if_alive,
    supervisor_alive,
)
from .tls import ensure_ca, write_client_bundle
from .users import (
    RunAs,
    current_user,
    identity_for,
    make_dir,
    open_log,
    service_user,
    unreachable_ancestor,
    write_file,
)

Progress = Callable[[str], None]
EXTERNAL_SVC_BASE = Path("/var/lib/mlflow-platform-local")
ADMIN_USERNAME = PlatformSettings.admin_username
_ROLE_NAMES = PlatformSettings(access_mode="proxied", in_flight_per_worker=1, auth_cache_ttl_seconds=0)
"""Only for the role and database names, which do not depend on the other fields."""


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class PlatformInfo:
    url: str
    env_file: Path
    ca_cert: Path
    username: str | None
    access_mode: ArtifactAccessMode
    startup_seconds: float
    notes: list[str] = field(default_factory=list)
    env_script: Path | None = None
    artifact_root: str = ""


@dataclass
class ComponentHandle:
    """One process of the platform, as a test sees it: pid, port, log, and stop/start/kill."""

    name: str
    kind: str
    port: int | None
    log_path: Path
    platform: LocalPlatform

    def _status(self) -> ComponentStatus:
        status = self.platform.status()
        if self.name not in status.components:
            raise PlatformError(f"no component named {self.name}")
        return status.components[self.name]

    @property
    def pid(self) -> int | None:
        st = self._status()
        return st.pid if is_alive(st.pid, st.start_time) else None

    @property
    def state(self) -> str:
        return self._status().state

    @property
    def restarts(self) -> int:
        return self._status().restarts

    def kill(self, sig: int = signal.SIGKILL) -> int:
        """Send ``sig`` to the main process (a crash, from the supervisor's view): it restarts it."""
        st = self._status()
        if not signal_if_alive(st.pid, st.start_time, sig) or st.pid is None:
            raise PlatformError(f"{self.name} is not running")
        return st.pid

    def stop(self, timeout_s: float = 60) -> None:
        """Stop it and keep it stopped (the supervisor will not restart it) until ``start()``."""
        self.platform._control(self.name, "stop")
        self.wait_for("stopped", timeout_s)

    def start(self, timeout_s: float = 180) -> None:
        self.platform._control(self.name, "start")
        self.wait_for("running", timeout_s)

    def wait_for(self, state: str, timeout_s: float = 180, *, other_than_pid: int | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = self._status()
            if st.state == state and (other_than_pid is None or (st.pid is not None and st.pid != other_than_pid)):
                return
            time.sleep(0.2)
        raise PlatformError(f"{self.name} did not reach state {state} in {timeout_s:.0f}s (now {self.state})")


class LocalPlatform:
    def __init__(self, options: PlatformOptions, progress: Progress | None = None) -> None:
        self.options = options
        self.layout = StateLayout(options.state_dir.resolve())
        svc_root = self.metadata().get("svc_root")
        if isinstance(svc_root, str):
            self.layout = StateLayout(self.layout.root, Path(svc_root))
        self.progress = progress or _quiet
        self._launched: subprocess.Popen[bytes] | None = None

    # -- public API ----------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.layout.root

    def start(self) -> PlatformInfo:
        began = time.monotonic()
        running = read_status(self.layout.status_file)
        if supervisor_alive(running):
            return self._already_running(running, began)
        self._cleanup_orphans(running)
        created = not self.layout.root.exists()
        try:
            ctx, notes = self._prepare()
            for note in notes:
                self.progress(f"note: {note}")
            plan = self._build_plan(ctx)
            write_file(self.layout.plan_file, plan_to_json(plan), ctx.me, 0o600)
            self._write_metadata(ctx)
        except BaseException:
            if created:  # nothing half-created: a start that fails before launching leaves no state dir
                self._remove_state_dir()
            raise
        self._launch_supervisor()
        self._wait_ready(began)
        self._verify_endpoint(ctx)
        return self._info(began, notes)

    def stop(self, timeout_s: float = 90) -> list[str]:
        """Stop what ``start()`` started, by pid. Returns the names of stopped components."""
        status = read_status(self.layout.status_file)
        if status is None:
            return []
        names = [name for name, c in status.components.items() if is_alive(c.pid, c.start_time)]
        if supervisor_alive(status):
            signal_if_alive(status.supervisor_pid, status.supervisor_start_time, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and supervisor_alive(read_status(self.layout.status_file)):
                time.sleep(0.2)
            status = read_status(self.layout.status_file) or status
            if supervisor_alive(status):
                signal_if_alive(status.supervisor_pid, status.supervisor_start_time, signal.SIGKILL)
        self._cleanup_orphans(read_status(self.layout.status_file) or status)
        return names

    def status(self) -> PlatformStatus:
        status = read_status(self.layout.status_file)
        if status is None:
            return PlatformStatus(state="stopped")
        if status.state not in ("stopped", "failed") and not supervisor_alive(status):
            status.state = "stopped"
            status.message = "the supervisor is not running"
        return status

    def is_running(self) -> bool:
        return supervisor_alive(read_status(self.layout.status_file))

    def components(self) -> dict[str, ComponentHandle]:
        status = self.status()
        return {name: ComponentHandle(name, c.kind, c.port, Path(c.log), self) for name, c in status.components.items()}

    def component(self, name: str) -> ComponentHandle:
        handles = self.components()
        if name not in handles:
            raise PlatformError(f"no component named {name} (known: {', '.join(handles) or 'none'})")
        return handles[name]

    def client_env(self) -> dict[str, str]:
        if not self.layout.env_file.exists():
            raise PlatformError(f"{self.layout.env_file} does not exist: start the platform first")
        return read_env_file(self.layout.env_file)

    def s3_access(self) -> dict[str, str]:
        """Operator access to the S3 emulator (endpoint, credentials, CA) for inspection and
        tests; in ``proxied`` mode clients never get these (only the server talks to S3)."""
        meta = self.metadata()
        ports = meta.get("ports")
        if not isinstance(ports, dict):
            raise PlatformError("the platform has not been started in this state dir")
        secrets = load_or_create(self.layout.secrets_file)
        return {
            "endpoint_url": f"https://{comp.LOOPBACK}:{ports['s3']}",
            "bucket": comp.BUCKET,
            "region": comp.REGION,
            "aws_access_key_id": secrets.aws_access_key_id,
            "aws_secret_access_key": secrets.aws_secret_access_key,
            "ca_bundle": str(self.layout.ca_cert),
        }

    def s3_client(self) -> Any:
        """A boto3 S3 client on the emulator with :meth:`s3_access`, TLS verified by the local CA."""
        import boto3

        s3 = self.s3_access()
        return boto3.client(
            "s3",
            endpoint_url=s3["endpoint_url"],
            region_name=s3["region"],
            aws_access_key_id=s3["aws_access_key_id"],
            aws_secret_access_key=s3["aws_secret_access_key"],
            verify=s3["ca_bundle"],
        )

    def database_params(
        self, database: str, *, role: Literal["migrator", "app"] = "migrator", via_pgbouncer: bool = False
    ) -> dict[str, str | int]:
        """libpq/psycopg2 keyword arguments (password included) for an operator's session:
        the migrator (owner) or the application role, directly with verify-full or through
        PgBouncer on loopback."""
        meta = self.metadata()
        ports = meta.get("ports")
        if not isinstance(ports, dict):
            raise PlatformError("the platform has not been started in this state dir")
        secrets = load_or_create(self.layout.secrets_file)
        settings = _ROLE_NAMES
        user = settings.migrator_role if role == "migrator" else settings.app_role
        password = secrets.db_superuser_password if role == "migrator" else secrets.db_app_password
        params: dict[str, str | int] = {"host": comp.LOOPBACK, "dbname": database, "user": user, "password": password}
        if via_pgbouncer:
            params.update(port=int(ports["pgbouncer"]), sslmode="disable")
        else:
            params.update(port=int(ports["postgres"]), sslmode="verify-full", sslrootcert=str(self.layout.ca_cert))
        return params

    def metadata(self) -> dict[str, object]:
        """Non-secret facts of the last start: options, ports, versions, URL."""
        try:
            data: dict[str, object] = json.loads(self.layout.platform_file.read_text())
        except FileNotFoundError:
            return {}
        return data

    def nginx_config_test(self) -> subprocess.CompletedProcess[str]:
        """Run ``nginx -t`` on the rendered config, as the user nginx runs as."""
        binaries = find_binaries(self.options.pg_bin_dir)
        svc = service_user(self.options.service_user)
        who = identity_for(svc)
        # stdout is /dev/null: the config logs to /dev/stdout, which nginx reopens, and a pipe
        # created by root could not be reopened by the service user. nginx -t reports on stderr.
        return subprocess.run(
            list(comp.nginx_command(binaries, self.layout, test=True)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
            user=who.user,
            group=who.group,
            extra_groups=who.extra_groups,
        )

    def __enter__(self) -> LocalPlatform:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- start, step by step -------------------------------------------------------------------
    def _already_running(self, running: PlatformStatus | None, began: float) -> PlatformInfo:
        meta = self.metadata()
        if meta.get("options") != self.options.fingerprint():
            raise PlatformError(
                f"a platform with different options already runs in {self.layout.root}; "
                "stop it first (`python -m localplatform down`)"
            )
        wanted = self.options.ports
        ports = meta.get("ports")
        if isinstance(ports, dict) and any(ports.get(k) != v for k, v in wanted.items()):
            raise PlatformError(f"the platform in {self.layout.root} runs on other ports ({ports}); stop it first")
        self.progress(f"already running (supervisor pid {running.supervisor_pid if running else '?'})")
        self._wait_ready(began)
        return self._info(began, [])

    def _prepare(self) -> tuple[comp.Context, list[str]]:
        opts, layout = self.options, self.layout
        problems = option_problems(opts)
        if problems:
            raise PlatformError("; ".join(problems))
        if re.search(r"[\s'\"\\;#$`]", str(layout.root)):
            raise PlatformError(
                f"the state dir path {str(layout.root)!r} must not contain spaces, quotes or ;#$`\\ "
                "(they are written unquoted into nginx and PgBouncer configs)"
            )
        binaries = find_binaries(opts.pg_bin_dir)
        mlflow_python = self._check_mlflow(opts.mlflow_python or Path(sys.executable))
        me, svc = current_user(), service_user(opts.service_user)
        notes = self._make_state_dir(me, svc)
        layout = self.layout  # _make_state_dir decides where the service user's files live
        previous = self.metadata().get("ports")
        previous_ports = {k: int(v) for k, v in previous.items()} if isinstance(previous, dict) else {}
        unknown = set(opts.ports) - set(PORT_NAMES)
        if unknown:
            raise PlatformError(f"unknown port name(s) {sorted(unknown)}; known: {', '.join(PORT_NAMES)}")
        names = [n for n in PORT_NAMES if opts.pooler == "pgbouncer" or not n.startswith("pgbouncer")]
        ports, port_notes = allocate(names, opts.ports, previous_ports)
        notes += port_notes
        secrets = load_or_create(layout.secrets_file)
        self.progress("preparing certificates")
        make_dir(layout.ca_dir, me, 0o755)
        ensure_ca(binaries.openssl, layout.ca_cert, layout.ca_key)
        write_client_bundle(layout.ca_cert, layout.client_ca_bundle)
        write_file(layout.svc_ca_cert, layout.ca_cert.read_bytes(), svc, 0o644)
        ctx = comp.Context(opts, layout, binaries, secrets, ports, me, svc, mlflow_python)
        return ctx, notes

    def _make_state_dir(self, me: RunAs, svc: RunAs) -> list[str]:
        """Create the state dir; decide where the service user's files live.

        Normally in ``<state>/svc`` (the state dir gets mode 0711: the service user may traverse
        it, not list it). If the service user cannot reach the state dir at all — a clone under
        ``/root`` — its files go to ``/var/lib/mlflow-platform-local/<id>`` and ``<state>/svc``
        links there, rather than opening up the user's home directory.
        """
        notes: list[str] = []
        root = self.layout.root
        blocked = None if svc.is_current else unreachable_ancestor(root, svc)
        svc_root = None
        if blocked is not None:
            svc_root = EXTERNAL_SVC_BASE / hashlib.sha256(str(root).encode()).hexdigest()[:16]
            notes.append(f"the service user '{svc.name}' cannot enter {blocked}; its files live in {svc_root}")
        self.layout = StateLayout(root, svc_root)
        layout = self.layout
        make_dir(root, me, 0o711 if not svc.is_current and svc_root is None else 0o700)
        for directory in (layout.logs, layout.run, layout.control_dir):
            # logs: the service user may traverse (nginx reopens its log by path), not list;
            # each log is 0600 (users.open_log).
            make_dir(directory, me, 0o711 if directory == layout.logs else 0o700)
        make_dir(layout.mlflow_dir, me)
        if svc_root is not None:
            make_dir(EXTERNAL_SVC_BASE, me, 0o711)
            marker = svc_root / ".state-dir"
            if svc_root.exists() and (not marker.exists() or marker.read_text() != str(root)):
                raise PlatformError(f"{svc_root} belongs to another state dir; remove it to continue")
            if not layout.svc_link.is_symlink() and svc_root.exists() and not (root / "secrets.json").exists():
                shutil.rmtree(svc_root)  # left by an earlier state dir at this path that was deleted
            make_dir(svc_root, svc, 0o700)
            write_file(marker, str(root), svc, 0o600)
            if not layout.svc_link.is_symlink():
                layout.svc_link.symlink_to(svc_root)
        else:
            make_dir(layout.svc, svc, 0o700)
        return notes

    def _check_mlflow(self, python: Path) -> Path:
        if not python.exists():
            raise PlatformError(f"--mlflow-python {python} does not exist")
        result = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('mlflow'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise PlatformError(
                f"{python} has no MLflow: install it with "
                f"`{python} -m pip install 'mlflow[auth]' psycopg2-binary boto3`"
            )
        version = result.stdout.strip()
        if self.options.mlflow_version and version != self.options.mlflow_version:
            raise PlatformError(
                f"MLflow {self.options.mlflow_version} was requested but {python} has {version}: create a "
                f"virtualenv with `pip install 'mlflow[auth]=={self.options.mlflow_version}' psycopg2-binary boto3` "
                "and pass its interpreter with --mlflow-python"
            )
        parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
        if parts < MINIMUM_MLFLOW_VERSION:
            minimum = ".".join(map(str, MINIMUM_MLFLOW_VERSION))
            raise PlatformError(f"MLflow {version} is too old for this platform (needs >= {minimum}, no default admin)")
        if self.options.store == "set-based":
            self._check_tracking_store(python)
        if self.options.auth == "ours" and self.options.server == "platform" and self.options.mlflow_python is None:
            self._check_server_app(python)
        return python

    def _check_server_app(self, python: Path) -> None:
        """The rendered command selects the platform's app; without it ``mlflow server`` fails late."""
        probe = (
            "import importlib.metadata as m; "
            f"print(any(e.name == {PLATFORM_APP!r} for e in m.entry_points(group='mlflow.app')))"
        )
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
        if result.stdout.strip() != "True":
            raise PlatformError(
                f"{python} lacks the MLflow app {PLATFORM_APP!r} the server command selects: install it with "
                f"`{python} -m pip install --no-deps {PLATFORM_APP_SOURCE}` (make setup does)"
            )

    def _check_tracking_store(self, python: Path) -> None:
        """The rendered tracking URI selects the store plugin; without it MLflow cannot open it."""
        probe = (
            "import importlib.metadata as m; "
            f"print(any(e.name == {STORE_SCHEME!r} for e in m.entry_points(group='mlflow.tracking_store')))"
        )
        result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
        if result.stdout.strip() != "True":
            raise PlatformError(
                f"{python} lacks the tracking-store plugin {STORE_SCHEME} that the tracking store's URI "
                f"names: install it with `{python} -m pip install --no-deps {STORE_SOURCE}` (make setup does)"
            )

    def _build_plan(self, ctx: comp.Context) -> Plan:
        self.progress("rendering configuration")
        tuning = comp.postgres_tuning(self.options)
        side = comp.render_local_server_side(ctx, tuning)
        client_env = self._client_env(ctx)
        write_env_file(self.layout.env_file, client_env)
        write_env_script(self.layout.env_script, client_env)
        steps = [comp.postgres_step(ctx, tuning)]
        if self.options.pooler == "pgbouncer":
            steps.append(comp.pgbouncer_step(ctx, side))
            steps.append(comp.pgbouncer_exporter_step(ctx, side))
        steps += comp.s3_steps(ctx)
        steps += comp.bootstrap_steps(ctx, side)
        steps.append(comp.mlflow_step(ctx, side))
        steps.append(comp.nginx_step(ctx, side))
        return Plan(tuple(steps))

    def _client_env(self, ctx: comp.Context) -> dict[str, str]:
        env = {"MLFLOW_TRACKING_URI": ctx.url}
        if self.options.auth != "off":
            env["MLFLOW_TRACKING_USERNAME"] = ADMIN_USERNAME
            env["MLFLOW_TRACKING_PASSWORD"] = ctx.secrets.admin_password
        env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(self.layout.ca_cert)
        env["REQUESTS_CA_BUNDLE"] = str(self.layout.client_ca_bundle)
        if self.options.access_mode == "direct":
            env["MLFLOW_S3_ENDPOINT_URL"] = ctx.s3_endpoint
            env.update(comp.aws_env(ctx, str(self.layout.client_ca_bundle)))
        return env

    def _write_metadata(self, ctx: comp.Context) -> None:
        b: Binaries = ctx.binaries
        meta = {
            "options": self.options.fingerprint(),
            "ports": ctx.ports,
            "url": ctx.url,
            "artifact_root": ctx.artifact_root,
            "versions": {
                "postgresql": b.pg_major,
                "pgbouncer": ".".join(map(str, b.pgbouncer_version)),
                "pg_bin": str(b.pg_bin),
            },
            "service_user": ctx.svc.name,
            "svc_root": str(self.layout.svc_root) if self.layout.svc_root else None,
        }
        write_file(self.layout.platform_file, json.dumps(meta, indent=2), ctx.me, 0o644)

    def _launch_supervisor(self) -> None:
        for stale in self.layout.control_dir.iterdir():
            stale.unlink()
        self.layout.status_file.unlink(missing_ok=True)
        log = open_log(self.layout.log("supervisor"))  # handed to the child
        try:
            self._launched = subprocess.Popen(
                [sys.executable, "-m", "localplatform.supervisor", str(self.layout.root)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(comp.PROJECT_ROOT),
                env={**os.environ, "PYTHONPATH": str(comp.PROJECT_ROOT), "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()

    def _wait_ready(self, began: float) -> None:
        deadline = time.monotonic() + self.options.start_timeout_s
        reported: dict[str, str] = {}
        while True:
            status = read_status(self.layout.status_file)
            if status is not None:
                for name, c in status.components.items():
                    if reported.get(name) != c.state and c.state in ("running", "done", "failed", "restarting"):
                        reported[name] = c.state
                        where = f" on 127.0.0.1:{c.port}" if c.port and c.state == "running" else ""
                        label = "started" if c.kind == "job" and c.state == "running" else c.state
                        self.progress(f"  {name:<14} {label}{where}  (+{time.monotonic() - began:.1f}s)")
                if status.state == "ready":
                    return
                if status.state == "failed":
                    raise PlatformError(f"start failed: {status.message}")
                if status.state in ("stopped", "stopping") or (status.supervisor_pid and not supervisor_alive(status)):
                    raise PlatformError(f"the supervisor stopped during start (see {self.layout.log('supervisor')})")
            if time.monotonic() > deadline:
                self.stop()
                self._stop_launched()
                raise PlatformError(
                    f"not ready after {self.options.start_timeout_s:g}s; logs are in {self.layout.logs}"
                )
            time.sleep(0.2)

    def _verify_endpoint(self, ctx: comp.Context) -> None:
        """End-to-end: TLS with our CA, then an authenticated API call, through nginx."""
        context = ssl.create_default_context(cafile=str(self.layout.ca_cert))
        url = f"{ctx.url}/api/2.0/mlflow/experiments/search?max_results=1"  # https, built by us
        request = urllib.request.Request(url)  # noqa: S310
        if self.options.auth != "off":
            token = base64.b64encode(f"{ADMIN_USERNAME}:{ctx.secrets.admin_password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(request, timeout=30, context=context) as response:  # noqa: S310
                if response.status != 200:
                    raise PlatformError(f"{ctx.url} answered {response.status} to an authenticated request")
        except urllib.error.URLError as error:
            raise PlatformError(f"{ctx.url} is not usable: {error}") from None

    def _info(self, began: float, notes: list[str]) -> PlatformInfo:
        meta = self.metadata()
        return PlatformInfo(
            url=str(meta.get("url", "")),
            env_file=self.layout.env_file,
            ca_cert=self.layout.ca_cert,
            username=ADMIN_USERNAME if self.options.auth != "off" else None,
            access_mode=self.options.access_mode,
            startup_seconds=time.monotonic() - began,
            notes=notes,
            env_script=self.layout.env_script,
            artifact_root=str(meta.get("artifact_root", "")),
        )

    # -- helpers -------------------------------------------------------------------------------
    def _control(self, name: str, action: str) -> None:
        if not self.is_running():
            raise PlatformError("the platform is not running")
        write_file(self.layout.control_dir / name, action, current_user(), 0o600)

    def _stop_launched(self) -> None:
        """The supervisor this object launched, by its own pid: ``stop()`` finds a supervisor
        through the status file, which a supervisor killed this early has not written yet."""
        launched = self._launched
        if launched is None or launched.poll() is not None:
            return
        launched.terminate()
        try:
            launched.wait(timeout=90)
        except subprocess.TimeoutExpired:
            launched.kill()
            launched.wait(timeout=10)
        self._cleanup_orphans(read_status(self.layout.status_file))

    def _remove_state_dir(self) -> None:
        relocated = self.layout.svc_root
        shutil.rmtree(self.layout.root, ignore_errors=True)
        if relocated is not None and relocated.parent == EXTERNAL_SVC_BASE:
            shutil.rmtree(relocated, ignore_errors=True)

    def _cleanup_orphans(self, status: PlatformStatus | None) -> None:
        """Components left by a supervisor that died (SIGKILL, OOM): stop them by recorded pid."""
        if status is None:
            return
        for c in status.components.values():
            if is_alive(c.pid, c.start_time) and c.pid is not None:
                try:
                    os.killpg(c.pid, signal.SIGTERM)
                except (ProcessLookupError, PermissionError):
                    continue
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and is_alive(c.pid, c.start_time):
                    time.sleep(0.1)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(c.pid, signal.SIGKILL)

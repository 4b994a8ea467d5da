"""The local-platform API: start, stop and inspect the whole topology in one state directory.

    platform = LocalPlatform(PlatformOptions(state_dir=Path(".local")))
    info = platform.start()          # idempotent; returns when HTTPS answers and auth works
    platform.component("pgbouncer").kill()   # the supervisor restarts it
    platform.client_env()            # what mlflow.env contains
    platform.stop()

``start()`` prepares every file (rendered by ``rendering/``), writes the supervisor's plan,
launches the supervisor detached (it outlives this process, like ``make up`` needs) and waits
for it to report the platform ready, then checks the HTTPS endpoint itself.

The jobs it delegates, one module each: ``installation`` (the MLflow it runs from), ``state_dir``
(creating and removing the state directory), ``target`` (the server side, rendered once),
``steps`` (one supervisor step per component), ``handles`` (what it hands back).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rendering.names import ADMIN_USERNAME, APP_ROLE, MIGRATOR_ROLE

from .binaries import Binaries, find_binaries
from .clientenv import read_env_file, write_env_file, write_env_script
from .context import BUCKET, LOOPBACK, PROJECT_ROOT, REGION, Context, aws_env
from .errors import PlatformError
from .handles import ComponentHandle, PlatformInfo
from .installation import check_mlflow
from .layout import StateLayout
from .options import PORT_NAMES, PlatformOptions, option_problems
from .plan import Plan, plan_to_json
from .ports import allocate
from .secrets_store import load_or_create
from .state_dir import make_state_dir, remove_state_dir, state_layout
from .status import (
    PlatformStatus,
    is_alive,
    read_status,
    signal_if_alive,
    supervisor_alive,
)
from .steps import (
    bootstrap_steps,
    mlflow_step,
    nginx_command,
    nginx_step,
    pgbouncer_exporter_step,
    pgbouncer_step,
    postgres_step,
    s3_steps,
)
from .target import postgres_tuning, render_local_server_side
from .tls import ensure_ca, write_client_bundle
from .users import (
    current_user,
    identity_for,
    make_dir,
    open_log,
    service_user,
    write_file,
)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


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
                remove_state_dir(self.layout)
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
            # Wait for the process itself: the supervisor clears its pid from the status file
            # before it has finished exiting, so the file alone would let `down` return early.
            pid, start_time = status.supervisor_pid, status.supervisor_start_time
            signal_if_alive(pid, start_time, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and is_alive(pid, start_time):
                time.sleep(0.2)
            status = read_status(self.layout.status_file) or status
            if signal_if_alive(pid, start_time, signal.SIGKILL):
                while is_alive(pid, start_time) and time.monotonic() < deadline + 10:
                    time.sleep(0.1)
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
            "endpoint_url": f"https://{LOOPBACK}:{ports['s3']}",
            "bucket": BUCKET,
            "region": REGION,
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
        user = MIGRATOR_ROLE if role == "migrator" else APP_ROLE
        password = secrets.db_superuser_password if role == "migrator" else secrets.db_app_password
        params: dict[str, str | int] = {"host": LOOPBACK, "dbname": database, "user": user, "password": password}
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
            list(nginx_command(binaries, self.layout, test=True)),
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

    def _prepare(self) -> tuple[Context, list[str]]:
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
        mlflow_python = check_mlflow(opts.mlflow_python or Path(sys.executable), opts)
        me, svc = current_user(), service_user(opts.service_user)
        # Where the service user's files live is decided first: a failed start removes them.
        self.layout, notes = state_layout(layout.root, svc)
        layout = self.layout
        make_state_dir(layout, me, svc)
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
        ctx = Context(opts, layout, binaries, secrets, ports, me, svc, mlflow_python)
        return ctx, notes

    def _build_plan(self, ctx: Context) -> Plan:
        self.progress("rendering configuration")
        tuning = postgres_tuning(self.options)
        side = render_local_server_side(ctx, tuning)
        client_env = self._client_env(ctx)
        write_env_file(self.layout.env_file, client_env)
        write_env_script(self.layout.env_script, client_env)
        steps = [postgres_step(ctx, tuning)]
        if self.options.pooler == "pgbouncer":
            steps.append(pgbouncer_step(ctx, side))
            steps.append(pgbouncer_exporter_step(ctx, side))
        steps += s3_steps(ctx)
        steps += bootstrap_steps(ctx, side)
        steps.append(mlflow_step(ctx, side))
        steps.append(nginx_step(ctx, side))
        return Plan(tuple(steps))

    def _client_env(self, ctx: Context) -> dict[str, str]:
        env = {"MLFLOW_TRACKING_URI": ctx.url}
        if self.options.auth != "off":
            env["MLFLOW_TRACKING_USERNAME"] = ADMIN_USERNAME
            env["MLFLOW_TRACKING_PASSWORD"] = ctx.secrets.admin_password
        env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(self.layout.ca_cert)
        env["REQUESTS_CA_BUNDLE"] = str(self.layout.client_ca_bundle)
        if self.options.access_mode == "direct":
            env["MLFLOW_S3_ENDPOINT_URL"] = ctx.s3_endpoint
            env.update(aws_env(ctx, str(self.layout.client_ca_bundle)))
        return env

    def _write_metadata(self, ctx: Context) -> None:
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
                cwd=str(PROJECT_ROOT),
                env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "PYTHONUNBUFFERED": "1"},
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

    def _verify_endpoint(self, ctx: Context) -> None:
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

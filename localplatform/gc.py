"""``mlflow gc`` on the local target: the CronJob's command (``rendering.gc.render_gc``) with the
local connection facts — through PgBouncer as the application role, like the server, and the
S3 emulator with the platform's credentials where the pod's IRSA role would be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rendering.database_bootstrap import PostgresEndpoint, sqlalchemy_url
from rendering.gc import GcLaunch, GcSecrets, GcSettings, render_gc
from rendering.mlflow_server import S3Client
from rendering.names import ADMIN_USERNAME, APP_ROLE, TRACKING_DATABASE
from rendering.server_side import PGBOUNCER_HOST

from .context import LOOPBACK, REGION
from .errors import PlatformError, raise_if_failed
from .platform import LocalPlatform
from .secrets_store import load_or_create

GC_TIMEOUT_S = 300


def gc_launch(platform: LocalPlatform, older_than: str) -> GcLaunch:
    meta = platform.metadata()
    ports, options = meta.get("ports"), meta.get("options")
    if not isinstance(ports, dict) or not isinstance(options, dict):
        raise PlatformError("the platform has not been started in this state dir")
    layout = platform.layout
    secrets = load_or_create(layout.secrets_file)
    if options.get("pooler") == "pgbouncer":
        endpoint = PostgresEndpoint(PGBOUNCER_HOST, int(ports["pgbouncer"]), "disable")
    else:
        endpoint = PostgresEndpoint(LOOPBACK, int(ports["postgres"]), "verify-full", str(layout.ca_cert))
    python = str(options.get("mlflow_python") or sys.executable)
    access_mode = str(options.get("access_mode"))
    proxied = access_mode == "proxied"
    try:
        launch = render_gc(
            GcSettings(
                older_than=older_than,
                backend_store_uri=sqlalchemy_url(endpoint, TRACKING_DATABASE, APP_ROLE, "mlflow-gc"),
                access_mode="proxied" if proxied else "direct",
                mlflow_command=(python, "-m", "mlflow"),
                pgpassfile=str(layout.server_pgpass),
                tracking_uri=str(meta["url"]) if proxied else None,
                s3=S3Client(
                    endpoint_url=f"https://{LOOPBACK}:{ports['s3']}",
                    ca_bundle=str(layout.ca_cert),
                    region=REGION,
                ),
                tracking_server_ca=str(layout.ca_cert) if proxied else None,
            ),
            GcSecrets(ADMIN_USERNAME, secrets.admin_password) if proxied else None,
        )
    except ValueError as error:
        raise PlatformError(f"--older-than: {error}") from None
    if proxied:
        return launch
    # Where the pod's IRSA role would be: the emulator's credentials.
    aws = {"AWS_ACCESS_KEY_ID": secrets.aws_access_key_id, "AWS_SECRET_ACCESS_KEY": secrets.aws_secret_access_key}
    return GcLaunch(launch.argv, launch.env, {**launch.secret_env, **aws})


def run_gc(platform: LocalPlatform, older_than: str) -> subprocess.CompletedProcess[str]:
    """Run gc once against the running platform; PlatformError (with gc's last line) on failure."""
    if not platform.is_running():
        raise PlatformError("the platform is not running: start it first")
    launch = gc_launch(platform, older_than)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(platform.layout.mlflow_dir)}
    result = subprocess.run(
        list(launch.argv),
        env={**env, **launch.full_env()},
        cwd=str(Path(platform.layout.mlflow_workdir)),
        capture_output=True,
        text=True,
        timeout=GC_TIMEOUT_S,
        check=False,
    )
    raise_if_failed(result, "mlflow gc")
    return result

"""Where everything lives inside a state directory, in one place.

``svc/`` belongs to the unprivileged service user (PostgreSQL, PgBouncer and nginx refuse to
run as root, or should not); everything else belongs to the invoking user. When that user cannot
reach the state dir (a clone under ``/root``), ``svc/`` is a symlink to a directory it can reach. Secrets are files
with mode 0600: ``secrets.json``, ``mlflow.env``, ``mlflow.sh``, ``run/plan.json``, the pgpass files, the auth
ini, PgBouncer's auth file and every private key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateLayout:
    root: Path
    svc_root: Path | None = None
    """Where the service user's files live when it cannot reach ``root`` (see
    ``LocalPlatform``); None: ``<root>/svc``."""

    # invoking user -----------------------------------------------------------------------
    @property
    def platform_file(self) -> Path:
        """Options, ports and versions of the last start (no secrets)."""
        return self.root / "platform.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def env_file(self) -> Path:
        return self.root / "mlflow.env"

    @property
    def env_script(self) -> Path:
        """The same settings as ``export`` lines: ``. .local/mlflow.sh`` (``localplatform.clientenv``)."""
        return self.root / "mlflow.sh"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def plan_file(self) -> Path:
        return self.run / "plan.json"

    @property
    def status_file(self) -> Path:
        return self.run / "status.json"

    @property
    def supervisor_pid_file(self) -> Path:
        """For operators; the status file (pid + start time) is what the code trusts."""
        return self.run / "supervisor.pid"

    @property
    def control_dir(self) -> Path:
        return self.run / "control"

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def client_ca_bundle(self) -> Path:
        """The local CA plus the public roots (certifi): what REQUESTS_CA_BUNDLE points at, so
        sourcing mlflow.env does not break other HTTPS clients in the same shell."""
        return self.ca_dir / "client-bundle.pem"

    @property
    def mlflow_dir(self) -> Path:
        return self.root / "mlflow"

    @property
    def auth_ini(self) -> Path:
        return self.mlflow_dir / "auth.ini"

    @property
    def teams_file(self) -> Path:
        """The team-ownership document (``rendering.ownership``), re-read by the server on change."""
        return self.mlflow_dir / "teams.json"

    @property
    def server_pgpass(self) -> Path:
        return self.mlflow_dir / "server.pgpass"

    @property
    def migrator_pgpass(self) -> Path:
        return self.mlflow_dir / "migrator.pgpass"

    @property
    def bootstrap_file(self) -> Path:
        return self.mlflow_dir / "bootstrap.json"

    @property
    def mlflow_workdir(self) -> Path:
        """Working directory of ``mlflow server`` (MLflow's default sqlite auth DB lands here)."""
        return self.mlflow_dir / "work"

    @property
    def s3_dir(self) -> Path:
        return self.root / "s3"

    @property
    def bucket_file(self) -> Path:
        return self.s3_dir / "bucket.json"

    @property
    def s3_state_file(self) -> Path:
        """The S3 emulator's objects, kept across restarts (``localplatform.s3_server``)."""
        return self.s3_dir / "state.pickle"

    # service user --------------------------------------------------------------------------
    @property
    def svc(self) -> Path:
        return self.svc_root or self.root / "svc"

    @property
    def svc_link(self) -> Path:
        return self.root / "svc"

    @property
    def svc_ca_cert(self) -> Path:
        """A copy of the CA certificate the service user can read (PgBouncer verifies PostgreSQL)."""
        return self.svc / "ca.crt"

    @property
    def pg_dir(self) -> Path:
        return self.svc / "postgres"

    @property
    def pg_data(self) -> Path:
        return self.pg_dir / "data"

    @property
    def pg_tls(self) -> Path:
        return self.pg_dir / "tls"

    @property
    def pgbouncer_dir(self) -> Path:
        return self.svc / "pgbouncer"

    @property
    def nginx_dir(self) -> Path:
        return self.svc / "nginx"

"""The tracking server pod on EKS seen from inside: its names, ports and paths, and the
:class:`TargetParameters` that make ``render_server_side`` render for it.

Pure (no Pulumi import): the parity test (tests/unit/test_parity.py) compares this target with the
local one without loading a provider SDK, and ``components.tracking_server`` and
``components.pod_toolkit`` take every name, port and path from here, so each is written once.
"""

from __future__ import annotations

from .images import PGBOUNCER_VERSION
from .mlflow_server import S3Client
from .ownership import TEAMS_FILE_NAME
from .server_side import TargetParameters

APP = "mlflow"
"""``app.kubernetes.io/name`` of every workload, and the tracking server's object names."""
UID = 10001
"""The image's user (images/tracking-server/Dockerfile); every container runs as it."""
MLFLOW_PORT = 5000
PGBOUNCER_PORT = 6432
PROXY_PORT = 8080
SERVICE_PORT = 80
POD_ALL_INTERFACES = "0.0.0.0"
"""Bind address of the pod's servers that the kubelet probes on the pod IP."""
PGBOUNCER_METRICS_PORT = 9127
"""The PgBouncer exporter sidecar's port (its default)."""
METRICS_DIR = "/run/mlflow-metrics"
"""In-memory emptyDir: the Prometheus multiprocess directory every uvicorn worker writes to."""
POD_IP_HOST = "$(POD_IP)"
"""Kubernetes expands it in the command from the container's env (the pod's IP): Prometheus
scrapes ``<pod IP>:8080`` and sends that as Host, which the Host check must admit."""
RDS_CA_IN_IMAGE = "/etc/ssl/rds/global-bundle.pem"
RUN_DIR = "/run/mlflow"
"""In-memory emptyDir where the init container stages 0600 secrets and the CA."""
SECRETS_DIR = "/secrets"
TEAMS_CONFIG_DIR = "/etc/mlflow-platform/teams"
"""The team-ownership ConfigMap, mounted as a directory (not ``subPath``: only a directory mount
sees the kubelet's update of the ConfigMap, which the server app re-reads without a restart).
kubernetes.io/docs/concepts/configuration/configmap/#mounted-configmaps-are-updated-automatically:
"A container using a ConfigMap as a subPath volume mount will not receive ConfigMap updates";
the kubelet's atomic writer swaps the ``..data`` symlink (kubernetes/kubernetes#50345), so the
app sees a new inode at the same path."""


def pod_target(
    *,
    host: str,
    workers: int,
    max_replicas: int,
    database_host: str,
    database_port: int,
    max_connections: int,
    artifact_root: str,
    region: str,
    namespace: str,
) -> TargetParameters:
    """What is specific to a pod on EKS (the local target builds its own). ``host``, ``workers``
    and ``max_replicas`` are the stack's ``server`` section's (``ServerConfig``)."""
    service_names = (APP, f"{APP}.{namespace}", f"{APP}.{namespace}.svc", f"{APP}.{namespace}.svc.cluster.local")
    return TargetParameters(
        database_host=database_host,
        database_port=database_port,
        database_ca_file=f"{RUN_DIR}/rds-ca.pem",
        pgbouncer_port=PGBOUNCER_PORT,
        pgbouncer_version=PGBOUNCER_VERSION,
        pgbouncer_auth_file=f"{RUN_DIR}/userlist.txt",
        server_bind_host=POD_ALL_INTERFACES,
        server_port=MLFLOW_PORT,
        public_host_names=(host, *service_names, POD_IP_HOST),
        public_ports=(443, SERVICE_PORT, PROXY_PORT),
        auth_config_path=f"{RUN_DIR}/auth.ini",
        server_pgpassfile=f"{RUN_DIR}/server.pgpass",
        migrator_pgpassfile=f"{RUN_DIR}/migrator.pgpass",
        artifact_root=artifact_root,
        s3=S3Client(region=region),
        mlflow_command=("mlflow",),
        python_command=("python",),
        workers=workers,
        max_replicas=max_replicas,
        database_max_connections=max_connections,
        prometheus_dir=METRICS_DIR,
        # All of the pod's interfaces, not loopback: the kubelet probes the sidecar on the pod IP
        # (see TargetParameters.pgbouncer_listen_host); the server NetworkPolicy admits no peer
        # to PGBOUNCER_PORT, so nothing outside the pod reaches it.
        pgbouncer_listen_host=POD_ALL_INTERFACES,
        teams_file=f"{TEAMS_CONFIG_DIR}/{TEAMS_FILE_NAME}",
    )

"""The server Deployment. Pod: an init container that stages secrets (libpq wants 0600 password
files) and the RDS CA; PgBouncer as a native sidecar (init container with ``restartPolicy:
Always``: it starts before MLflow and stops after it); MLflow itself; an nginx admission proxy
that caps in-flight requests at the pool plan's limit and answers the excess with a retryable
503; and the PgBouncer exporter."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.outputs import all_named
from components.pod_toolkit import (
    Resources,
    api_object,
    container,
    pod_spec,
    run_volume,
    scratch_volume,
    secrets_volume,
    stage_secrets_container,
)
from rendering.eks_pod import (
    APP,
    METRICS_DIR,
    MLFLOW_PORT,
    PGBOUNCER_METRICS_PORT,
    PGBOUNCER_PORT,
    PROXY_PORT,
    RUN_DIR,
    TEAMS_CONFIG_DIR,
)
from rendering.images import PGBOUNCER_EXPORTER_IMAGE, PGBOUNCER_IMAGE, PROXY_IMAGE
from stackconfig.schema import RotationConfig, ServerConfig

from .common import (
    EXPORTER_DSN_KEY,
    PGBOUNCER_CONFIG_MAP,
    PROXY_CONFIG_MAP,
    SECRET_ENV,
    SERVER_LABELS,
    SERVER_SECRET,
    TEAMS_CONFIG_MAP,
    Rendered,
    public,
)
from .scaling import has_autoscaler

PGBOUNCER_CONFIG_DIR = "/etc/pgbouncer"
PROXY_CONFIG = "/etc/nginx/nginx.conf"
CREDENTIALS_REVISION = "mlflow-platform/credentials-revision"
"""Pod-template annotation naming the generations of the credentials the pods read at start:
raising one (``mlflow-platform:rotation``) rolls the pods, and nothing secret is in it."""
STAGED_FILES = ("auth.ini", "server.pgpass", "userlist.txt")
"""The server Secret's files, staged 0600 into the run dir."""


def _containers(settings: ServerConfig, rendered: Rendered) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The pod's init containers (stage-secrets, the PgBouncer sidecar) and containers."""
    health = {"httpGet": {"path": "/health", "port": "mlflow"}, "timeoutSeconds": 3}
    secret_env = [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": SERVER_SECRET, "key": key}}} for key in SECRET_ENV
    ]
    pod_ip = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    env = public(
        rendered,
        lambda r: [pod_ip] + [{"name": k, "value": v} for k, v in sorted(r.launch.env.items())] + secret_env,
    )
    small = Resources("50m", "64Mi").spec()
    pgbouncer = container(
        "pgbouncer",
        PGBOUNCER_IMAGE,
        small,
        # Native sidecar (Kubernetes >= 1.29): started before MLflow, stopped after it.
        restartPolicy="Always",
        command=["pgbouncer", f"{PGBOUNCER_CONFIG_DIR}/pgbouncer.ini"],
        ports=[{"name": "pgbouncer", "containerPort": PGBOUNCER_PORT, "protocol": "TCP"}],
        startupProbe={"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 2, "failureThreshold": 30},
        livenessProbe={"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 10},
        readinessProbe={"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 5},
        volumeMounts=[
            {"name": "pgbouncer-config", "mountPath": PGBOUNCER_CONFIG_DIR, "readOnly": True},
            {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
        ],
    )
    stage = stage_secrets_container(settings.image, STAGED_FILES, small, rds_ca=True)
    mlflow = container(
        "mlflow",
        settings.image,
        Resources(settings.cpu, settings.memory).spec(),
        command=public(rendered, lambda r: list(r.launch.argv)),
        env=env,
        ports=[{"name": "mlflow", "containerPort": MLFLOW_PORT, "protocol": "TCP"}],
        startupProbe={**health, "periodSeconds": 5, "failureThreshold": 36},
        livenessProbe={**health, "periodSeconds": 10, "failureThreshold": 6},
        readinessProbe={**health, "periodSeconds": 5, "failureThreshold": 3},
        volumeMounts=[
            {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
            # Artifact uploads are spooled here in proxied mode; sized per stack.
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "metrics", "mountPath": METRICS_DIR},
            {"name": "teams-config", "mountPath": TEAMS_CONFIG_DIR, "readOnly": True},
        ],
    )
    exporter = container(
        "pgbouncer-exporter",
        PGBOUNCER_EXPORTER_IMAGE,
        small,
        args=[f"--web.listen-address=:{PGBOUNCER_METRICS_PORT}", "--web.telemetry-path=/metrics"],
        # A stats_users login (SHOW only) over loopback; the DSN carries its password.
        env=[
            {
                "name": EXPORTER_DSN_KEY,
                "valueFrom": {"secretKeyRef": {"name": SERVER_SECRET, "key": EXPORTER_DSN_KEY}},
            }
        ],
        ports=[{"name": "pgb-metrics", "containerPort": PGBOUNCER_METRICS_PORT, "protocol": "TCP"}],
        livenessProbe={"tcpSocket": {"port": "pgb-metrics"}, "periodSeconds": 10},
        readinessProbe={"tcpSocket": {"port": "pgb-metrics"}, "periodSeconds": 10},
    )
    proxy = container(
        "admission-proxy",
        PROXY_IMAGE,
        small,
        command=["nginx", "-c", PROXY_CONFIG],
        ports=[{"name": "proxy", "containerPort": PROXY_PORT, "protocol": "TCP"}],
        livenessProbe={
            "httpGet": {"path": "/health", "port": "proxy"},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
        readinessProbe={"httpGet": {"path": "/health", "port": "proxy"}, "periodSeconds": 5, "timeoutSeconds": 3},
        volumeMounts=[
            {"name": "proxy-config", "mountPath": PROXY_CONFIG, "subPath": "nginx.conf", "readOnly": True},
            {"name": "proxy-tmp", "mountPath": "/tmp"},
        ],
    )
    return [stage, pgbouncer], [mlflow, proxy, exporter]


def _pod(settings: ServerConfig, rendered: Rendered) -> dict[str, Any]:
    init_containers, containers = _containers(settings, rendered)
    spec = pod_spec(
        settings.service_account,
        init_containers=init_containers,
        containers=containers,
        volumes=[
            secrets_volume(SERVER_SECRET, STAGED_FILES),
            run_volume("16Mi"),
            scratch_volume(f"{settings.tmp_size_gib}Gi"),
            scratch_volume("1Gi", "proxy-tmp"),
            {"name": "metrics", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
            {"name": "pgbouncer-config", "configMap": {"name": PGBOUNCER_CONFIG_MAP}},
            {"name": "proxy-config", "configMap": {"name": PROXY_CONFIG_MAP}},
            {"name": "teams-config", "configMap": {"name": TEAMS_CONFIG_MAP}},
        ],
    )
    return {
        **spec,
        "terminationGracePeriodSeconds": 60,
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": dict(SERVER_LABELS)},
            }
        ],
    }


def deployment(
    name: str,
    settings: ServerConfig,
    rendered: Rendered,
    rotation: RotationConfig,
    opts: pulumi.ResourceOptions,
    depends_on: Sequence[pulumi.Resource],
) -> k8s.apps.v1.Deployment:
    """``depends_on``: everything the pods mount or read by name (Pulumi cannot infer those edges)."""
    config_hash = all_named(
        pgbouncer_ini=public(rendered, lambda r: r.pgbouncer_ini), argv=public(rendered, lambda r: r.launch.argv)
    ).apply(lambda v: hashlib.sha256(repr([v["pgbouncer_ini"], v["argv"]]).encode()).hexdigest()[:16])
    return k8s.apps.v1.Deployment(
        f"{name}-deployment",
        metadata={
            "name": APP,
            "namespace": settings.namespace,
            "labels": dict(SERVER_LABELS),
            "annotations": {
                # Justified exceptions to the checkov scan (tests/cloud/test_tracking_server.py):
                "checkov.io/skip1": "CKV_K8S_35=MLflow reads its Flask secret key and admin bootstrap password, "
                "and the PgBouncer exporter its DSN, only from environment variables (secretKeyRef); every "
                "other secret is a mounted file",
                "checkov.io/skip2": "CKV_K8S_43=the sidecar images (rendering/images.py) are pinned by exact "
                "version; no digest can be verified offline, so stacks pin digests in config",
            },
        },
        spec=api_object(
            {
                "replicas": settings.replicas,
                "selector": {"matchLabels": dict(SERVER_LABELS)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    # Restart pods when rendered configuration changes.
                    "metadata": {
                        "labels": dict(SERVER_LABELS),
                        "annotations": {
                            "mlflow-platform/config-revision": config_hash,
                            # Secrets are read at start (env, staged files): a rotation rolls the pods.
                            CREDENTIALS_REVISION: f"database={rotation.database_password},"
                            f"flask={rotation.flask_secret_key}",
                        },
                    },
                    "spec": _pod(settings, rendered),
                },
            }
        ),
        opts=pulumi.ResourceOptions.merge(
            opts,
            pulumi.ResourceOptions(
                depends_on=list(depends_on),
                # With an HPA, the replica count is the autoscaler's: not drift.
                ignore_changes=["spec.replicas"] if has_autoscaler(settings) else None,
            ),
        ),
    )

"""The MLflow tracking server on a given EKS cluster.

Pod: an init container that stages secrets (libpq wants 0600 password files) and the RDS CA;
PgBouncer as a native sidecar (init container with ``restartPolicy: Always``: it starts before
MLflow and stops after it); MLflow itself; and an nginx admission proxy that caps in-flight
requests at the pool plan's limit and answers the excess with a retryable 503. Before the
Deployment, a migration Job (named after the MLflow version, so a bump runs it again)
bootstraps the auth database and application role and migrates both databases straight to RDS.

Every file and command comes from ``rendering.server_side.render_server_side`` — the function
the local target runs — with only the :class:`TargetParameters` of a pod.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from rendering.capacity import HPA_TARGET_CPU_UTILISATION_PERCENT
from rendering.client import TRAINING_CLIENT_RETRY
from rendering.images import PGBOUNCER_EXPORTER_IMAGE, PGBOUNCER_IMAGE, PGBOUNCER_VERSION, PROXY_IMAGE
from rendering.ingress import IngressSettings, ingress_nginx_annotations
from rendering.mlflow_server import ArtifactAccessMode, S3Client
from rendering.ownership import TEAMS_FILE_NAME, TeamOwnership
from rendering.proxy import ProxySite, render_proxy_conf
from rendering.server_side import (
    PlatformSecrets,
    PlatformSettings,
    ServerSide,
    TargetParameters,
    render_server_side,
)
from stackconfig.schema import MonitoringConfig, RotationConfig, ServerConfig, ServiceAccountRef

APP = "mlflow"
UID = 10001
"""The image's user (images/tracking-server/Dockerfile); every container runs as it."""
MLFLOW_PORT = 5000
PGBOUNCER_PORT = 6432
PROXY_PORT = 8080
POD_ALL_INTERFACES = "0.0.0.0"
"""Bind address of the pod's servers that the kubelet probes on the pod IP."""
PGBOUNCER_METRICS_PORT = 9127
"""The PgBouncer exporter sidecar's port (its default)."""
METRICS_DIR = "/run/mlflow-metrics"
"""In-memory emptyDir: the Prometheus multiprocess directory every uvicorn worker writes to."""
POD_IP_HOST = "$(POD_IP)"
"""Kubernetes expands it in the command from the container's env (the pod's IP): Prometheus
scrapes ``<pod IP>:8080`` and sends that as Host, which the Host check must admit."""
GC_COMPONENT = "garbage-collection"
SERVICE_PORT = 80
RDS_CA_IN_IMAGE = "/etc/ssl/rds/global-bundle.pem"
RUN_DIR = "/run/mlflow"
"""In-memory emptyDir where the init container stages 0600 secrets and the CA."""
SECRETS_DIR = "/secrets"
PGBOUNCER_CONFIG_DIR = "/etc/pgbouncer"
TEAMS_CONFIG_DIR = "/etc/mlflow-platform/teams"
"""The team-ownership ConfigMap, mounted as a directory (not ``subPath``: only a directory mount
sees the kubelet's update of the ConfigMap, which the server app re-reads without a restart).
kubernetes.io/docs/concepts/configuration/configmap/#mounted-configmaps-are-updated-automatically:
"A container using a ConfigMap as a subPath volume mount will not receive ConfigMap updates";
the kubelet's atomic writer swaps the ``..data`` symlink (kubernetes/kubernetes#50345), so the
app sees a new inode at the same path."""
PROXY_CONFIG = "/etc/nginx/nginx.conf"
BOOTSTRAP_RUNNER = "/opt/mlflow-platform/run_bootstrap.py"
ADMIN_PASSWORD_RUNNER = "/opt/mlflow-platform/apply_admin_password.py"  # noqa: S105 - a path
CREDENTIALS_REVISION = "mlflow-platform/credentials-revision"
"""Pod-template annotation naming the generations of the credentials the pods read at start:
raising one (``mlflow-platform:rotation``) rolls the pods, and nothing secret is in it."""
INGRESS_NGINX_NAMESPACE_LABEL = "kubernetes.io/metadata.name"


class DatabaseFacts(TypedDict):
    address: pulumi.Input[str]
    port: pulumi.Input[int]
    max_connections: int
    master_username: str
    master_password: pulumi.Input[str]


class TrackingServerArgs(TypedDict):
    settings: ServerConfig
    access_mode: ArtifactAccessMode
    artifact_root: pulumi.Input[str]
    region: str
    database: DatabaseFacts
    server_role_arn: pulumi.Input[str]
    training_role_arn: pulumi.Input[str]
    training_service_accounts: Sequence[ServiceAccountRef]
    mlflow_version: str
    database_name: NotRequired[str]
    ingress_settings: NotRequired[IngressSettings]
    acm_certificate_arn: NotRequired[pulumi.Input[str]]
    """ALB: the certificate the stack issued (create mode); else ``settings.ingress``'s ARN."""
    monitoring: NotRequired[MonitoringConfig]
    """Who may scrape the metrics ports (default: ``MonitoringConfig()``)."""
    rotation: NotRequired[RotationConfig]
    """Credential generations (docs/rotation.md); all 0 when absent."""
    load_balancer_subnet_ids: NotRequired[Sequence[pulumi.Input[str]]]
    """ALB: the subnets it is pinned to (dedicated, pod-free load-balancer subnets)."""
    load_balancer_cidrs: NotRequired[Sequence[str]]
    """ALB: their CIDRs, the only sources the NetworkPolicy admits as the load balancer (without
    them: ``server.vpcCidr``, which with the VPC CNI is every pod of the VPC)."""
    teams: NotRequired[Sequence[TeamOwnership]]
    """The team-ownership declaration (stack config ``teams``); none: every non-admin create refused."""


def api_object(spec: Mapping[str, Any]) -> Any:
    """Object specs here are written as the Kubernetes API spells them (camelCase), exactly what
    the API server receives; tests validate every object against the Kubernetes JSON schema in
    strict mode, a stronger check than the SDK's TypedDicts, which expect snake_case keys."""
    return spec


def migration_job_name(mlflow_version: str, database_password_generation: int = 0) -> str:
    """``mlflow-db-migrate-3-17-2``: a new MLflow version is a new Job, so it runs again; so is
    a rotated application-role password (``-db2``), which the Job sets (a Job's pod template is
    immutable, and a changed Secret alone would not run it again)."""
    name = "mlflow-db-migrate-" + mlflow_version.replace(".", "-").replace("+", "-").lower()
    return f"{name}-db{database_password_generation}" if database_password_generation else name


def admin_password_job_name(generation: int) -> str:
    return f"mlflow-admin-password-g{generation}"


def pod_target(
    settings: ServerConfig,
    *,
    database_host: str,
    database_port: int,
    max_connections: int,
    artifact_root: str,
    region: str,
    namespace: str,
) -> TargetParameters:
    """What is specific to a pod on EKS (the local target builds its own)."""
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
        public_host_names=(settings.host, *service_names, POD_IP_HOST),
        public_ports=(443, SERVICE_PORT, PROXY_PORT),
        auth_config_path=f"{RUN_DIR}/auth.ini",
        server_pgpassfile=f"{RUN_DIR}/server.pgpass",
        migrator_pgpassfile=f"{RUN_DIR}/migrator.pgpass",
        artifact_root=artifact_root,
        s3=S3Client(region=region),
        mlflow_command=("mlflow",),
        python_command=("python",),
        workers=settings.workers,
        max_replicas=settings.max_replicas,
        database_max_connections=max_connections,
        prometheus_dir=METRICS_DIR,
        # All of the pod's interfaces, not loopback: the kubelet probes the sidecar on the pod IP
        # (see TargetParameters.pgbouncer_listen_host); the server NetworkPolicy admits no peer
        # to PGBOUNCER_PORT, so nothing outside the pod reaches it.
        pgbouncer_listen_host=POD_ALL_INTERFACES,
        teams_file=f"{TEAMS_CONFIG_DIR}/{TEAMS_FILE_NAME}",
    )


@dataclass(frozen=True)
class _Resources:
    cpu_request: str
    memory: str

    def spec(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory},
            "limits": {"cpu": _double_cpu(self.cpu_request), "memory": self.memory},
        }


def _double_cpu(quantity: str) -> str:
    """CPU limit = 2 × request: bursts for migrations of state at start-up, bounded for neighbours."""
    if quantity.endswith("m"):
        return f"{int(quantity[:-1]) * 2}m"
    return str(float(quantity) * 2).removesuffix(".0")


def _container_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        # Secret volumes become group-readable by this GID; the init container copies them 0600.
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _stage_command(files: Sequence[str]) -> list[str]:
    """Copy mounted secrets to the in-memory run dir as 0600 (libpq refuses group-readable
    password files) and the RDS CA where PgBouncer and libpq look for it."""
    copies = " && ".join(f"install -m 0600 {SECRETS_DIR}/{name} {RUN_DIR}/{name}" for name in files)
    return ["sh", "-ec", f"{copies} && install -m 0444 {RDS_CA_IN_IMAGE} {RUN_DIR}/rds-ca.pem"]


class TrackingServer(pulumi.ComponentResource):
    """Namespace, IRSA service accounts, Secrets, migration Job, Deployment, Service, Ingress,
    PDB, HPA and NetworkPolicies for MLflow — on the Kubernetes provider passed in ``opts``."""

    tracking_url: pulumi.Output[str]
    namespace: pulumi.Output[str]
    admin_username: pulumi.Output[str]
    admin_password: pulumi.Output[str]
    migration_job_name: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingServerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:TrackingServer", name, {}, opts)
        settings = args["settings"]
        ns = settings.namespace
        ingress_settings = args.get("ingress_settings", IngressSettings())
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/name": APP, "app.kubernetes.io/part-of": "mlflow-platform"}
        server_labels = {**labels, "app.kubernetes.io/component": "tracking-server"}
        self.server_labels = dict(server_labels)
        job_labels = {**labels, "app.kubernetes.io/component": "db-migration"}

        rotation = args.get("rotation", RotationConfig())
        secrets = self._generate_secrets(name, rotation)
        database = args["database"]
        rendered: pulumi.Output[ServerSide] = pulumi.Output.all(
            database["address"],
            database["port"],
            args["artifact_root"],
            secrets["app_password"],
            secrets["app_salt"],
            database["master_password"],
            secrets["flask_key"],
            secrets["admin_password"],
            secrets["stats_password"],
            secrets["stats_salt"],
        ).apply(
            lambda v: render_server_side(
                pod_target(
                    settings,
                    database_host=v[0],
                    database_port=int(v[1]),
                    max_connections=database["max_connections"],
                    artifact_root=v[2],
                    region=args["region"],
                    namespace=ns,
                ),
                PlatformSettings(
                    access_mode=args["access_mode"],
                    in_flight_per_worker=settings.in_flight_per_worker,
                    auth_cache_ttl_seconds=settings.auth_cache_ttl_seconds,
                    tracking_database=args.get("database_name", "mlflow"),
                    migrator_role=database["master_username"],
                    teams=tuple(args.get("teams", ())),
                ),
                PlatformSecrets(
                    app_role_password=v[3],
                    app_role_salt=base64.b64decode(v[4]),
                    migrator_password=v[5],
                    flask_secret_key=v[6],
                    admin_password=v[7],
                    stats_password=v[8],
                    stats_salt=base64.b64decode(v[9]),
                ),
            )
        )

        def public(pick: Any) -> pulumi.Output[Any]:
            """Rendered values that contain no secret, shown in previews as they are."""
            return pulumi.Output.unsecret(rendered.apply(pick))

        def secret(pick: Any) -> pulumi.Output[Any]:
            return pulumi.Output.secret(rendered.apply(pick))

        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": ns, "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted"}},
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource])
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={
                "name": settings.service_account,
                "namespace": ns,
                "labels": labels,
                "annotations": {"eks.amazonaws.com/role-arn": args["server_role_arn"]},
            },
            automount_service_account_token=False,
            opts=in_ns,
        )
        self.server_secret = k8s.core.v1.Secret(
            f"{name}-server-secret",
            metadata={"name": f"{APP}-server", "namespace": ns, "labels": server_labels},
            type="Opaque",
            string_data={
                "auth.ini": secret(lambda r: r.auth_ini),
                "server.pgpass": secret(lambda r: r.server_pgpass),
                "userlist.txt": secret(lambda r: r.pgbouncer_auth_file),
                **{
                    key: secret(lambda r, k=key: r.launch.secret_env[k])
                    for key in ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD")
                },
                "PGBOUNCER_EXPORTER_CONNECTION_STRING": secret(lambda r: r.pgbouncer_stats_dsn),
            },
            opts=in_ns,
        )
        self.pgbouncer_config = k8s.core.v1.ConfigMap(
            f"{name}-pgbouncer-config",
            metadata={"name": f"{APP}-pgbouncer", "namespace": ns, "labels": server_labels},
            data={"pgbouncer.ini": public(lambda r: r.pgbouncer_ini)},
            opts=in_ns,
        )
        # Not part of the pods' config revision: the app re-reads it, so a change restarts nothing.
        self.teams_config = k8s.core.v1.ConfigMap(
            f"{name}-teams-config",
            metadata={"name": f"{APP}-teams", "namespace": ns, "labels": server_labels},
            data={TEAMS_FILE_NAME: public(lambda r: r.teams_document)},
            opts=in_ns,
        )
        in_flight_per_replica = rendered.apply(lambda r: r.pools.in_flight_per_replica)
        self.proxy_config = k8s.core.v1.ConfigMap(
            f"{name}-proxy-config",
            metadata={"name": f"{APP}-admission-proxy", "namespace": ns, "labels": server_labels},
            data={
                "nginx.conf": pulumi.Output.unsecret(in_flight_per_replica).apply(
                    lambda limit: render_proxy_conf(
                        ingress_settings,
                        ProxySite(
                            listen_host="0.0.0.0",
                            listen_port=PROXY_PORT,
                            upstream_host="127.0.0.1",
                            upstream_port=MLFLOW_PORT,
                            server_names=("_",),
                            pid_file="/tmp/nginx.pid",
                            temp_dir="/tmp",
                            max_in_flight=limit,
                        ),
                    )
                )
            },
            opts=in_ns,
        )

        job_name = migration_job_name(args["mlflow_version"], rotation.database_password)
        self.migration_job = self._migration_job(name, job_name, settings, rendered, job_labels, in_ns)
        self.deployment = self._deployment(name, settings, rendered, public, server_labels, in_ns, rotation)
        self.admin_password_job = None
        if rotation.admin_password:
            self.admin_password_job = self._admin_password_job(name, settings, rotation, secrets, labels, in_ns)
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={"name": APP, "namespace": ns, "labels": server_labels},
            spec=api_object(
                {
                    "type": "ClusterIP",
                    "selector": server_labels,
                    "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "proxy", "protocol": "TCP"}],
                }
            ),
            opts=in_ns,
        )
        certificate = args.get("acm_certificate_arn", settings.ingress.acm_certificate_arn)
        self.ingress = self._ingress(
            name,
            settings,
            ingress_settings,
            certificate,
            server_labels,
            in_ns,
            subnet_ids=args.get("load_balancer_subnet_ids", ()),
        )
        self.disruption_budget = None
        if settings.replicas > 1:
            self.disruption_budget = k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata={"name": APP, "namespace": ns, "labels": server_labels},
                spec=api_object(
                    {
                        "maxUnavailable": 1,
                        "selector": {"matchLabels": server_labels},
                        "unhealthyPodEvictionPolicy": "AlwaysAllow",
                    }
                ),
                opts=in_ns,
            )
        self.autoscaler = None
        if settings.max_replicas > settings.replicas:
            self.autoscaler = k8s.autoscaling.v2.HorizontalPodAutoscaler(
                f"{name}-hpa",
                metadata={"name": APP, "namespace": ns, "labels": server_labels},
                spec=api_object(
                    {
                        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP},
                        "minReplicas": settings.replicas,
                        "maxReplicas": settings.max_replicas,
                        "metrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "target": {
                                        "type": "Utilization",
                                        "averageUtilization": HPA_TARGET_CPU_UTILISATION_PERCENT,
                                    },
                                },
                            }
                        ],
                        # Scale down slowly: long artifact transfers should not be cut by churn.
                        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
                    }
                ),
                opts=in_ns,
            )
        self.network_policies = self._network_policies(name, settings, args, server_labels, job_labels, in_ns)
        self.training = self._training_namespaces(name, args, labels)

        scheme = "https://"
        self.tracking_url = pulumi.Output.from_input(scheme + settings.host)
        self.namespace = pulumi.Output.from_input(ns)
        self.admin_username = pulumi.Output.from_input("admin")
        self.admin_password = pulumi.Output.secret(secrets["admin_password"])
        self.app_role_password = pulumi.Output.secret(secrets["app_password"])
        """For the gc CronJob (components.garbage_collection), which connects as the app role."""
        self.migration_job_name = pulumi.Output.from_input(job_name)
        self.register_outputs(
            {
                "trackingUrl": self.tracking_url,
                "namespace": self.namespace,
                "adminUsername": self.admin_username,
                "adminPassword": self.admin_password,
                "migrationJobName": self.migration_job_name,
            }
        )

    def _generate_secrets(self, name: str, rotation: RotationConfig) -> dict[str, pulumi.Output[str]]:
        """Every credential is generated here and lives only in Pulumi's encrypted state and in
        Kubernetes Secrets. Alphanumeric: they end up in libpq password files and SCRAM.

        Rotation (docs/rotation.md): generation N > 0 of the application-role password and the
        Flask key is the same resource with ``keepers`` naming N (a change replaces the value);
        generation 0 has no keepers, so existing stacks keep their values. The admin password
        has one resource per generation, so the previous one still exists for the Job that
        changes it through MLflow's API (it must log in with it).
        """
        child = pulumi.ResourceOptions(parent=self)

        def keepers(generation: int) -> dict[str, str] | None:
            return {"generation": str(generation)} if generation else None

        def password(suffix: str, length: int, generation: int = 0) -> pulumi.Output[str]:
            return random.RandomPassword(
                f"{name}-{suffix}", length=length, special=False, keepers=keepers(generation), opts=child
            ).result

        def admin_password(generation: int) -> pulumi.Output[str]:
            return password("admin-password" + (f"-g{generation}" if generation else ""), 32)

        salt = random.RandomBytes(
            f"{name}-app-role-salt", length=16, keepers=keepers(rotation.database_password), opts=child
        )
        stats_salt = random.RandomBytes(f"{name}-pgbouncer-stats-salt", length=16, opts=child)
        generated = {
            "stats_password": password("pgbouncer-stats-password", 40),
            "stats_salt": stats_salt.base64,
            "app_password": password("app-role-password", 40, rotation.database_password),
            "app_salt": salt.base64,
            "flask_key": password("flask-secret-key", 64, rotation.flask_secret_key),
            "admin_password": admin_password(rotation.admin_password),
        }
        if rotation.admin_password:
            generated["previous_admin_password"] = admin_password(rotation.admin_password - 1)
        return generated

    def _admin_password_job(
        self,
        name: str,
        settings: ServerConfig,
        rotation: RotationConfig,
        secrets: Mapping[str, pulumi.Output[str]],
        labels: Mapping[str, str],
        opts: pulumi.ResourceOptions,
    ) -> k8s.batch.v1.Job:
        """Applies a rotated admin password through MLflow's update-password API: the
        environment only seeds an *empty* user store, so a new value there changes nothing.
        A no-op when the new password already works; otherwise it logs in with the previous
        one. Runs after the Deployment, through the public HTTPS URL (verified TLS)."""
        ns = settings.namespace
        job_name = admin_password_job_name(rotation.admin_password)
        job_labels = {**labels, "app.kubernetes.io/component": "admin-password"}
        files = ["admin-password", "previous-admin-password"]
        secret = k8s.core.v1.Secret(
            f"{name}-admin-password-secret",
            metadata={"name": job_name, "namespace": ns, "labels": job_labels},
            type="Opaque",
            string_data={
                "admin-password": pulumi.Output.secret(secrets["admin_password"]),
                "previous-admin-password": pulumi.Output.secret(secrets["previous_admin_password"]),
            },
            opts=opts,
        )
        resources = _Resources("50m", "128Mi").spec()
        stage = " && ".join(f"install -m 0600 {SECRETS_DIR}/{f} {RUN_DIR}/{f}" for f in files)
        k8s.networking.v1.NetworkPolicy(
            f"{name}-admin-password-network-policy",
            metadata={"name": f"{APP}-admin-password", "namespace": ns},
            spec=api_object(
                {
                    "podSelector": {"matchLabels": dict(job_labels)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [],
                    "egress": [
                        {
                            "to": [
                                {
                                    "namespaceSelector": {
                                        "matchLabels": {INGRESS_NGINX_NAMESPACE_LABEL: "kube-system"}
                                    },
                                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                                }
                            ],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                        },
                        {
                            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
                            "ports": [{"protocol": "TCP", "port": 443}],
                        },
                    ],
                }
            ),
            opts=opts,
        )
        return k8s.batch.v1.Job(
            f"{name}-admin-password",
            metadata={"name": job_name, "namespace": ns, "labels": job_labels},
            spec=api_object(
                {
                    "backoffLimit": 6,
                    "activeDeadlineSeconds": 900,
                    "template": {
                        "metadata": {"labels": dict(job_labels)},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": settings.service_account,
                            "automountServiceAccountToken": False,
                            "securityContext": _pod_security(),
                            "initContainers": [
                                {
                                    "name": "stage-secrets",
                                    "image": settings.image,
                                    "imagePullPolicy": "Always",
                                    "command": ["sh", "-ec", stage],
                                    "securityContext": _container_security(),
                                    "resources": resources,
                                    "volumeMounts": [
                                        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
                                        {"name": "run", "mountPath": RUN_DIR},
                                    ],
                                }
                            ],
                            "containers": [
                                {
                                    "name": "apply",
                                    "image": settings.image,
                                    "imagePullPolicy": "Always",
                                    "command": [
                                        "python",
                                        ADMIN_PASSWORD_RUNNER,
                                        f"https://{settings.host}",
                                        PlatformSettings.admin_username,
                                        f"{RUN_DIR}/admin-password",
                                        f"{RUN_DIR}/previous-admin-password",
                                    ],
                                    "securityContext": _container_security(),
                                    "resources": resources,
                                    "volumeMounts": [{"name": "run", "mountPath": RUN_DIR, "readOnly": True}],
                                }
                            ],
                            "volumes": [
                                {"name": "secrets", "secret": {"secretName": job_name, "defaultMode": 0o440}},
                                {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                            ],
                        },
                    },
                }
            ),
            # The server must run (and have seeded the user store) before its password changes.
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[secret, self.service_account, self.deployment])
            ),
        )

    def _migration_job(
        self,
        name: str,
        job_name: str,
        settings: ServerConfig,
        rendered: pulumi.Output[ServerSide],
        labels: Mapping[str, str],
        opts: pulumi.ResourceOptions,
    ) -> k8s.batch.v1.Job:
        ns = settings.namespace
        secret = k8s.core.v1.Secret(
            f"{name}-migration-secret",
            metadata={"name": job_name, "namespace": ns, "labels": dict(labels)},
            type="Opaque",
            string_data={
                "bootstrap.json": pulumi.Output.secret(rendered.apply(lambda r: r.bootstrap_document)),
                "migrator.pgpass": pulumi.Output.secret(rendered.apply(lambda r: r.migrator_pgpass)),
            },
            opts=opts,
        )
        volumes = [
            {"name": "secrets", "secret": {"secretName": job_name, "defaultMode": 0o440}},
            {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
        ]
        resources = _Resources("250m", "512Mi").spec()
        return k8s.batch.v1.Job(
            f"{name}-migration",
            metadata={"name": job_name, "namespace": ns, "labels": dict(labels)},
            spec=api_object(
                {
                    "backoffLimit": 3,
                    "activeDeadlineSeconds": 1800,
                    "template": {
                        "metadata": {"labels": dict(labels)},
                        "spec": {
                            "restartPolicy": "Never",
                            "serviceAccountName": settings.service_account,
                            "automountServiceAccountToken": False,
                            "securityContext": _pod_security(),
                            "initContainers": [
                                {
                                    "name": "stage-secrets",
                                    "image": settings.image,
                                    "imagePullPolicy": "Always",
                                    "command": _stage_command(["bootstrap.json", "migrator.pgpass"]),
                                    "securityContext": _container_security(),
                                    "resources": resources,
                                    "volumeMounts": [
                                        {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
                                        {"name": "run", "mountPath": RUN_DIR},
                                    ],
                                }
                            ],
                            "containers": [
                                {
                                    "name": "migrate",
                                    "image": settings.image,
                                    "imagePullPolicy": "Always",
                                    "command": ["python", BOOTSTRAP_RUNNER, f"{RUN_DIR}/bootstrap.json"],
                                    "env": [{"name": "PGPASSFILE", "value": f"{RUN_DIR}/migrator.pgpass"}],
                                    "securityContext": _container_security(),
                                    "resources": resources,
                                    "volumeMounts": [
                                        {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
                                        {"name": "tmp", "mountPath": "/tmp"},
                                    ],
                                }
                            ],
                            "volumes": volumes,
                        },
                    },
                }
            ),
            # Pulumi waits for the Job to complete; the Deployment depends on it. The pod names its
            # ServiceAccount and Secret by plain strings, so Pulumi cannot infer these edges.
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[secret, self.service_account])),
        )

    def _deployment(
        self,
        name: str,
        settings: ServerConfig,
        rendered: pulumi.Output[ServerSide],
        public: Any,
        labels: Mapping[str, str],
        opts: pulumi.ResourceOptions,
        rotation: RotationConfig,
    ) -> k8s.apps.v1.Deployment:
        ns = settings.namespace
        probe_port = "mlflow"
        health = {"httpGet": {"path": "/health", "port": probe_port}, "timeoutSeconds": 3}
        secret_env = [
            {"name": key, "valueFrom": {"secretKeyRef": {"name": f"{APP}-server", "key": key}}}
            for key in ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD")
        ]
        pod_ip = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
        env = public(
            lambda r: [pod_ip] + [{"name": k, "value": v} for k, v in sorted(r.launch.env.items())] + secret_env
        )
        small = _Resources("50m", "64Mi").spec()
        pgbouncer = {
            "name": "pgbouncer",
            "image": PGBOUNCER_IMAGE,
            "imagePullPolicy": "Always",
            # Native sidecar (Kubernetes >= 1.29): started before MLflow, stopped after it.
            "restartPolicy": "Always",
            "command": ["pgbouncer", f"{PGBOUNCER_CONFIG_DIR}/pgbouncer.ini"],
            "ports": [{"name": "pgbouncer", "containerPort": PGBOUNCER_PORT, "protocol": "TCP"}],
            "startupProbe": {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 2, "failureThreshold": 30},
            "livenessProbe": {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 10},
            "readinessProbe": {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 5},
            "securityContext": _container_security(),
            "resources": small,
            "volumeMounts": [
                {"name": "pgbouncer-config", "mountPath": PGBOUNCER_CONFIG_DIR, "readOnly": True},
                {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
            ],
        }
        stage = {
            "name": "stage-secrets",
            "image": settings.image,
            "imagePullPolicy": "Always",
            "command": _stage_command(["auth.ini", "server.pgpass", "userlist.txt"]),
            "securityContext": _container_security(),
            "resources": small,
            "volumeMounts": [
                {"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": True},
                {"name": "run", "mountPath": RUN_DIR},
            ],
        }
        mlflow = {
            "name": "mlflow",
            "image": settings.image,
            "imagePullPolicy": "Always",
            "command": public(lambda r: list(r.launch.argv)),
            "env": env,
            "ports": [{"name": "mlflow", "containerPort": MLFLOW_PORT, "protocol": "TCP"}],
            "startupProbe": {**health, "periodSeconds": 5, "failureThreshold": 36},
            "livenessProbe": {**health, "periodSeconds": 10, "failureThreshold": 6},
            "readinessProbe": {**health, "periodSeconds": 5, "failureThreshold": 3},
            "securityContext": _container_security(),
            "resources": _Resources(settings.cpu, settings.memory).spec(),
            "volumeMounts": [
                {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
                # Artifact uploads are spooled here in proxied mode; sized per stack.
                {"name": "tmp", "mountPath": "/tmp"},
                {"name": "metrics", "mountPath": METRICS_DIR},
                {"name": "teams-config", "mountPath": TEAMS_CONFIG_DIR, "readOnly": True},
            ],
        }
        exporter = {
            "name": "pgbouncer-exporter",
            "image": PGBOUNCER_EXPORTER_IMAGE,
            "imagePullPolicy": "Always",
            "args": [f"--web.listen-address=:{PGBOUNCER_METRICS_PORT}", "--web.telemetry-path=/metrics"],
            # A stats_users login (SHOW only) over loopback; the DSN carries its password.
            "env": [
                {
                    "name": "PGBOUNCER_EXPORTER_CONNECTION_STRING",
                    "valueFrom": {
                        "secretKeyRef": {"name": f"{APP}-server", "key": "PGBOUNCER_EXPORTER_CONNECTION_STRING"}
                    },
                }
            ],
            "ports": [{"name": "pgb-metrics", "containerPort": PGBOUNCER_METRICS_PORT, "protocol": "TCP"}],
            "livenessProbe": {"tcpSocket": {"port": "pgb-metrics"}, "periodSeconds": 10},
            "readinessProbe": {"tcpSocket": {"port": "pgb-metrics"}, "periodSeconds": 10},
            "securityContext": _container_security(),
            "resources": small,
        }
        proxy = {
            "name": "admission-proxy",
            "image": PROXY_IMAGE,
            "imagePullPolicy": "Always",
            "command": ["nginx", "-c", PROXY_CONFIG],
            "ports": [{"name": "proxy", "containerPort": PROXY_PORT, "protocol": "TCP"}],
            "livenessProbe": {
                "httpGet": {"path": "/health", "port": "proxy"},
                "periodSeconds": 10,
                "timeoutSeconds": 3,
                "failureThreshold": 6,
            },
            "readinessProbe": {
                "httpGet": {"path": "/health", "port": "proxy"},
                "periodSeconds": 5,
                "timeoutSeconds": 3,
            },
            "securityContext": _container_security(),
            "resources": small,
            "volumeMounts": [
                {"name": "proxy-config", "mountPath": PROXY_CONFIG, "subPath": "nginx.conf", "readOnly": True},
                {"name": "proxy-tmp", "mountPath": "/tmp"},
            ],
        }
        pod_spec = {
            "serviceAccountName": settings.service_account,
            "automountServiceAccountToken": False,
            "securityContext": _pod_security(),
            "terminationGracePeriodSeconds": 60,
            "initContainers": [stage, pgbouncer],
            "containers": [mlflow, proxy, exporter],
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "topology.kubernetes.io/zone",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": dict(labels)},
                }
            ],
            "volumes": [
                {
                    "name": "secrets",
                    "secret": {
                        "secretName": f"{APP}-server",
                        "defaultMode": 0o440,
                        "items": [{"key": k, "path": k} for k in ("auth.ini", "server.pgpass", "userlist.txt")],
                    },
                },
                {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": f"{settings.tmp_size_gib}Gi"}},
                {"name": "proxy-tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "metrics", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
                {"name": "pgbouncer-config", "configMap": {"name": f"{APP}-pgbouncer"}},
                {"name": "proxy-config", "configMap": {"name": f"{APP}-admission-proxy"}},
                {"name": "teams-config", "configMap": {"name": f"{APP}-teams"}},
            ],
        }
        config_hash = pulumi.Output.all(public(lambda r: r.pgbouncer_ini), public(lambda r: r.launch.argv)).apply(
            lambda values: hashlib.sha256(repr(values).encode()).hexdigest()[:16]
        )
        hpa = settings.max_replicas > settings.replicas
        return k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={
                "name": APP,
                "namespace": ns,
                "labels": dict(labels),
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
                    "selector": {"matchLabels": dict(labels)},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                    "template": {
                        # Restart pods when rendered configuration changes.
                        "metadata": {
                            "labels": dict(labels),
                            "annotations": {
                                "mlflow-platform/config-revision": config_hash,
                                # Secrets are read at start (env, staged files): a rotation rolls the pods.
                                CREDENTIALS_REVISION: f"database={rotation.database_password},"
                                f"flask={rotation.flask_secret_key}",
                            },
                        },
                        "spec": pod_spec,
                    },
                }
            ),
            opts=pulumi.ResourceOptions.merge(
                opts,
                pulumi.ResourceOptions(
                    # Everything the pods mount or read by name (Pulumi cannot infer those edges).
                    depends_on=[
                        self.migration_job,
                        self.service_account,
                        self.server_secret,
                        self.pgbouncer_config,
                        self.proxy_config,
                        self.teams_config,
                    ],
                    # With an HPA, the replica count is the autoscaler's: not drift.
                    ignore_changes=["spec.replicas"] if hpa else None,
                ),
            ),
        )

    def _ingress(
        self,
        name: str,
        settings: ServerConfig,
        ingress_settings: IngressSettings,
        certificate_arn: pulumi.Input[str],
        labels: Mapping[str, str],
        opts: pulumi.ResourceOptions,
        subnet_ids: Sequence[pulumi.Input[str]] = (),
    ) -> k8s.networking.v1.Ingress:
        ingress = settings.ingress
        if ingress.class_name == "nginx":
            annotations = {
                **ingress_nginx_annotations(ingress_settings),
                "cert-manager.io/cluster-issuer": ingress.cert_manager_issuer,
            }
            tls = [{"hosts": [settings.host], "secretName": f"{APP}-tls"}]
        else:
            idle_timeout = f"idle_timeout.timeout_seconds={ingress_settings.proxy_read_timeout_s}"
            annotations: dict[str, pulumi.Input[str]] = {
                "alb.ingress.kubernetes.io/scheme": ingress.scheme,
                "alb.ingress.kubernetes.io/target-type": "ip",
                "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
                "alb.ingress.kubernetes.io/ssl-redirect": "443",
                "alb.ingress.kubernetes.io/certificate-arn": certificate_arn,
                "alb.ingress.kubernetes.io/ssl-policy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "alb.ingress.kubernetes.io/healthcheck-path": "/health",
                "alb.ingress.kubernetes.io/load-balancer-attributes": idle_timeout,
            }
            if subnet_ids:  # pinned: never subnets that hold pods, whatever else is tagged
                annotations["alb.ingress.kubernetes.io/subnets"] = pulumi.Output.all(*subnet_ids).apply(",".join)
            tls = [{"hosts": [settings.host]}]
        return k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata={"name": APP, "namespace": settings.namespace, "labels": dict(labels), "annotations": annotations},
            spec=api_object(
                {
                    "ingressClassName": ingress.class_name,
                    "tls": tls,
                    "rules": [
                        {
                            "host": settings.host,
                            "http": {
                                "paths": [
                                    {
                                        "path": "/",
                                        "pathType": "Prefix",
                                        "backend": {"service": {"name": APP, "port": {"number": SERVICE_PORT}}},
                                    }
                                ]
                            },
                        }
                    ],
                }
            ),
            opts=opts,
        )

    def _network_policies(
        self,
        name: str,
        settings: ServerConfig,
        args: TrackingServerArgs,
        server_labels: Mapping[str, str],
        job_labels: Mapping[str, str],
        opts: pulumi.ResourceOptions,
    ) -> list[k8s.networking.v1.NetworkPolicy]:
        def namespace(label: str) -> dict[str, Any]:
            return {"namespaceSelector": {"matchLabels": {INGRESS_NGINX_NAMESPACE_LABEL: label}}}

        if settings.ingress.class_name == "nginx":
            edge = [namespace(settings.ingress.controller_namespace)]
        else:  # ALB with target-type ip: traffic comes from the load balancer's addresses
            edge = [{"ipBlock": {"cidr": cidr}} for cidr in args.get("load_balancer_cidrs", [settings.vpc_cidr])]
        clients = [
            *edge,
            *[namespace(n) for n in sorted({sa.namespace for sa in args["training_service_accounts"]})],
        ]
        if args["access_mode"] == "proxied":  # gc resolves mlflow-artifacts:/ through the server
            clients.append({"podSelector": {"matchLabels": {"app.kubernetes.io/component": GC_COMPONENT}}})
        monitoring = args.get("monitoring", MonitoringConfig())
        scraper = {
            "from": [
                {
                    **namespace(settings.monitoring_namespace),
                    "podSelector": {"matchLabels": dict(monitoring.scraper_pod_labels)},
                }
            ],
            # 8080 serves the API too (NetworkPolicy cannot filter paths); basic-auth guards it.
            "ports": [{"protocol": "TCP", "port": PROXY_PORT}, {"protocol": "TCP", "port": PGBOUNCER_METRICS_PORT}],
        }
        dns = {
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {INGRESS_NGINX_NAMESPACE_LABEL: "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
                }
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        }
        database = {"to": [{"ipBlock": {"cidr": settings.vpc_cidr}}], "ports": [{"protocol": "TCP", "port": 5432}]}
        # S3 and STS (IRSA) over HTTPS; the instance metadata service is never reachable
        # (webhook SSRF CVE-2026-64849 would otherwise reach node credentials).
        https = {
            "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}],
            "ports": [{"protocol": "TCP", "port": 443}],
        }
        server = k8s.networking.v1.NetworkPolicy(
            f"{name}-server-network-policy",
            metadata={"name": f"{APP}-server", "namespace": settings.namespace},
            spec=api_object(
                {
                    "podSelector": {"matchLabels": dict(server_labels)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [{"from": clients, "ports": [{"protocol": "TCP", "port": PROXY_PORT}]}, scraper],
                    "egress": [dns, database, https],
                }
            ),
            opts=opts,
        )
        job = k8s.networking.v1.NetworkPolicy(
            f"{name}-migration-network-policy",
            metadata={"name": f"{APP}-db-migration", "namespace": settings.namespace},
            spec=api_object(
                {
                    "podSelector": {"matchLabels": dict(job_labels)},
                    "policyTypes": ["Ingress", "Egress"],
                    "ingress": [],
                    "egress": [dns, database],
                }
            ),
            opts=opts,
        )
        return [server, job]

    def _training_namespaces(
        self, name: str, args: TrackingServerArgs, labels: Mapping[str, str]
    ) -> list[k8s.core.v1.ServiceAccount]:
        """Namespaces and IRSA service accounts for training jobs, plus a ConfigMap with the
        client settings (no credentials: those are per user, from a Secret the team creates)."""
        settings = args["settings"]
        accounts: list[k8s.core.v1.ServiceAccount] = []
        for namespace in sorted({sa.namespace for sa in args["training_service_accounts"]}):
            ns = k8s.core.v1.Namespace(
                f"{name}-training-{namespace}",
                metadata={"name": namespace, "labels": {**labels, "pod-security.kubernetes.io/enforce": "restricted"}},
                opts=pulumi.ResourceOptions(parent=self),
            )
            in_ns = pulumi.ResourceOptions(parent=self, depends_on=[ns])
            k8s.core.v1.ConfigMap(
                f"{name}-training-{namespace}-client",
                metadata={"name": "mlflow-client", "namespace": namespace, "labels": dict(labels)},
                data={
                    "MLFLOW_TRACKING_URI": f"https://{settings.host}",
                    **TRAINING_CLIENT_RETRY.env(),
                    "AWS_DEFAULT_REGION": args["region"],
                },
                opts=in_ns,
            )
            for sa in args["training_service_accounts"]:
                if sa.namespace != namespace:
                    continue
                accounts.append(
                    k8s.core.v1.ServiceAccount(
                        f"{name}-training-{namespace}-{sa.name}",
                        metadata={
                            "name": sa.name,
                            "namespace": namespace,
                            "labels": dict(labels),
                            "annotations": {"eks.amazonaws.com/role-arn": args["training_role_arn"]},
                        },
                        automount_service_account_token=False,
                        opts=in_ns,
                    )
                )
        return accounts

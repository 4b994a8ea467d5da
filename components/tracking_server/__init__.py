"""The MLflow tracking server on a given EKS cluster: the component and its secrets.

Every file and command comes from ``rendering.server_side.render_server_side`` — the function
the local target runs — with only the :class:`TargetParameters` of a pod
(``rendering.eks_pod.pod_target``). The objects are built one family per module, from the pod
toolkit (``components.pod_toolkit``), as the MLflow community Helm chart keeps one template per
object:

- ``configuration``: the server Secret and the PgBouncer, admission-proxy and teams ConfigMaps;
- ``jobs``: the migration Job (before the Deployment; named after the MLflow version, so a bump
  runs it again) and the admin-password Job (after it, on rotation);
- ``deployment``: the pods (stage-secrets, the PgBouncer sidecar, MLflow, the admission proxy,
  the PgBouncer exporter);
- ``service``: the Service and the Ingress; ``scaling``: the PDB and the HPA;
- ``network_policies``; ``training``: the training namespaces and their ServiceAccounts.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components.outputs import all_named
from rendering.eks_pod import pod_target
from rendering.ingress import IngressSettings
from rendering.mlflow_server import ArtifactAccessMode
from rendering.names import TRACKING_DATABASE
from rendering.ownership import TeamOwnership
from rendering.server_side import PlatformSecrets, PlatformSettings, ServerSide, render_server_side
from stackconfig.schema import MonitoringConfig, RotationConfig, ServerConfig, ServiceAccountRef

from .common import LABELS, SERVER_LABELS
from .configuration import server_configuration
from .deployment import deployment
from .jobs import admin_password_job, migration_job, migration_job_name
from .network_policies import server_network_policies
from .scaling import autoscaler, disruption_budget
from .service import ingress, service
from .training import training_namespaces, training_service_accounts

__all__ = ["DatabaseFacts", "TrackingServer", "TrackingServerArgs"]


class DatabaseFacts(TypedDict):
    address: pulumi.Input[str]
    port: pulumi.Input[int]
    max_connections: int
    master_username: str
    master_password: pulumi.Input[str]


class TrackingServerArgs(TypedDict):
    settings: ServerConfig
    """The stack's ``server`` section."""
    access_mode: ArtifactAccessMode
    artifact_root: pulumi.Input[str]
    region: str
    database: DatabaseFacts
    server_role_arn: pulumi.Input[str]
    training_role_arn: pulumi.Input[str]
    training_service_accounts: Sequence[ServiceAccountRef]
    mlflow_version: str
    database_name: NotRequired[str]
    request_handling: NotRequired[IngressSettings]
    """Body size, timeouts and buffering of the Ingress and the admission proxy (default:
    ``IngressSettings()``)."""
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
        self.server_labels = dict(SERVER_LABELS)
        rotation = args.get("rotation", RotationConfig())
        secrets = self._generate_secrets(name, rotation)
        rendered = self._render(args, secrets)

        self.namespace_resource = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": ns, "labels": {**LABELS, "pod-security.kubernetes.io/enforce": "restricted"}},
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace_resource])
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={
                "name": settings.service_account,
                "namespace": ns,
                "labels": LABELS,
                "annotations": {"eks.amazonaws.com/role-arn": args["server_role_arn"]},
            },
            automount_service_account_token=False,
            opts=in_ns,
        )
        request_handling = args.get("request_handling", IngressSettings())
        configuration = server_configuration(name, ns, rendered, request_handling, in_ns)
        self.server_secret = configuration.server_secret
        self.pgbouncer_config = configuration.pgbouncer_config
        self.teams_config = configuration.teams_config
        self.proxy_config = configuration.proxy_config

        job_name = migration_job_name(args["mlflow_version"], rotation.database_password)
        self.migration_job = migration_job(name, job_name, settings, rendered, in_ns, [self.service_account])
        self.deployment = deployment(
            name, settings, rendered, rotation, in_ns, [self.migration_job, self.service_account, *configuration.all()]
        )
        self.admin_password_job = None
        if rotation.admin_password:
            self.admin_password_job = admin_password_job(
                name, settings, rotation.admin_password, secrets, in_ns, [self.service_account, self.deployment]
            )
        self.service = service(name, ns, in_ns)
        self.ingress = ingress(
            name,
            settings,
            request_handling,
            args.get("acm_certificate_arn", settings.ingress.acm_certificate_arn),
            in_ns,
            subnet_ids=args.get("load_balancer_subnet_ids", ()),
        )
        self.disruption_budget = disruption_budget(name, settings, in_ns)
        self.autoscaler = autoscaler(name, settings, in_ns)
        self.network_policies = server_network_policies(
            name,
            settings,
            access_mode=args["access_mode"],
            training_namespaces=training_namespaces(args["training_service_accounts"]),
            monitoring=args.get("monitoring", MonitoringConfig()),
            load_balancer_cidrs=args.get("load_balancer_cidrs"),
            opts=in_ns,
        )
        self.training_service_accounts = training_service_accounts(
            name,
            settings,
            accounts=args["training_service_accounts"],
            role_arn=args["training_role_arn"],
            region=args["region"],
            parent=self,
        )

        self.tracking_url = pulumi.Output.from_input("https://" + settings.host)
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

    @staticmethod
    def _render(args: TrackingServerArgs, secrets: dict[str, pulumi.Output[str]]) -> pulumi.Output[ServerSide]:
        """Every file and command of the pods, rendered once the database address and the
        generated credentials are known."""
        settings = args["settings"]
        database = args["database"]
        return all_named(
            database_host=database["address"],
            database_port=database["port"],
            artifact_root=args["artifact_root"],
            app_password=secrets["app_password"],
            app_salt=secrets["app_salt"],
            master_password=database["master_password"],
            flask_key=secrets["flask_key"],
            admin_password=secrets["admin_password"],
            stats_password=secrets["stats_password"],
            stats_salt=secrets["stats_salt"],
        ).apply(
            lambda v: render_server_side(
                pod_target(
                    host=settings.host,
                    workers=settings.workers,
                    max_replicas=settings.max_replicas,
                    database_host=v["database_host"],
                    database_port=int(v["database_port"]),
                    max_connections=database["max_connections"],
                    artifact_root=v["artifact_root"],
                    region=args["region"],
                    namespace=settings.namespace,
                ),
                PlatformSettings(
                    access_mode=args["access_mode"],
                    in_flight_per_worker=settings.in_flight_per_worker,
                    auth_cache_ttl_seconds=settings.auth_cache_ttl_seconds,
                    tracking_database=args.get("database_name", TRACKING_DATABASE),
                    migrator_role=database["master_username"],
                    teams=tuple(args.get("teams", ())),
                ),
                PlatformSecrets(
                    app_role_password=v["app_password"],
                    app_role_salt=base64.b64decode(v["app_salt"]),
                    migrator_password=v["master_password"],
                    flask_secret_key=v["flask_key"],
                    admin_password=v["admin_password"],
                    stats_password=v["stats_password"],
                    stats_salt=base64.b64decode(v["stats_salt"]),
                ),
            )
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

"""Scheduled ``mlflow gc``: a CronJob that permanently removes runs deleted longer ago than the
configured age, with their artifacts (command: ``rendering.gc.render_gc``, the function the
local target's ``python -m localplatform gc`` runs).

Least privilege, by artifact mode:

* ``direct``: its own ServiceAccount with an IRSA role that may list the artifact prefix and
  delete objects under it (``rendering.iam.garbage_collection_policy``) — no read, no write, no
  KMS; egress to the database and HTTPS (S3, STS) only.
* ``proxied``: no AWS permission at all; gc resolves ``mlflow-artifacts:/`` through the tracking
  server (which deletes with its own role), so it gets the server's admin login and egress to
  the server pods only.

Both connect to RDS directly (verify-full, the image's RDS CA) as the application role, from a
0600 password file staged like the server's; never as the master user.
"""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.outputs import all_named
from components.pod_toolkit import (
    GC_COMPONENT,
    SERVER_COMPONENT,
    Resources,
    api_object,
    container,
    dns_egress,
    https_egress_without_instance_metadata,
    job_spec,
    network_policy_spec,
    pod_spec,
    postgres_egress,
    run_volume,
    scratch_volume,
    secrets_volume,
    stage_secrets_container,
    workload_labels,
)
from rendering import iam
from rendering.database_bootstrap import PgPassEntry, PostgresEndpoint, render_pgpass, sqlalchemy_url
from rendering.eks_pod import APP, PROXY_PORT, RDS_CA_IN_IMAGE, RUN_DIR, SERVICE_PORT
from rendering.gc import GcLaunch, GcSecrets, GcSettings, render_gc
from rendering.mlflow_server import ArtifactAccessMode, S3Client
from rendering.names import ADMIN_USERNAME, APP_ROLE
from stackconfig.schema import GarbageCollectionConfig, ServerConfig

SERVICE_ACCOUNT = f"{APP}-gc"
SECRET = f"{APP}-gc"


class GarbageCollectionArgs(TypedDict):
    settings: GarbageCollectionConfig
    server: ServerConfig
    access_mode: ArtifactAccessMode
    region: str
    database_address: pulumi.Input[str]
    database_port: pulumi.Input[int]
    database_name: str
    app_role_password: pulumi.Input[str]
    admin_password: pulumi.Input[str]
    bucket_arn: pulumi.Input[str]
    prefix: str
    oidc_provider_arn: pulumi.Input[str]
    issuer_host_path: pulumi.Input[str]
    tags: NotRequired[dict[str, str]]


def gc_launch(
    settings: GarbageCollectionConfig,
    *,
    access_mode: ArtifactAccessMode,
    namespace: str,
    region: str,
    database_address: str,
    database_port: int,
    database_name: str,
    admin_password: str | None,
) -> GcLaunch:
    endpoint = PostgresEndpoint(database_address, database_port, "verify-full", RDS_CA_IN_IMAGE)
    proxied = access_mode == "proxied"
    return render_gc(
        GcSettings(
            older_than=settings.older_than,
            backend_store_uri=sqlalchemy_url(endpoint, database_name, APP_ROLE, "mlflow-gc"),
            access_mode=access_mode,
            pgpassfile=f"{RUN_DIR}/gc.pgpass",
            tracking_uri=f"http://{APP}.{namespace}.svc.cluster.local:{SERVICE_PORT}" if proxied else None,
            s3=S3Client(region=region),
        ),
        GcSecrets(ADMIN_USERNAME, admin_password) if proxied and admin_password is not None else None,
    )


class GarbageCollection(pulumi.ComponentResource):
    role_arn: pulumi.Output[str] | None

    def __init__(self, name: str, args: GarbageCollectionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:GarbageCollection", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        server, settings, mode = args["server"], args["settings"], args["access_mode"]
        ns = server.namespace
        tags = args.get("tags", {})
        labels = workload_labels(GC_COMPONENT)
        annotations: dict[str, pulumi.Input[str]] = {}
        self.role_arn = None
        if mode == "direct":
            subject = f"system:serviceaccount:{ns}:{SERVICE_ACCOUNT}"
            self.role = aws.iam.Role(
                f"{name}-role",
                description="MLflow gc CronJob: list the artifact prefix, delete deleted runs' objects",
                assume_role_policy=pulumi.Output.json_dumps(
                    all_named(provider=args["oidc_provider_arn"], issuer=args["issuer_host_path"]).apply(
                        lambda v: {
                            "Version": "2012-10-17",
                            "Statement": [iam.irsa_trust_statement(v["provider"], v["issuer"], [subject])],
                        }
                    )
                ),
                tags=tags,
                opts=child,
            )
            self.policy = aws.iam.RolePolicy(
                f"{name}-artifacts",
                role=self.role.id,
                policy=pulumi.Output.from_input(args["bucket_arn"]).apply(
                    lambda arn: json.dumps(iam.garbage_collection_policy(arn, args["prefix"]))
                ),
                opts=child,
            )
            self.role_arn = self.role.arn
            annotations["eks.amazonaws.com/role-arn"] = self.role.arn
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-service-account",
            metadata={"name": SERVICE_ACCOUNT, "namespace": ns, "labels": labels, "annotations": annotations},
            automount_service_account_token=False,
            opts=child,
        )
        database = all_named(address=args["database_address"], port=args["database_port"])
        launch = all_named(database=database, admin_password=args["admin_password"]).apply(
            lambda v: gc_launch(
                settings,
                access_mode=mode,
                namespace=ns,
                region=args["region"],
                database_address=v["database"]["address"],
                database_port=int(v["database"]["port"]),
                database_name=args["database_name"],
                admin_password=v["admin_password"],
            )
        )
        pgpass = all_named(database=database, password=args["app_role_password"]).apply(
            lambda v: render_pgpass(
                [
                    PgPassEntry(
                        v["database"]["address"],
                        int(v["database"]["port"]),
                        args["database_name"],
                        APP_ROLE,
                        v["password"],
                    )
                ]
            )
        )
        secret_data: dict[str, pulumi.Input[str]] = {"gc.pgpass": pulumi.Output.secret(pgpass)}
        if mode == "proxied":
            secret_data["MLFLOW_TRACKING_PASSWORD"] = pulumi.Output.secret(args["admin_password"])
        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata={"name": SECRET, "namespace": ns, "labels": labels},
            type="Opaque",
            string_data=secret_data,
            opts=child,
        )
        self.cron_job = self._cron_job(name, server, settings, launch, labels, mode)
        self.network_policy = self._network_policy(name, server, labels, mode)
        self.register_outputs({"roleArn": self.role_arn, "schedule": settings.schedule})

    def _cron_job(
        self,
        name: str,
        server: ServerConfig,
        settings: GarbageCollectionConfig,
        launch: pulumi.Output[GcLaunch],
        labels: dict[str, str],
        mode: ArtifactAccessMode,
    ) -> k8s.batch.v1.CronJob:
        secret_env: list[dict[str, Any]] = []
        if mode == "proxied":
            secret_env = [
                {"name": "MLFLOW_TRACKING_USERNAME", "value": ADMIN_USERNAME},
                {
                    "name": "MLFLOW_TRACKING_PASSWORD",
                    "valueFrom": {"secretKeyRef": {"name": SECRET, "key": "MLFLOW_TRACKING_PASSWORD"}},
                },
            ]
        env = pulumi.Output.unsecret(launch).apply(
            lambda r: [{"name": k, "value": v} for k, v in sorted(r.env.items())] + secret_env
        )
        gc = container(
            "gc",
            server.image,
            Resources("100m", "512Mi").spec(),
            command=pulumi.Output.unsecret(launch).apply(lambda r: list(r.argv)),
            env=env,
            volumeMounts=[
                {"name": "run", "mountPath": RUN_DIR, "readOnly": True},
                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - its own emptyDir
            ],
        )
        pod = pod_spec(
            SERVICE_ACCOUNT,
            # gc reads the RDS CA from the image directly: only the password file is staged.
            init_containers=[
                stage_secrets_container(server.image, ["gc.pgpass"], Resources("50m", "64Mi").spec(), rds_ca=False)
            ],
            containers=[gc],
            volumes=[
                secrets_volume(SECRET, ["gc.pgpass"]),
                run_volume("16Mi"),
                scratch_volume("256Mi"),
            ],
            restart_policy="Never",
        )
        return k8s.batch.v1.CronJob(
            f"{name}-cron-job",
            metadata={
                "name": f"{APP}-gc",
                "namespace": server.namespace,
                "labels": labels,
                "annotations": {
                    "checkov.io/skip1": "CKV_K8S_35=proxied mode only: MLflow's client reads the tracking password "
                    "only from MLFLOW_TRACKING_PASSWORD (secretKeyRef); the database password is a mounted file",
                }
                if mode == "proxied"
                else {},
            },
            spec=api_object(
                {
                    "schedule": settings.schedule,
                    "timeZone": "Etc/UTC",
                    # Never two at once: both would try to delete the same runs.
                    "concurrencyPolicy": "Forbid",
                    "startingDeadlineSeconds": 3600,
                    "successfulJobsHistoryLimit": 3,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {
                        "metadata": {"labels": labels},
                        "spec": {
                            **job_spec(labels, pod, backoff_limit=2, active_deadline_seconds=6 * 3600),
                            "ttlSecondsAfterFinished": 7 * 86400,
                        },
                    },
                }
            ),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secret, self.service_account]),
        )

    def _network_policy(
        self, name: str, server: ServerConfig, labels: dict[str, str], mode: ArtifactAccessMode
    ) -> k8s.networking.v1.NetworkPolicy:
        egress: list[dict[str, Any]] = [dns_egress(), postgres_egress(server.vpc_cidr)]
        if mode == "direct":  # S3 and STS (IRSA); never the instance metadata service
            egress.append(https_egress_without_instance_metadata())
        else:  # the tracking server pods' proxy port only
            egress.append(
                {
                    "to": [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": SERVER_COMPONENT}}}],
                    "ports": [{"protocol": "TCP", "port": PROXY_PORT}],
                }
            )
        return k8s.networking.v1.NetworkPolicy(
            f"{name}-network-policy",
            metadata={"name": f"{APP}-gc", "namespace": server.namespace},
            spec=api_object(network_policy_spec(labels, egress=egress)),
            opts=pulumi.ResourceOptions(parent=self),
        )

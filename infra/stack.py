"""Builds the whole stack from its config; ``__main__`` exports the result."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components.access import ArtifactGrant, TrackingServerAccess, TrainingJobAccess
from components.artifact_store import ArtifactStore
from components.cluster_addons import ClusterIngress, TrackingHostRecord, load_balancer_hostname
from components.cluster_monitoring import ClusterMonitoring
from components.cluster_scaling import ClusterAutoscaling
from components.database import TrackingDatabase
from components.garbage_collection import GarbageCollection
from components.kms import KeyPolicy, LogsKey
from components.metrics import TrackingServerMetrics
from components.monitoring import Monitoring
from components.tracking_server import TrackingServer, TrackingServerArgs
from infra.cluster import ClusterFacts, cluster_facts, kubeconfig, kubernetes_provider
from infra.config_source import read_stack_config
from infra.keys import key_administrators, stack_log_groups
from rendering.key_policies import artifact_key_policy, replication_source_statement
from rendering.log_groups import rds_instance_identifier
from rendering.prometheus_stack import service_monitor_labels
from rendering.versions import image_mlflow_version, mlflow_version
from stackconfig import PROJECT, StackConfig


@dataclass(frozen=True)
class _AwsSide:
    """What the Kubernetes side consumes from the AWS side."""

    artifacts: ArtifactStore
    database: TrackingDatabase
    training: TrainingJobAccess
    server: TrackingServerAccess


def _check_image_version(config: StackConfig) -> None:
    """An image whose tag names another MLflow than requirements.txt pins would run the new
    migration Job name with the old MLflow (``rendering.versions.image_mlflow_version``).
    Refused by ``pulumi up``; a preview only warns, because a pull request that bumps MLflow is
    previewed against the image deployed now (CI builds the new one when it merges)."""
    built_with = image_mlflow_version(config.server.image)
    if built_with is None or built_with == mlflow_version():
        return
    message = (
        f"{PROJECT}:server.image: got an image built for MLflow {built_with}; expected one built for "
        f"MLflow {mlflow_version()} (requirements.txt): deploy the image CI builds from this commit"
    )
    if pulumi.runtime.is_dry_run():
        pulumi.log.warn(message)
        return
    raise pulumi.RunError(message)


def _ingress_path(
    config: StackConfig, facts: ClusterFacts, base: str, tags: dict[str, str], opts: pulumi.ResourceOptions
) -> ClusterIngress | None:
    """Created cluster: install the selected controller (and its TLS). Reused: taken as given."""
    cluster = config.cluster
    if not cluster.creates:
        return None
    ingress = config.server.ingress
    return ClusterIngress(
        f"{base}-ingress",
        {
            "class_name": ingress.class_name,
            "scheme": ingress.scheme,
            "controller_namespace": ingress.controller_namespace,
            "cluster_name": facts.name,
            "region": cluster.region,
            "vpc_id": facts.vpc_id,
            "oidc_provider_arn": facts.oidc_provider_arn,
            "issuer_host_path": facts.oidc_issuer_host_path,
            "hosted_zone_id": cluster.hosted_zone_id,
            "host": config.server.host,
            "cert_manager_issuer": ingress.cert_manager_issuer,
            "acme_email": cluster.acme_email,
            "acme_server": cluster.acme_server,
            "tags": tags,
            "load_balancer_subnet_ids": facts.load_balancer_subnet_ids,
        },
        opts=opts,
    )


def _restrict_artifact_key(
    config: StackConfig,
    base: str,
    artifacts: ArtifactStore,
    administrators: pulumi.Output[list[str]],
    training: TrainingJobAccess,
    server: TrackingServerAccess,
) -> None:
    """The artifact key's policy: its users are the roles that touch artifacts (the training role
    only in ``direct`` mode), created after the key because their policies name it."""
    if artifacts.kms_key is None:
        return
    users: list[pulumi.Output[str]] = [server.role_arn]
    if config.artifacts.access_mode == "direct":
        users.insert(0, training.role_arn)
    replication = artifacts.replication_role.arn if artifacts.replication_role else None
    region = config.cluster.region

    def policy(administrators: list[str], replication_role: str | None, *user_arns: str) -> str:
        extra = [replication_source_statement(replication_role, region)] if replication_role else []
        return json.dumps(artifact_key_policy(administrators, user_arns, *extra))

    KeyPolicy(
        f"{base}-artifacts-key",
        {
            "key_id": artifacts.kms_key.key_id,
            "policy": pulumi.Output.all(administrators, replication, *users).apply(lambda v: policy(*v)),
        },
    )


def _prometheus_operator(config: StackConfig, base: str, opts: pulumi.ResourceOptions) -> ClusterMonitoring | None:
    """Created cluster with ``monitoring.prometheusOperator``: install kube-prometheus-stack (its
    CRDs and a Prometheus). Reused: the operator is taken as given."""
    if not (config.cluster.creates and config.monitoring.prometheus_operator):
        return None
    return ClusterMonitoring(f"{base}-cluster-monitoring", {"namespace": config.server.monitoring_namespace}, opts=opts)


def build_stack() -> dict[str, pulumi.Input[object]]:
    config = read_stack_config()
    _check_image_version(config)
    stack = pulumi.get_stack()
    tags = {"project": "mlflow-platform", "stack": stack, **config.tags}
    base = f"mlflow-{stack}"
    database_name = f"{base}-db"
    region = config.cluster.region
    administrators = key_administrators(config)
    logs_key = LogsKey(
        f"{base}-logs",
        {
            "administrators": administrators,
            "region": region,
            "log_groups": stack_log_groups(config, base, rds_instance_identifier(database_name)),
            "tags": tags,
        },
    )
    facts = cluster_facts(config, base, tags, administrators, logs_key.key_arn)

    artifacts = ArtifactStore(
        f"{base}-artifacts",
        {
            "settings": config.artifacts,
            "tags": tags,
            "region": config.cluster.region,
            "key_administrators": administrators,
        },
    )
    database = TrackingDatabase(
        database_name,
        {
            "settings": config.database,
            "vpc_id": facts.vpc_id,
            "subnet_ids": facts.private_subnet_ids,
            "client_security_group_ids": facts.database_client_security_group_ids,
            "tags": tags,
            "region": region,
            "key_administrators": administrators,
            "log_kms_key_arn": logs_key.key_arn,
        },
    )
    grant = ArtifactGrant(
        bucket_arn=artifacts.bucket_arn, prefix=config.artifacts.prefix, kms_key_arn=artifacts.kms_key_arn
    )
    training = TrainingJobAccess(
        f"{base}-training",
        {
            "artifacts": grant,
            "trust": {
                "oidc_provider_arn": facts.oidc_provider_arn,
                "issuer_host_path": facts.oidc_issuer_host_path,
                "service_accounts": config.training.service_accounts,
            },
            "access_mode": config.artifacts.access_mode,
            "extra_principals": config.training.extra_principals,
            "tags": tags,
        },
    )
    server = TrackingServerAccess(
        f"{base}-server",
        {
            "artifacts": grant,
            "trust": {
                "oidc_provider_arn": facts.oidc_provider_arn,
                "issuer_host_path": facts.oidc_issuer_host_path,
                "service_accounts": [config.server.service_account_ref],
            },
            "access_mode": config.artifacts.access_mode,
            "tags": tags,
        },
    )
    _restrict_artifact_key(config, base, artifacts, administrators, training, server)
    aws_side = _AwsSide(artifacts=artifacts, database=database, training=training, server=server)
    if config.kubernetes:
        kubernetes_outputs = _kubernetes_side(config, facts, base, tags, aws_side)
    else:
        kubernetes_outputs = {}
        pulumi.log.warn(
            f"{PROJECT}:kubernetes is false: AWS resources only (first phase of a first deployment). Run a "
            "normal `pulumi up` next; on a deployed stack this would delete the tracking server (docs/cluster.md)"
        )
    monitoring = Monitoring(
        f"{base}-monitoring",
        {
            "settings": config.monitoring,
            "database": config.database,
            "server": config.server,
            "database_instance_identifier": database.instance.identifier,
            "ingress_class": config.server.ingress.class_name,
            "namespace": config.server.namespace,
            "region": region,
            "tags": tags,
        },
    )
    cluster_outputs: dict[str, pulumi.Input[object]] = {
        "clusterMode": config.cluster.mode,
        "clusterName": facts.name,
        "clusterEndpoint": facts.endpoint,
        "kubeconfig": kubeconfig(facts, region),
        "oidcProviderArn": facts.oidc_provider_arn,
        "vpcId": facts.vpc_id,
        "privateSubnetIds": list(facts.private_subnet_ids),
    }
    return {
        **cluster_outputs,
        **kubernetes_outputs,
        "artifactAccessMode": config.artifacts.access_mode,
        "artifactRoot": artifacts.artifact_root,
        "artifactBucketName": artifacts.bucket_name,
        "artifactBucketArn": artifacts.bucket_arn,
        "artifactKmsKeyArn": artifacts.kms_key_arn,
        "trainingRoleArn": training.role_arn,
        "trackingServerRoleArn": server.role_arn,
        "databaseAddress": database.address,
        "databasePort": database.port,
        "databaseName": database.database_name,
        "databaseMasterUsername": database.master_username,
        "databaseMasterPassword": database.master_password,
        "databaseMaxConnections": database.max_connections,
        "databaseSecurityGroupId": database.security_group_id,
        "alarmTopicArn": monitoring.topic_arn,
        "dashboardName": monitoring.dashboard_name,
    }


def _kubernetes_side(
    config: StackConfig,
    facts: ClusterFacts,
    base: str,
    tags: dict[str, str],
    aws_side: _AwsSide,
) -> dict[str, pulumi.Input[object]]:
    """Everything that talks to the Kubernetes API: the provider, the ingress path, the tracking
    server, its metrics and gc, and the tracking host's DNS record (it waits for the Ingress).
    Left out when ``mlflow-platform:kubernetes`` is false (first phase of a first deployment)."""
    artifacts, database, training, server = aws_side.artifacts, aws_side.database, aws_side.training, aws_side.server
    region = config.cluster.region
    kubernetes = kubernetes_provider(f"{base}-kubernetes", facts, region)
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": kubernetes})
    ingress = _ingress_path(config, facts, base, tags, on_cluster)
    if config.cluster.creates:
        # The node group grows for the HPA's pods (metrics-server is an EKS add-on of the cluster).
        ClusterAutoscaling(
            f"{base}-autoscaling",
            {
                "cluster_name": facts.name,
                "kubernetes_version": config.cluster.kubernetes_version,
                "region": region,
                "oidc_provider_arn": facts.oidc_provider_arn,
                "issuer_host_path": facts.oidc_issuer_host_path,
                "tags": tags,
            },
            opts=on_cluster,
        )
    tracking_args = TrackingServerArgs(
        settings=config.server,
        access_mode=config.artifacts.access_mode,
        artifact_root=artifacts.artifact_root,
        region=region,
        database={
            "address": database.address,
            "port": database.port,
            "max_connections": database.max_connections,
            "master_username": config.database.master_username,
            "master_password": database.master_password,
        },
        database_name=config.database.database_name,
        server_role_arn=server.role_arn,
        training_role_arn=training.role_arn,
        training_service_accounts=config.training.service_accounts,
        mlflow_version=mlflow_version(),
        monitoring=config.monitoring,
        rotation=config.rotation,
        load_balancer_subnet_ids=facts.load_balancer_subnet_ids,
        load_balancer_cidrs=facts.load_balancer_cidrs,
        teams=config.teams,
    )
    if ingress is not None and ingress.certificate_arn is not None:
        tracking_args["acm_certificate_arn"] = ingress.certificate_arn  # the certificate this stack issued
    tracking = TrackingServer(
        f"{base}-tracking",
        tracking_args,
        # The controller (and on nginx the ClusterIssuer) must exist before the Ingress.
        opts=pulumi.ResourceOptions(providers={"kubernetes": kubernetes}, depends_on=[ingress] if ingress else []),
    )
    after_server = pulumi.ResourceOptions(providers={"kubernetes": kubernetes}, depends_on=[tracking])
    prometheus = _prometheus_operator(config, base, on_cluster)
    TrackingServerMetrics(
        f"{base}-metrics",
        {
            "settings": config.monitoring,
            "namespace": config.server.namespace,
            "server_labels": tracking.server_labels,
            "admin_username": tracking.admin_username,
            "admin_password": tracking.admin_password,
            "service_monitor_labels": (
                service_monitor_labels() if prometheus else dict(config.monitoring.service_monitor_labels)
            ),
            "service_monitor_crds": prometheus.release if prometheus else None,
        },
        opts=after_server,
    )
    GarbageCollection(
        f"{base}-gc",
        {
            "settings": config.garbage_collection,
            "server": config.server,
            "access_mode": config.artifacts.access_mode,
            "region": region,
            "database_address": database.address,
            "database_port": database.port,
            "database_name": config.database.database_name,
            "app_role_password": tracking.app_role_password,
            "admin_password": tracking.admin_password,
            "bucket_arn": artifacts.bucket_arn,
            "prefix": config.artifacts.prefix,
            "oidc_provider_arn": facts.oidc_provider_arn,
            "issuer_host_path": facts.oidc_issuer_host_path,
            "tags": tags,
        },
        opts=after_server,
    )
    outputs: dict[str, pulumi.Input[object]] = {
        "trackingUrl": tracking.tracking_url,
        "trackingNamespace": tracking.namespace,
        "trackingAdminUsername": tracking.admin_username,
        "trackingAdminPassword": tracking.admin_password,
        "migrationJobName": tracking.migration_job_name,
    }
    if ingress is not None:
        record = TrackingHostRecord(
            f"{base}-dns",
            {
                "hosted_zone_id": config.cluster.hosted_zone_id,
                "host": config.server.host,
                "load_balancer_hostname": tracking.ingress.status.apply(load_balancer_hostname),
            },
        )
        outputs["trackingHostRecord"] = record.fqdn
        if ingress.certificate_arn is not None:
            outputs["trackingCertificateArn"] = ingress.certificate_arn
    return outputs

"""Builds the whole stack from its config; ``__main__`` exports the result."""

from __future__ import annotations

import pulumi

from components.access import ArtifactGrant, TrackingServerAccess, TrainingJobAccess
from components.artifact_store import ArtifactStore
from components.cluster_addons import ClusterIngress, TrackingHostRecord, load_balancer_hostname
from components.database import TrackingDatabase
from components.garbage_collection import GarbageCollection
from components.metrics import TrackingServerMetrics
from components.monitoring import Monitoring
from components.tracking_server import TrackingServer, TrackingServerArgs
from infra.cluster import ClusterFacts, cluster_facts, kubeconfig, kubernetes_provider
from infra.config_source import read_stack_config
from rendering.versions import image_mlflow_version, mlflow_version
from stackconfig import PROJECT, StackConfig


def _check_region(config: StackConfig) -> None:
    """The AWS provider's region and ours must agree: kubeconfig, S3 endpoint and add-ons use ours."""
    provider_region = pulumi.Config("aws").get("region")
    if provider_region and provider_region != config.cluster.region:
        raise pulumi.RunError(
            f"{PROJECT}:cluster.region: got {config.cluster.region!r}; expected the stack's aws:region "
            f"({provider_region!r})"
        )


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
        },
        opts=opts,
    )


def build_stack() -> dict[str, pulumi.Input[object]]:
    config = read_stack_config()
    _check_region(config)
    _check_image_version(config)
    stack = pulumi.get_stack()
    tags = {"project": "mlflow-platform", "stack": stack, **config.tags}
    base = f"mlflow-{stack}"
    facts = cluster_facts(config, base, tags)

    artifacts = ArtifactStore(
        f"{base}-artifacts", {"settings": config.artifacts, "tags": tags, "region": config.cluster.region}
    )
    database = TrackingDatabase(
        f"{base}-db",
        {
            "settings": config.database,
            "vpc_id": facts.vpc_id,
            "subnet_ids": facts.private_subnet_ids,
            "client_security_group_ids": facts.database_client_security_group_ids,
            "tags": tags,
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
    region = config.cluster.region
    kubernetes = kubernetes_provider(f"{base}-kubernetes", facts, region)
    on_cluster = pulumi.ResourceOptions(providers={"kubernetes": kubernetes})
    ingress = _ingress_path(config, facts, base, tags, on_cluster)
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
    TrackingServerMetrics(
        f"{base}-metrics",
        {
            "settings": config.monitoring,
            "namespace": config.server.namespace,
            "server_labels": tracking.server_labels,
            "admin_username": tracking.admin_username,
            "admin_password": tracking.admin_password,
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
    if ingress is not None:
        record = TrackingHostRecord(
            f"{base}-dns",
            {
                "hosted_zone_id": config.cluster.hosted_zone_id,
                "host": config.server.host,
                "load_balancer_hostname": tracking.ingress.status.apply(load_balancer_hostname),
            },
        )
        cluster_outputs["trackingHostRecord"] = record.fqdn
        if ingress.certificate_arn is not None:
            cluster_outputs["trackingCertificateArn"] = ingress.certificate_arn
    return {
        **cluster_outputs,
        "trackingUrl": tracking.tracking_url,
        "trackingNamespace": tracking.namespace,
        "trackingAdminUsername": tracking.admin_username,
        "trackingAdminPassword": tracking.admin_password,
        "migrationJobName": tracking.migration_job_name,
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

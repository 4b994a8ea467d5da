"""Builds the whole stack from its config; ``__main__`` exports the result."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.access import ArtifactGrant, TrackingServerAccess, TrainingJobAccess
from components.artifact_store import ArtifactStore
from components.database import TrackingDatabase
from components.tracking_server import TrackingServer
from infra.config_source import read_stack_config
from rendering.kubeconfig import eks_exec_kubeconfig
from rendering.versions import mlflow_version


def build_stack() -> dict[str, pulumi.Input[object]]:
    config = read_stack_config()
    stack = pulumi.get_stack()
    tags = {"project": "mlflow-platform", "stack": stack, **config.tags}
    base = f"mlflow-{stack}"

    artifacts = ArtifactStore(f"{base}-artifacts", {"settings": config.artifacts, "tags": tags})
    database = TrackingDatabase(
        f"{base}-db",
        {
            "settings": config.database,
            "vpc_id": config.network.vpc_id,
            "subnet_ids": config.network.private_subnet_ids,
            "client_security_group_ids": config.network.database_client_security_group_ids,
            "tags": tags,
        },
    )
    grant = ArtifactGrant(
        bucket_arn=artifacts.bucket_arn, prefix=config.artifacts.prefix, kms_key_arn=artifacts.kms_key_arn
    )
    oidc = config.cluster
    training = TrainingJobAccess(
        f"{base}-training",
        {
            "artifacts": grant,
            "trust": {
                "oidc_provider_arn": oidc.oidc_provider_arn,
                "issuer_host_path": oidc.oidc_issuer_host_path,
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
                "oidc_provider_arn": oidc.oidc_provider_arn,
                "issuer_host_path": oidc.oidc_issuer_host_path,
                "service_accounts": [config.server.service_account_ref],
            },
            "access_mode": config.artifacts.access_mode,
            "tags": tags,
        },
    )
    cluster = config.cluster
    kubernetes = k8s.Provider(
        f"{base}-kubernetes",
        kubeconfig=pulumi.Output.json_dumps(
            eks_exec_kubeconfig(cluster.name, cluster.endpoint, cluster.certificate_authority_data, cluster.region)
        ),
        enable_server_side_apply=True,
    )
    tracking = TrackingServer(
        f"{base}-tracking",
        {
            "settings": config.server,
            "access_mode": config.artifacts.access_mode,
            "artifact_root": artifacts.artifact_root,
            "region": cluster.region,
            "database": {
                "address": database.address,
                "port": database.port,
                "max_connections": database.max_connections,
                "master_username": config.database.master_username,
                "master_password": database.master_password,
            },
            "database_name": config.database.database_name,
            "server_role_arn": server.role_arn,
            "training_role_arn": training.role_arn,
            "training_service_accounts": config.training.service_accounts,
            "mlflow_version": mlflow_version(),
        },
        opts=pulumi.ResourceOptions(providers={"kubernetes": kubernetes}),
    )
    return {
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
    }

"""Builds the whole stack from its config; ``__main__`` exports the result."""

from __future__ import annotations

import pulumi

from components.access import ArtifactGrant, TrackingServerAccess, TrainingJobAccess
from components.artifact_store import ArtifactStore
from components.database import TrackingDatabase
from infra.config_source import read_stack_config


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
    return {
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

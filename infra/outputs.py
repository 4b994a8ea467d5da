"""What each stack output is: one declaration per output ``infra.stack.build_stack`` exports.

No Pulumi import: ``scripts/reference_docs.py`` writes ``docs/outputs.md`` from it (as
terraform-docs does from ``outputs.tf``), and ``tests/cloud/test_outputs_declared.py`` runs the
mocked program for both stack files in both cluster modes and fails when an exported output is not
declared here, a declared one is never exported, or the secret flag or the condition is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

When = Literal["always", "kubernetes", "created-host", "created-alb"]
"""``always``: every stack; ``kubernetes``: unless ``mlflow-platform:kubernetes`` is false (the
first phase of a first deployment); ``created-host``: mode create (the stack owns the DNS record);
``created-alb``: mode create with ``server.ingress.className`` alb (the stack issues the ACM
certificate)."""

WHEN_TEXT: dict[When, str] = {
    "always": "every stack",
    "kubernetes": "unless `kubernetes` is false",
    "created-host": "mode create (unless `kubernetes` is false)",
    "created-alb": "mode create with `server.ingress.className` alb (unless `kubernetes` is false)",
}


@dataclass(frozen=True)
class OutputDoc:
    doc: str
    secret: bool = False
    when: When = "always"


OUTPUTS: dict[str, OutputDoc] = {
    "clusterMode": OutputDoc("`create` or `reuse`: `cluster.mode`."),
    "clusterName": OutputDoc("The EKS cluster's name."),
    "clusterEndpoint": OutputDoc("The EKS API server URL."),
    "kubeconfig": OutputDoc("A kubeconfig for the cluster whose user runs `aws eks get-token` (no static token)."),
    "oidcProviderArn": OutputDoc("The cluster's IAM OIDC provider (IRSA trust)."),
    "vpcId": OutputDoc("The VPC the stack runs in (created or reused)."),
    "privateSubnetIds": OutputDoc("The private subnets of the database and the nodes."),
    "artifactAccessMode": OutputDoc("`direct` or `proxied`: `artifacts.accessMode`."),
    "artifactRoot": OutputDoc(
        "`s3://<bucket>/<prefix>`: the server's `--default-artifact-root` (direct) or `--artifacts-destination` "
        "(proxied)."
    ),
    "artifactBucketName": OutputDoc("The artifact bucket."),
    "artifactBucketArn": OutputDoc("The artifact bucket's ARN."),
    "artifactKmsKeyArn": OutputDoc("The bucket's customer KMS key (null with `artifacts.encryption` s3)."),
    "trainingRoleArn": OutputDoc("The role training jobs assume (IRSA, `training.extraPrincipals`)."),
    "trackingServerRoleArn": OutputDoc("The tracking server's own role."),
    "databaseAddress": OutputDoc("The RDS endpoint (host only)."),
    "databasePort": OutputDoc("The RDS port."),
    "databaseName": OutputDoc("The tracking database: `database.databaseName`."),
    "databaseMasterUsername": OutputDoc("The RDS master user: `database.masterUsername`."),
    "databaseMasterPassword": OutputDoc("The generated RDS master password: read it only when you must.", secret=True),
    "databaseMaxConnections": OutputDoc("The rendered `max_connections`, which pool sizing must fit under."),
    "databaseSecurityGroupId": OutputDoc("The database's security group."),
    "alarmTopicArn": OutputDoc("The SNS topic the CloudWatch alarms notify (`monitoring.alarmEmails`)."),
    "dashboardName": OutputDoc("The CloudWatch dashboard of the stack."),
    "trackingUrl": OutputDoc("`https://<server.host>`: what clients set as `MLFLOW_TRACKING_URI`.", when="kubernetes"),
    "trackingNamespace": OutputDoc("The tracking server's namespace.", when="kubernetes"),
    "trackingAdminUsername": OutputDoc("MLflow's admin user.", when="kubernetes"),
    "trackingAdminPassword": OutputDoc(
        "The admin's generated password (`rotation.adminPassword` rotates it).", secret=True, when="kubernetes"
    ),
    "migrationJobName": OutputDoc(
        "The database migration Job of this MLflow version and credential generation.", when="kubernetes"
    ),
    "trackingHostRecord": OutputDoc("The Route 53 record of `server.host`.", when="created-host"),
    "trackingCertificateArn": OutputDoc("The ACM certificate of `server.host`, DNS-validated.", when="created-alb"),
}

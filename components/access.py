"""IAM roles that touch the artifact store: one for training jobs, one for the tracking server.

Both are assumed through IRSA (EKS service accounts). Policies come from ``rendering.iam`` so
tests and the artifact-store probe see the same documents AWS receives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from rendering import iam
from stackconfig.schema import ArtifactAccessMode, ExtraPrincipal, ServiceAccountRef


class ArtifactGrant(TypedDict):
    """Where the artifacts live; the roles get access to this prefix and nothing wider."""

    bucket_arn: pulumi.Input[str]
    prefix: str
    kms_key_arn: pulumi.Input[str | None]


class IrsaTrust(TypedDict):
    oidc_provider_arn: pulumi.Input[str]
    issuer_host_path: pulumi.Input[str]
    """Outputs when the cluster is created in the same stack (its OIDC issuer is known only then)."""
    service_accounts: Sequence[ServiceAccountRef]


def _trust_policy(trust: IrsaTrust, extra: Sequence[ExtraPrincipal]) -> pulumi.Output[str]:
    subjects = [sa.subject for sa in trust["service_accounts"]]
    account: pulumi.Input[str] = ""
    if any(p.type == "Service" for p in extra):
        account = aws.get_caller_identity_output().account_id
    return pulumi.Output.json_dumps(
        pulumi.Output.all(trust["oidc_provider_arn"], trust["issuer_host_path"], account).apply(
            lambda values: {
                "Version": "2012-10-17",
                "Statement": [
                    iam.irsa_trust_statement(values[0], values[1], subjects),
                    *[
                        iam.service_trust_statement(p.identifier, values[2], p.source_arn)
                        for p in extra
                        if p.type == "Service"
                    ],
                    *_aws_statements(extra),
                ],
            }
        )
    )


def _aws_statements(extra: Sequence[ExtraPrincipal]) -> list[iam.Statement]:
    return [iam.aws_principal_trust_statement(p.identifier) for p in extra if p.type == "AWS"]


def _policy(grant: ArtifactGrant, render: Callable[[str, str, str | None], iam.PolicyDocument]) -> pulumi.Output[str]:
    return pulumi.Output.json_dumps(
        pulumi.Output.all(grant["bucket_arn"], grant["kms_key_arn"]).apply(
            lambda values: render(values[0], grant["prefix"], values[1])
        )
    )


class TrainingJobAccessArgs(TypedDict):
    artifacts: ArtifactGrant
    trust: IrsaTrust
    access_mode: ArtifactAccessMode
    extra_principals: NotRequired[Sequence[ExtraPrincipal]]
    tags: NotRequired[dict[str, str]]


class TrainingJobAccess(pulumi.ComponentResource):
    """The role training jobs run as. In ``direct`` mode it can put *and* get artifacts under
    the prefix (the guide's failure #1 is a role that can do only one). In ``proxied`` mode
    training jobs never touch S3, so the role gets no artifact permissions at all."""

    role_arn: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(self, name: str, args: TrainingJobAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:TrainingJobAccess", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role",
            description="MLflow training jobs: log and load artifacts",
            assume_role_policy=_trust_policy(args["trust"], args.get("extra_principals", ())),
            max_session_duration=12 * 3600,  # long training runs outlive the 1 h default
            tags=args.get("tags", {}),
            opts=child,
        )
        self.artifact_policy: aws.iam.RolePolicy | None = None
        if args["access_mode"] == "direct":
            self.artifact_policy = aws.iam.RolePolicy(
                f"{name}-artifacts",
                role=self.role.id,
                policy=_policy(args["artifacts"], iam.training_job_policy),
                opts=child,
            )
        self.role_arn = self.role.arn
        self.role_name = self.role.name
        self.register_outputs({"roleArn": self.role_arn, "roleName": self.role_name})


class TrackingServerAccessArgs(TypedDict):
    artifacts: ArtifactGrant
    trust: IrsaTrust
    access_mode: ArtifactAccessMode
    tags: NotRequired[dict[str, str]]


class TrackingServerAccess(pulumi.ComponentResource):
    """The tracking server's own role: read/list for the UI, delete for gc, write only when
    it proxies artifact traffic."""

    role_arn: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(self, name: str, args: TrackingServerAccessArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:TrackingServerAccess", name, {}, opts)
        child = pulumi.ResourceOptions(parent=self)
        mode = args["access_mode"]
        self.role = aws.iam.Role(
            f"{name}-role",
            description=f"MLflow tracking server ({mode} artifact access)",
            assume_role_policy=_trust_policy(args["trust"], ()),
            tags=args.get("tags", {}),
            opts=child,
        )
        self.artifact_policy = aws.iam.RolePolicy(
            f"{name}-artifacts",
            role=self.role.id,
            policy=_policy(
                args["artifacts"], lambda arn, prefix, key: iam.tracking_server_policy(mode, arn, prefix, key)
            ),
            opts=child,
        )
        self.role_arn = self.role.arn
        self.role_name = self.role.name
        self.register_outputs({"roleArn": self.role_arn, "roleName": self.role_name})

"""An EKS cluster built from raw ``aws.eks.*`` resources (``cluster.mode: create``).

Raw resources rather than ``pulumi_eks``: that package is a remote component, opaque under the
mocks the tests run, so none of the properties below could be asserted.

- Control plane: Kubernetes Secrets envelope-encrypted with a customer KMS key (rotation on);
  all five log types to a log group with a retention; a private API endpoint, the public one off
  or limited to listed CIDRs; authentication through EKS access entries only (mode ``API``), with
  cluster-admin granted explicitly to the configured principals, not implicitly to whoever ran
  the first ``pulumi up``; standard support only (no silent extended-support billing).
- Add-ons installed explicitly (``bootstrap_self_managed_addons=False``): VPC CNI with
  network-policy enforcement on (without it NetworkPolicy objects are accepted and ignored),
  kube-proxy, CoreDNS, EBS CSI, metrics-server (for the HPA); the CNI and EBS CSI run with their
  own IRSA roles, so the node role carries neither.
- One managed node group in the private subnets; IMDSv2 only with a hop limit of 1, so pods
  cannot borrow the node's credentials; encrypted gp3 root volumes.
- The IAM OIDC provider for IRSA.
- Reach for the deployer (``cluster.deployerCidrs``/``deployerSecurityGroupIds``): HTTPS on the
  cluster security group, and the publicly routable CIDRs on the public endpoint's allow list;
  read-only access entries for preview and drift roles (``rendering.cluster_access`` says why
  each policy).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.irsa import ClusterOidc, irsa_role, managed_policy_arn
from components.kms import rotating_key
from components.trust import service_trust_policy
from rendering.cluster_access import API_PORT, DRIFT_ACCESS_POLICY, PREVIEW_ACCESS_POLICY, public_endpoint_cidrs
from rendering.key_policies import cluster_secrets_key_policy
from rendering.log_groups import eks_log_group
from stackconfig.schema import ClusterConfig

LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
NETWORK_POLICY_CONFIGURATION = {"enableNetworkPolicy": "true"}
"""VPC CNI add-on configuration: runs the network-policy agent that enforces NetworkPolicy."""
ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"
SECRETS_KEY_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants")
"""What the control plane's role needs on the secrets key (as terraform-aws-eks grants it)."""


class ClusterArgs(TypedDict):
    settings: ClusterConfig
    vpc_id: pulumi.Input[str]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    tags: NotRequired[dict[str, str]]
    key_administrators: pulumi.Input[Sequence[str]]
    """Administrators of the Secrets key (``infra.keys``)."""
    log_kms_key_arn: NotRequired[pulumi.Input[str] | None]
    """The customer key of the control-plane log group (``components.kms.LogsKey``)."""


class Cluster(pulumi.ComponentResource):
    """The cluster, built by object family: control plane (role, Secrets key, log group, cluster),
    OIDC provider, access entries and the deployer's reach, IRSA roles, add-ons, node group. Each
    family is one method; all children are named ``<name>-…`` with ``parent=self``."""

    cluster_name: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority_data: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer_host_path: pulumi.Output[str]
    """``oidc.eks.<region>.amazonaws.com/id/<ID>``: the prefix of IRSA condition keys."""
    cluster_security_group_id: pulumi.Output[str]
    """The security group EKS attaches to the control-plane ENIs and to managed nodes, hence to
    pods (no per-pod security groups): the one the database admits."""
    secrets_key_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:Cluster", name, {}, opts)
        self._prefix = name  # every child's name starts with it (``Resource._name`` is the SDK's own)
        self._settings = args["settings"]
        self._tags = args.get("tags", {})
        self._partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self)).partition

        self._control_plane(args)
        self._oidc()
        self._access()
        self._irsa_roles()
        # Networking first: nodes only become Ready once the CNI runs on them.
        self.vpc_cni = self._addon("vpc-cni", role=self.cni_role, configuration=NETWORK_POLICY_CONFIGURATION)
        self.kube_proxy = self._addon("kube-proxy")
        self._nodes(args["private_subnet_ids"])
        # These run as Deployments: they need nodes to become active.
        self.coredns = self._addon("coredns", after=[self.node_group])
        self.ebs_csi = self._addon("aws-ebs-csi-driver", role=self.ebs_csi_role, after=[self.node_group])
        # Resource metrics for the HPA (EKS community add-on; "View resource usage with the
        # Kubernetes Metrics Server", EKS user guide): without it the HPA never scales.
        self.metrics_server = self._addon("metrics-server", after=[self.node_group])

        self.endpoint = self.cluster.endpoint
        self.certificate_authority_data = self.cluster.certificate_authority.apply(lambda ca: ca.data or "")
        self.secrets_key_arn = self.secrets_key.arn
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "endpoint": self.endpoint,
                "certificateAuthorityData": self.certificate_authority_data,
                "oidcProviderArn": self.oidc_provider_arn,
                "oidcIssuerHostPath": self.oidc_issuer_host_path,
                "clusterSecurityGroupId": self.cluster_security_group_id,
                "secretsKeyArn": self.secrets_key_arn,
            }
        )

    @property
    def _child_opts(self) -> pulumi.ResourceOptions:
        """Options of a child: parented here (so it inherits the provider and protect)."""
        return pulumi.ResourceOptions(parent=self)

    def _control_plane_role(self, key_administrators: pulumi.Input[Sequence[str]]) -> list[pulumi.Resource]:
        """The cluster role, the Secrets key it uses, and its permissions (returned: the cluster
        waits for them)."""
        name, settings, tags, child = self._prefix, self._settings, self._tags, self._child_opts
        self.cluster_role = aws.iam.Role(
            f"{name}-role",
            description=f"EKS control plane of {settings.name}",
            # As AWS documents the cluster role's trust (TagSession: session tags for the control plane).
            assume_role_policy=service_trust_policy("eks.amazonaws.com", ["sts:AssumeRole", "sts:TagSession"]),
            tags=tags,
            opts=child,
        )
        # The key's policy names the cluster role as its user, so the role comes first.
        self.secrets_key = rotating_key(
            f"{name}-secrets-key",
            f"{settings.name}: envelope encryption of Kubernetes Secrets",
            tags,
            child,
            policy=pulumi.Output.all(key_administrators, self.cluster_role.arn).apply(
                lambda values: json.dumps(cluster_secrets_key_policy(values[0], values[1]))
            ),
        )
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-role-cluster-policy",
            role=self.cluster_role.name,
            policy_arn=managed_policy_arn(self._partition, "AmazonEKSClusterPolicy"),
            opts=child,
        )
        # EKS uses the key as the cluster role: without this the cluster cannot be created.
        encryption_policy = aws.iam.RolePolicy(
            f"{name}-role-secrets-key",
            role=self.cluster_role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "SecretsEnvelopeEncryption",
                            "Effect": "Allow",
                            "Action": list(SECRETS_KEY_ACTIONS),
                            "Resource": self.secrets_key.arn,
                        }
                    ],
                }
            ),
            opts=child,
        )
        return [cluster_policy, encryption_policy]

    def _control_plane(self, args: ClusterArgs) -> None:
        """The control plane's role and key, its log group, then the EKS cluster waiting for them."""
        name, settings, tags, child = self._prefix, self._settings, self._tags, self._child_opts
        role_permissions = self._control_plane_role(args["key_administrators"])
        # Created before the cluster so that EKS finds it and keeps logs only this long, encrypted
        # with the stack's logs key (whose policy admits CloudWatch Logs for this group).
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=eks_log_group(settings.name),
            retention_in_days=settings.log_retention_days,
            kms_key_id=args.get("log_kms_key_arn"),
            tags=tags,
            opts=child,
        )
        public_cidrs = public_endpoint_cidrs(settings.public_access_cidrs, settings.deployer_cidrs)
        vpc_config: aws.eks.ClusterVpcConfigArgsDict = {
            "subnet_ids": list(args["private_subnet_ids"]),
            "endpoint_private_access": True,
            "endpoint_public_access": bool(public_cidrs),
        }
        if public_cidrs:
            vpc_config["public_access_cidrs"] = list(public_cidrs)
        self.cluster = aws.eks.Cluster(
            f"{name}-eks",
            name=settings.name,
            version=settings.kubernetes_version,
            role_arn=self.cluster_role.arn,
            vpc_config=vpc_config,
            access_config={"authentication_mode": "API", "bootstrap_cluster_creator_admin_permissions": False},
            enabled_cluster_log_types=list(LOG_TYPES),
            encryption_config={"provider": {"key_arn": self.secrets_key.arn}, "resources": ["secrets"]},
            bootstrap_self_managed_addons=False,
            upgrade_policy={"support_type": "STANDARD"},
            deletion_protection=settings.deletion_protection,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.log_group, *role_permissions]),
        )
        self.cluster_name = self.cluster.name
        self.cluster_security_group_id = self.cluster.vpc_config.apply(lambda vpc: vpc.cluster_security_group_id or "")

    def _oidc(self) -> None:
        """The IAM OIDC provider for the cluster's issuer: what IRSA roles trust."""
        issuer = self.cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer if ids and ids[0].oidcs else None)
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{self._prefix}-oidc",
            url=issuer.apply(_require_issuer),
            client_id_lists=["sts.amazonaws.com"],
            tags=self._tags,
            opts=self._child_opts,
        )
        self.oidc_issuer_host_path = issuer.apply(lambda url: _require_issuer(url).removeprefix("https://"))
        self.oidc_provider_arn = self.oidc_provider.arn

    def _access(self) -> None:
        """One access entry and one cluster-scoped policy per principal: admins (the deployer among
        them), then the read-only preview and drift roles (rendering.cluster_access says why); and
        the deployer's network reach to the API endpoint."""
        settings = self._settings

        def entries(kind: str, principals: Sequence[str], policy: str) -> list[aws.eks.AccessPolicyAssociation]:
            return [self._access_entry(kind, index, principal, policy) for index, principal in enumerate(principals)]

        self.admin_access = entries("admin", settings.admin_role_arns, ADMIN_ACCESS_POLICY)
        self.read_only_access = [
            *entries("preview", settings.preview_role_arns, PREVIEW_ACCESS_POLICY),
            *entries("drift", settings.drift_role_arns, DRIFT_ACCESS_POLICY),
        ]
        self.deployer_rules = self._deployer_rules()

    def _irsa_roles(self) -> None:
        """The add-ons' own roles (components.irsa), so the node role carries neither."""
        self.cni_role = self._irsa_role("vpc-cni", "kube-system", "aws-node", "AmazonEKS_CNI_Policy")
        self.ebs_csi_role = self._irsa_role(
            "ebs-csi", "kube-system", "ebs-csi-controller-sa", "service-role/AmazonEBSCSIDriverPolicy"
        )

    def _irsa_role(self, suffix: str, namespace: str, service_account: str, policy: str) -> aws.iam.Role:
        role_name = f"{self._prefix}-{suffix}"
        return irsa_role(
            role_name,
            ClusterOidc(self.oidc_provider_arn, self.oidc_issuer_host_path),
            (namespace, service_account),
            self._child_opts,
            tags=self._tags,
            owner=self._settings.name,
            policy_attachments={f"{role_name}-policy": managed_policy_arn(self._partition, policy)},
        ).role

    def _addon(
        self,
        addon_name: str,
        *,
        role: aws.iam.Role | None = None,
        configuration: dict[str, str] | None = None,
        after: Sequence[pulumi.Resource] = (),
    ) -> aws.eks.Addon:
        """An EKS add-on at the configured version, overwriting what it finds (the cluster is
        created without self-managed add-ons), created after ``after``."""
        return aws.eks.Addon(
            f"{self._prefix}-{addon_name}",
            cluster_name=self.cluster.name,
            addon_name=addon_name,
            addon_version=self._settings.addon_versions.get(addon_name),
            service_account_role_arn=role.arn if role else None,
            configuration_values=json.dumps(configuration) if configuration else None,
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=self._tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(after)),
        )

    def _nodes(self, private_subnet_ids: Sequence[pulumi.Input[str]]) -> None:
        """The node role, the launch template (IMDSv2 only, hop limit 1; encrypted gp3 root
        volume) and the managed node group, which waits for the CNI and kube-proxy."""
        name, settings, tags, child = self._prefix, self._settings, self._tags, self._child_opts
        self.node_role = aws.iam.Role(
            f"{name}-node",
            description=f"{settings.name}: managed nodes",
            assume_role_policy=service_trust_policy("ec2.amazonaws.com", ["sts:AssumeRole"]),
            tags=tags,
            opts=child,
        )
        node_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=self.node_role.name,
                policy_arn=managed_policy_arn(self._partition, policy),
                opts=child,
            )
            for policy in ("AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly")
        ]
        nodes = settings.node_group
        self.launch_template = self._launch_template()
        self.node_group = aws.eks.NodeGroup(
            f"{name}-nodes",
            cluster_name=self.cluster.name,
            node_role_arn=self.node_role.arn,
            subnet_ids=list(private_subnet_ids),
            instance_types=list(nodes.instance_types),
            capacity_type=nodes.capacity_type,
            ami_type=nodes.ami_type,
            scaling_config={
                "desired_size": nodes.desired_size,
                "min_size": nodes.min_size,
                "max_size": nodes.max_size,
            },
            update_config={"max_unavailable": 1},
            launch_template={"id": self.launch_template.id, "version": self.launch_template.latest_version.apply(str)},
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*node_policies, self.vpc_cni, self.kube_proxy],
                # The cluster autoscaler moves the desired size between minSize and maxSize: not drift.
                ignore_changes=["scalingConfig.desiredSize"],
            ),
        )

    def _launch_template(self) -> aws.ec2.LaunchTemplate:
        """What the node group's instances start from: IMDSv2 only with a hop limit of 1, so pods
        cannot borrow the node's credentials; an encrypted gp3 root volume."""
        name, settings, tags, child = self._prefix, self._settings, self._tags, self._child_opts
        nodes = settings.node_group
        return aws.ec2.LaunchTemplate(
            f"{name}-nodes",
            description=f"{settings.name}: IMDSv2 only (hop limit 1), encrypted gp3 root volume",
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            block_device_mappings=[
                {
                    "device_name": "/dev/xvda",
                    "ebs": {
                        "volume_size": nodes.disk_size_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            tag_specifications=[{"resource_type": "instance", "tags": {**tags, "Name": f"{settings.name}-node"}}],
            update_default_version=True,
            tags=tags,
            opts=child,
        )

    def _access_entry(self, kind: str, index: int, principal: str, policy: str) -> aws.eks.AccessPolicyAssociation:
        """An access entry of type STANDARD for ``principal`` with one access policy, cluster-wide."""
        child = self._child_opts
        entry = aws.eks.AccessEntry(
            f"{self._prefix}-{kind}-{index}",
            cluster_name=self.cluster.name,
            principal_arn=principal,
            type="STANDARD",
            tags=self._tags,
            opts=child,
        )
        return aws.eks.AccessPolicyAssociation(
            f"{self._prefix}-{kind}-{index}",
            cluster_name=self.cluster.name,
            principal_arn=entry.principal_arn,
            policy_arn=pulumi.Output.concat("arn:", self._partition, ":eks::aws:cluster-access-policy/", policy),
            access_scope={"type": "cluster"},
            opts=child,
        )

    def _deployer_rules(self) -> list[aws.vpc.SecurityGroupIngressRule]:
        """HTTPS from the deployer's network to the API endpoint's ENIs, which carry the cluster
        security group (EKS creates it admitting only itself)."""
        name, settings, tags, child = self._prefix, self._settings, self._tags, self._child_opts

        def https_from(
            suffix: str, source: str, *, cidr: str | None = None, group: str | None = None
        ) -> aws.vpc.SecurityGroupIngressRule:
            return aws.vpc.SecurityGroupIngressRule(
                f"{name}-{suffix}",
                security_group_id=self.cluster_security_group_id,
                ip_protocol="tcp",
                from_port=API_PORT,
                to_port=API_PORT,
                cidr_ipv4=cidr,
                referenced_security_group_id=group,
                description=f"Kubernetes API from the deployer {source}",
                tags=tags,
                opts=child,
            )

        return [
            *(https_from(f"deployer-{i}", cidr, cidr=cidr) for i, cidr in enumerate(settings.deployer_cidrs)),
            *(
                https_from(f"deployer-sg-{i}", group, group=group)
                for i, group in enumerate(settings.deployer_security_group_ids)
            ),
        ]


def _require_issuer(url: str | None) -> str:
    if not url:
        raise ValueError("the EKS cluster reports no OIDC issuer; IRSA cannot be set up")
    return url

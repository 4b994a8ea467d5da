"""Declarations of the ``cluster`` and ``network`` sections (``stackconfig.schema``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .. import patterns as p
from ..declare import ClusterMode, key, log_retention

NatGateways = Literal["single", "perAz"]
CapacityType = Literal["ON_DEMAND", "SPOT"]


@dataclass(frozen=True)
class LoadBalancerSubnet:
    """A subnet of an existing VPC reserved for the tracking server's load balancer: no node
    group may use it (the NetworkPolicy admits its CIDR as the load balancer)."""

    id: str
    cidr_block: str


@dataclass(frozen=True)
class NetworkConfig:
    """The VPC: an existing one (mode reuse) or the one the program builds (mode create)."""

    vpc_id: str = field(
        default="",
        metadata=key(
            "The existing VPC.",
            pattern=p.VPC_ID,
            expected="a VPC id like vpc-0123456789abcdef0",
            required=True,
            mode="reuse",
        ),
    )
    private_subnet_ids: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Private subnets of the existing VPC for the database (a subnet group) and the nodes.",
            pattern=p.SUBNET_ID,
            expected="subnet ids (subnet-…) in different AZs",
            min_items=2,
            required=True,
            mode="reuse",
        ),
    )
    database_client_security_group_ids: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Security groups allowed to reach Postgres on 5432 (the cluster's node/pod groups).",
            pattern=p.SG_ID,
            expected="security group ids (sg-…)",
            min_items=1,
            required=True,
            mode="reuse",
        ),
    )
    load_balancer_subnets: tuple[LoadBalancerSubnet, ...] = field(
        default=(),
        metadata=key(
            "The subnets the load balancer goes to. Its NetworkPolicy admits their CIDRs alone, so none may be "
            "a node subnet (docs/cluster-add-ons.md). Mode create makes dedicated ones.",
            required=True,
            mode="reuse",
            explicit=True,
            allowed="at least two `{id: subnet-…, cidrBlock: <IPv4 CIDR>}` in different AZs, none of "
            "`privateSubnetIds`, not overlapping, inside `server.vpcCidr`",
        ),
    )
    cidr_block: str = field(
        default="10.0.0.0/16",
        metadata=key(
            "The created VPC's CIDR; `server.vpcCidr` must equal it.",
            pattern=p.CIDR,
            expected="an IPv4 CIDR from /16 to /20",
            mode="create",
            allowed="a private IPv4 network (RFC 1918) from /16 to /20, without host bits",
        ),
    )
    availability_zone_count: int = field(
        default=3, metadata=key("AZs of the created VPC (subnets, NAT).", low=2, high=3, mode="create")
    )
    availability_zones: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Explicit AZ names; empty: the first `availabilityZoneCount` available in the region (no opt-in "
            "zones, none EKS does not support). Each is checked against the account's zone ids at preview "
            "(components/network.py: EKS cannot place a cluster in zone ids `use1-az3`, `usw1-az2`, `cac1-az3`, "
            "and a zone name maps to a different id in each account).",
            pattern=p.AZ_NAME,
            expected="availability zone names (us-east-1a, …)",
            min_items=2,
            mode="create",
            allowed="exactly `availabilityZoneCount` zone names, or none",
        ),
    )
    nat_gateways: NatGateways = field(
        default="perAz",
        metadata=key(
            "`perAz`: one NAT gateway per AZ (an AZ outage does not cut the others' egress); `single`: one for "
            "the whole VPC (cheaper, for throwaway stacks).",
            mode="create",
        ),
    )
    flow_log_retention_days: int = field(
        default=90, metadata=log_retention("Retention of the VPC flow-log group.", mode="create")
    )
    transit_gateway_id: str = field(
        default="",
        metadata=key(
            "A transit gateway the created VPC attaches to (private subnets), with a route back to each "
            "RFC 1918/6598 `cluster.deployerCidrs` network; empty: no attachment.",
            pattern=p.TRANSIT_GATEWAY_ID,
            expected="a transit gateway id like tgw-0123456789abcdef0",
            mode="create",
        ),
    )


EKS_ADDONS = ("vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "metrics-server")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class NodeGroupConfig:
    """The managed node group (mode create). Defaults are production-sized: on-demand, three
    nodes, one per AZ."""

    instance_types: tuple[str, ...] = field(
        default=("m6i.xlarge",),
        metadata=key(
            "EC2 types whose node capacity is known (rendering/node_capacity.py); each must hold "
            "`server.maxReplicas` server pods on `maxSize` nodes (docs/cluster-add-ons.md).",
            pattern=p.INSTANCE_TYPE,
            expected="EC2 instance types like m6i.xlarge",
            min_items=1,
        ),
    )
    capacity_type: CapacityType = field(default="ON_DEMAND", metadata=key("On-demand or spot nodes."))
    ami_type: str = field(
        default="AL2023_x86_64_STANDARD",
        metadata=key(
            "The EKS AMI type of the nodes.",
            pattern=p.AMI_TYPE,
            expected="an EKS AMI type like AL2023_x86_64_STANDARD",
            allowed="`AL2023_*` or `BOTTLEROCKET_*`",
        ),
    )
    desired_size: int = field(
        default=3,
        metadata=key(
            "Nodes at creation (the cluster autoscaler moves it later).",
            low=1,
            high=100,
            explicit=True,
            allowed="1–100, from `minSize` to `maxSize`",
            shown_default="3 (at least `minSize`)",
        ),
    )
    min_size: int = field(default=3, metadata=key("Fewest nodes.", low=1, high=100))
    max_size: int = field(
        default=6,
        metadata=key(
            "Most nodes the cluster autoscaler may run.",
            low=1,
            high=100,
            explicit=True,
            allowed="1–100, at least `desiredSize`",
            shown_default="6 (at least `desiredSize`)",
        ),
    )
    disk_size_gib: int = field(default=50, metadata=key("Encrypted gp3 root volume per node.", low=20, high=2000))


@dataclass(frozen=True)
class ClusterConfig:
    """The EKS cluster: built by the program (mode create) or taken as given (mode reuse);
    docs/cluster.md says what each mode builds and needs."""

    mode: ClusterMode = field(
        metadata=key(
            "`create`: the stack builds the VPC, EKS cluster, node group, IRSA provider, add-ons and ingress "
            "path; `reuse`: it takes an existing cluster and network from config.",
            required=True,
        )
    )
    name: str = field(
        metadata=key("The EKS cluster name.", pattern=p.EKS_NAME, expected="the EKS cluster name", required=True)
    )
    region: str = field(
        default="us-east-1",
        metadata=key("Must equal `aws:region`.", pattern=p.REGION, expected="an AWS region like us-east-1"),
    )
    oidc_provider_arn: str = field(
        default="",
        metadata=key(
            "IAM OIDC provider of the existing cluster, for IRSA trust.",
            pattern=p.OIDC_ARN,
            expected="the cluster's IAM OIDC provider ARN, "
            "arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<ID>",
            required=True,
            mode="reuse",
        ),
    )
    endpoint: str = field(
        default="",
        metadata=key(
            "API server URL of the existing cluster; with `certificateAuthorityData` it builds the exec-based "
            "kubeconfig.",
            pattern=p.EKS_ENDPOINT,
            expected="the cluster's API endpoint, https://….eks.amazonaws.com",
            required=True,
            mode="reuse",
        ),
    )
    certificate_authority_data: str = field(
        default="",
        metadata=key(
            "The existing cluster's CA.",
            pattern=p.BASE64,
            expected="the cluster CA, base64 (as in kubeconfig)",
            required=True,
            mode="reuse",
        ),
    )
    kubernetes_version: str = field(
        default="1.36",
        metadata=key(
            "Kubernetes minor version of the created cluster.",
            pattern=p.K8S_VERSION,
            expected="a Kubernetes minor version EKS offers, as a string like '1.36'",
            mode="create",
        ),
    )
    public_access_cidrs: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Who may reach the public API endpoint; empty: the public endpoint is disabled.",
            mode="create",
            explicit=True,
            allowed="IPv4 CIDRs, each at most a /16, never `0.0.0.0/0`",
        ),
    )
    admin_role_arns: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "IAM principals given cluster-admin (AmazonEKSClusterAdminPolicy) through EKS access entries (the "
            "deployer among them).",
            pattern=p.PRINCIPAL_ARN,
            expected="IAM role or user ARNs given cluster-admin through EKS access entries (include the role "
            "that runs pulumi)",
            min_items=1,
            required=True,
            mode="create",
        ),
    )
    deletion_protection: bool = field(default=True, metadata=key("EKS deletion protection.", mode="create"))
    log_retention_days: int = field(
        default=90, metadata=log_retention("Retention of the control-plane log group.", mode="create")
    )
    node_group: NodeGroupConfig = field(
        default_factory=NodeGroupConfig,
        metadata=key("The managed node group (the `cluster.nodeGroup` keys).", mode="create", explicit=True),
    )
    addon_versions: dict[str, str] = field(
        default_factory=dict,
        metadata=key(
            "Pinned EKS add-on versions; an add-on not listed gets EKS's default for the cluster version.",
            mode="create",
            explicit=True,
            allowed=f"`{{<add-on>: vX.Y.Z-eksbuild.N}}`, add-ons: {', '.join(EKS_ADDONS)}",
        ),
    )
    hosted_zone_id: str = field(
        default="",
        metadata=key(
            "Route 53 public zone for the tracking host's record and certificate validation.",
            pattern=p.HOSTED_ZONE_ID,
            expected="the Route 53 public hosted zone id (Z…) holding the tracking host",
            required=True,
            mode="create",
        ),
    )
    acme_email: str = field(
        default="",
        metadata=key(
            "Let's Encrypt account e-mail for the cert-manager ClusterIssuer; required with "
            "`server.ingress.className` nginx.",
            pattern=p.EMAIL,
            expected="an e-mail address for Let's Encrypt",
            mode="create",
        ),
    )
    acme_server: str = field(
        default=LETS_ENCRYPT,
        metadata=key(
            "ACME directory (Let's Encrypt staging for experiments).",
            pattern=p.HTTPS_URL,
            expected="an ACME directory URL (https://…)",
            mode="create",
        ),
    )
    deployer_cidrs: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "The network `pulumi` runs from (CI runners, VPN): an HTTPS rule on the cluster security group for "
            "each, and the publicly routable ones on the public endpoint's allow list when it is on "
            '(docs/cluster.md, "First deployment"); RFC 1918/6598 ones need `network.transitGatewayId`.',
            mode="create",
            explicit=True,
            allowed="IPv4 CIDRs: RFC 1918/6598 ones at most a /8, public ones at most a /16, never `0.0.0.0/0`, "
            "outside `network.cidrBlock`",
        ),
    )
    deployer_security_group_ids: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Security groups of the deployer's machines (a peered VPC or one reached through the transit "
            "gateway): an HTTPS rule on the cluster security group for each.",
            pattern=p.SG_ID,
            expected="security group ids (sg-…) of the deployer's machines, admitted on 443 by the cluster "
            "security group",
            min_items=1,
            mode="create",
        ),
    )
    preview_role_arns: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Roles of pull-request previews: an access entry with AmazonEKSViewPolicy (no Secrets, no writes; "
            "SSA dry runs they may not make fall back to input diffs).",
            pattern=p.PRINCIPAL_ARN,
            expected="IAM role or user ARNs of pull-request previews (read-only access entry, no Secrets)",
            min_items=1,
            mode="create",
        ),
    )
    drift_role_arns: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "Roles of the nightly `preview --refresh`: an access entry with AmazonEKSAdminViewPolicy (read "
            "everything, Secrets included: refresh reads every object the stack owns; no writes). A role may "
            "be in only one of `adminRoleArns`, `previewRoleArns`, `driftRoleArns`.",
            pattern=p.PRINCIPAL_ARN,
            expected="IAM role or user ARNs of drift checks (read-only access entry, Secrets included)",
            min_items=1,
            mode="create",
        ),
    )

    @property
    def creates(self) -> bool:
        return self.mode == "create"

    @property
    def oidc_issuer_host_path(self) -> str:
        """``oidc.eks.<region>.amazonaws.com/id/<ID>``: the prefix of IRSA condition keys (mode reuse)."""
        return self.oidc_provider_arn.split(":oidc-provider/", 1)[1]

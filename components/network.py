"""The VPC an EKS cluster created by this stack runs in (``cluster.mode: create``).

Private subnets (nodes, pods, the database), dedicated load-balancer subnets (internal load
balancers only, no pods) and public subnets (internet-facing load balancers, NAT gateways) in
every AZ; private egress through NAT (one per
AZ, or one for the VPC on a cheap stack); an S3 gateway endpoint so artifact traffic stays off
NAT; VPC flow logs; the default security group stripped of its rules. With
``network.transitGatewayId``, an attachment in the private subnets and, in every private route
table, a route back to each RFC 1918 deployer network (``cluster.deployerCidrs``): the API's
private endpoint answers the CI runners through it (docs/cluster.md, "First deployment").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from components.trust import service_trust_policy
from rendering.cluster_access import connected_deployer_cidrs
from rendering.log_groups import flow_log_group
from stackconfig import PROJECT
from stackconfig.schema import NetworkConfig


@dataclass(frozen=True)
class SubnetPlan:
    private: tuple[str, ...]
    public: tuple[str, ...]
    load_balancer: tuple[str, ...] = ()
    """Dedicated subnets for internal load balancers: no node, hence no pod, ever gets an address
    there, so a NetworkPolicy ``ipBlock`` of their CIDRs admits the load balancers and nothing else
    (with the VPC CNI every pod has a VPC address: the VPC CIDR would admit every pod)."""


def plan_subnets(cidr_block: str, zone_count: int) -> SubnetPlan:
    """Quarters of the VPC for the private subnets (pods take VPC addresses: they get the room),
    and slices of the last quarter for the public ones (load balancers and NAT gateways only).

    ``10.0.0.0/16`` with 3 AZs: private 10.0.0.0/18, 10.0.64.0/18, 10.0.128.0/18; public
    10.0.192.0/20, 10.0.208.0/20, 10.0.224.0/20.
    """
    if not 1 <= zone_count <= 3:
        raise ValueError(f"zone_count must be from 1 to 3, got {zone_count}")
    quarters = list(ipaddress.IPv4Network(cidr_block, strict=True).subnets(prefixlen_diff=2))
    public = list(quarters[3].subnets(prefixlen_diff=2))
    # The last sixteenth (unused by the plan above) split in four: /22s for a /16, /26s for a /20,
    # above the /27 and 8 free addresses an ALB needs per subnet (ELB user guide, "Subnets for
    # your load balancer").
    load_balancer = list(public[3].subnets(prefixlen_diff=2))
    return SubnetPlan(
        private=tuple(str(net) for net in quarters[:zone_count]),
        public=tuple(str(net) for net in public[:zone_count]),
        load_balancer=tuple(str(net) for net in load_balancer[:zone_count]),
    )


class NetworkArgs(TypedDict):
    settings: NetworkConfig
    cluster_name: str
    """Tags subnets for the cluster's load balancers (``kubernetes.io/cluster/<name>``)."""
    region: str
    tags: NotRequired[dict[str, str]]
    deployer_cidrs: NotRequired[Sequence[str]]
    """``cluster.deployerCidrs``: the connected-network ones get a route through the transit gateway."""
    log_kms_key_arn: NotRequired[pulumi.Input[str] | None]
    """The customer key of the flow-log group (``components.kms.LogsKey``)."""


EKS_UNSUPPORTED_ZONE_IDS: dict[str, tuple[str, ...]] = {
    "us-east-1": ("use1-az3",),
    "us-west-1": ("usw1-az2",),
    "ca-central-1": ("cac1-az3",),
    "cn-north-1": ("cnn1-az4",),
}
"""Zone IDs where EKS cannot place a cluster's subnets (CreateCluster answers
UnsupportedAvailabilityZoneException). Source: Amazon EKS User Guide, "View Amazon EKS networking
requirements for VPC and subnets" (network-reqs.html#network-requirements-subnets) for the first
three, and eksctl's zone-ID deny list, which adds cnn1-az4 (eksctl-io/eksctl pkg/az, the
"unsupported zone" entries per region in az_test.go). Zone *names* map to IDs differently in
every account (us-east-1a is use1-az3 in some), so the exclusion is by ID."""


def pick_zones(
    names: Sequence[str], zone_ids: Sequence[str], count: int, region: str, wanted: Sequence[str] = ()
) -> list[str]:
    """The zone names the subnets go to: ``wanted`` (``network.availabilityZones``) after checking
    each is available here and not an EKS-unsupported zone ID, or else the first ``count``
    available zones whose ID EKS supports."""
    unsupported = set(EKS_UNSUPPORTED_ZONE_IDS.get(region, ()))
    zone_id = dict(zip(names, zone_ids, strict=True))
    if wanted:
        for name in wanted:
            if name not in zone_id:
                raise ValueError(
                    f"{PROJECT}:network.availabilityZones: {name} is not an available zone of {region} that EKS "
                    f"supports (available: {', '.join(names)})"
                )
            if zone_id[name] in unsupported:
                raise ValueError(
                    f"{PROJECT}:network.availabilityZones: {name} is zone ID {zone_id[name]} in this account, "
                    f"where EKS cannot place a cluster; choose zones with other IDs"
                )
        return list(wanted)
    usable = [name for name in names if zone_id[name] not in unsupported]
    if len(usable) < count:
        raise ValueError(
            f"{PROJECT}:network.availabilityZoneCount: the region offers {len(usable)} availability zones EKS supports "
            f"({', '.join(usable)}); the stack asks for {count}"
        )
    return usable[:count]


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    private_subnet_ids: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    availability_zones: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("mlflow:index:Network", name, {}, opts)
        settings = args["settings"]
        tags = args.get("tags", {})
        child = pulumi.ResourceOptions(parent=self)
        count = settings.availability_zone_count
        plan = plan_subnets(settings.cidr_block, count)
        cluster_tag = {f"kubernetes.io/cluster/{args['cluster_name']}": "shared"}

        # Only zones that need no opt-in (Local/Wavelength zones have no EKS control plane), and
        # none whose ID EKS does not support (asked of the API, and checked again by pick_zones).
        # Configured zones are checked against the same answer.
        available = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            exclude_zone_ids=list(EKS_UNSUPPORTED_ZONE_IDS.get(args["region"], ())) or None,
            opts=pulumi.InvokeOutputOptions(parent=self),
        )
        region = args["region"]
        picked = pulumi.Output.all(available.names, available.zone_ids).apply(
            lambda found: pick_zones(found[0], found[1], count, region, settings.availability_zones)
        )
        zones: list[pulumi.Output[str]] = [picked.apply(lambda names, i=i: names[i]) for i in range(count)]
        self.availability_zones = zones

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=settings.cidr_block,
            enable_dns_support=True,
            enable_dns_hostnames=True,  # EKS nodes and the private API endpoint need both
            tags={**tags, "Name": f"{name}-vpc"},
            opts=child,
        )
        # No rule at all on the default security group: nothing can use it by accident (FSBP EC2.2).
        self.default_security_group = aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg", vpc_id=self.vpc.id, ingress=[], egress=[], tags=tags, opts=child
        )
        self.internet_gateway = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags={**tags, "Name": f"{name}-igw"}, opts=child
        )

        def subnets(kind: str, cidrs: Sequence[str], role_tags: dict[str, str]) -> list[aws.ec2.Subnet]:
            """One subnet per AZ; none assigns public IPs at launch (only load balancers and NAT
            gateways live in the public ones, and they bring their own addresses)."""
            return [
                aws.ec2.Subnet(
                    f"{name}-{kind}-{index}",
                    vpc_id=self.vpc.id,
                    cidr_block=cidr,
                    availability_zone=zones[index],
                    map_public_ip_on_launch=False,
                    tags={**tags, **cluster_tag, "Name": f"{name}-{kind}-{index}", **role_tags},
                    opts=child,
                )
                for index, cidr in enumerate(cidrs)
            ]

        self.public_subnets = subnets("public", plan.public, {"kubernetes.io/role/elb": "1"})
        # Not tagged for load balancers: they go to the dedicated subnets below.
        self.private_subnets = subnets("private", plan.private, {})

        self.public_route_table = aws.ec2.RouteTable(
            f"{name}-public-rt", vpc_id=self.vpc.id, tags={**tags, "Name": f"{name}-public"}, opts=child
        )
        aws.ec2.Route(
            f"{name}-public-default",
            route_table_id=self.public_route_table.id,
            destination_cidr_block="0.0.0.0/0",
            gateway_id=self.internet_gateway.id,
            opts=child,
        )
        for index, subnet in enumerate(self.public_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{index}-rt",
                subnet_id=subnet.id,
                route_table_id=self.public_route_table.id,
                opts=child,
            )

        nat_count = count if settings.nat_gateways == "perAz" else 1
        self.nat_gateways: list[aws.ec2.NatGateway] = []
        for index in range(nat_count):
            address = aws.ec2.Eip(f"{name}-nat-{index}-ip", domain="vpc", tags=tags, opts=child)
            self.nat_gateways.append(
                aws.ec2.NatGateway(
                    f"{name}-nat-{index}",
                    allocation_id=address.id,
                    subnet_id=self.public_subnets[index].id,
                    connectivity_type="public",
                    tags={**tags, "Name": f"{name}-nat-{index}"},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[self.internet_gateway]),
                )
            )
        self.private_route_tables: list[aws.ec2.RouteTable] = []
        for index, subnet in enumerate(self.private_subnets):
            table = aws.ec2.RouteTable(
                f"{name}-private-{index}-rt",
                vpc_id=self.vpc.id,
                tags={**tags, "Name": f"{name}-private-{index}"},
                opts=child,
            )
            aws.ec2.Route(
                f"{name}-private-{index}-default",
                route_table_id=table.id,
                destination_cidr_block="0.0.0.0/0",
                # Each AZ egresses through its own NAT gateway when there is one per AZ.
                nat_gateway_id=self.nat_gateways[index % nat_count].id,
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{index}-rta", subnet_id=subnet.id, route_table_id=table.id, opts=child
            )
            self.private_route_tables.append(table)

        # Internal load balancers only (the only subnets tagged internal-elb; the Ingress and the
        # NLB Service also name them explicitly): no node group uses them, so no pod lives there.
        self.load_balancer_subnets = subnets("lb", plan.load_balancer, {"kubernetes.io/role/internal-elb": "1"})
        for index, subnet in enumerate(self.load_balancer_subnets):
            aws.ec2.RouteTableAssociation(
                f"{name}-lb-{index}-rta",
                subnet_id=subnet.id,
                route_table_id=self.private_route_tables[index].id,
                opts=child,
            )
        self.load_balancer_cidrs = plan.load_balancer
        self.public_cidrs = plan.public

        # Artifacts go to S3 through the gateway endpoint: free, and not through NAT.
        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3",
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args['region']}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[table.id for table in self.private_route_tables],
            tags={**tags, "Name": f"{name}-s3"},
            opts=child,
        )

        self._flow_logs(name, args, tags)
        self._transit_gateway(name, settings, connected_deployer_cidrs(args.get("deployer_cidrs", ())), tags)

        self.vpc_id = self.vpc.id
        self.private_subnet_ids = [subnet.id for subnet in self.private_subnets]
        self.public_subnet_ids = [subnet.id for subnet in self.public_subnets]
        self.load_balancer_subnet_ids = [subnet.id for subnet in self.load_balancer_subnets]
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "privateSubnetIds": self.private_subnet_ids,
                "publicSubnetIds": self.public_subnet_ids,
                "loadBalancerSubnetIds": self.load_balancer_subnet_ids,
                "availabilityZones": self.availability_zones,
            }
        )

    def _transit_gateway(
        self, name: str, settings: NetworkConfig, routed_cidrs: Sequence[str], tags: dict[str, str]
    ) -> None:
        """Attach the VPC to the deployer's transit gateway and route its networks back through
        it; without the route the endpoint's answers would go to the NAT gateway and be lost."""
        self.transit_gateway_attachment: aws.ec2transitgateway.VpcAttachment | None = None
        if not settings.transit_gateway_id:
            return
        attachment = aws.ec2transitgateway.VpcAttachment(
            f"{name}-tgw",
            transit_gateway_id=settings.transit_gateway_id,
            vpc_id=self.vpc.id,
            subnet_ids=[subnet.id for subnet in self.private_subnets],
            dns_support="enable",
            tags={**tags, "Name": f"{name}-tgw"},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.transit_gateway_attachment = attachment
        for index, table in enumerate(self.private_route_tables):
            for route, cidr in enumerate(routed_cidrs):
                aws.ec2.Route(
                    f"{name}-private-{index}-deployer-{route}",
                    route_table_id=table.id,
                    destination_cidr_block=cidr,
                    transit_gateway_id=settings.transit_gateway_id,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment]),
                )

    def _flow_logs(self, name: str, args: NetworkArgs, tags: dict[str, str]) -> None:
        """All traffic of the VPC to CloudWatch Logs (FSBP EC2.6), kept ``flowLogRetentionDays``,
        encrypted with the stack's logs key."""
        settings = args["settings"]
        child = pulumi.ResourceOptions(parent=self)
        self.flow_log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=flow_log_group(name),
            retention_in_days=settings.flow_log_retention_days,
            kms_key_id=args.get("log_kms_key_arn"),
            tags=tags,
            opts=child,
        )
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        role = aws.iam.Role(
            f"{name}-flow-logs",
            description="VPC flow logs delivery to CloudWatch Logs",
            assume_role_policy=service_trust_policy("vpc-flow-logs.amazonaws.com", source_account=account),
            tags=tags,
            opts=child,
        )
        partition = aws.get_partition_output(opts=invoke).partition
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=pulumi.Output.json_dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                            "Resource": [self.flow_log_group.arn, pulumi.Output.concat(self.flow_log_group.arn, ":*")],
                        },
                        # The one action of AWS's documented flow-logs role policy the delivery into
                        # our pre-created group still lacked (CreateLogGroup is not needed: the group
                        # exists). VPC user guide, "IAM role for publishing flow logs to CloudWatch
                        # Logs": CreateLogGroup, CreateLogStream, PutLogEvents, DescribeLogGroups,
                        # DescribeLogStreams. DescribeLogGroups lists groups, so it is granted on the
                        # account's groups in this region, not on one group.
                        {
                            "Sid": "DescribeLogGroups",
                            "Effect": "Allow",
                            "Action": "logs:DescribeLogGroups",
                            "Resource": pulumi.Output.concat(
                                "arn:", partition, ":logs:", args["region"], ":", account, ":log-group:*"
                            ),
                        },
                    ],
                }
            ),
            opts=child,
        )
        self.flow_log = aws.ec2.FlowLog(
            f"{name}-flow-log",
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags=tags,
            opts=child,
        )

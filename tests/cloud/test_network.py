"""The created VPC (``cluster.mode: create``): subnet plan, AZ spread, NAT per stack, S3 endpoint,
flow logs, and nothing public that need not be."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from components.network import EKS_UNSUPPORTED_ZONE_IDS, Network, pick_zones, plan_subnets
from stackconfig.schema import NetworkConfig
from tests.pulumi_harness import ACCOUNT_ID, ZONES, RecordingMocks, captured_program, run_mocked

SUBNET = "aws:ec2/subnet:Subnet"
NAT = "aws:ec2/natGateway:NatGateway"
ROUTE = "aws:ec2/route:Route"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
ASSOCIATION = "aws:ec2/routeTableAssociation:RouteTableAssociation"


def test_subnet_plan_for_a_16_over_three_zones():
    plan = plan_subnets("10.0.0.0/16", 3)
    assert plan.private == ("10.0.0.0/18", "10.0.64.0/18", "10.0.128.0/18")
    assert plan.public == ("10.0.192.0/20", "10.0.208.0/20", "10.0.224.0/20")


@pytest.mark.parametrize("cidr", ["10.10.0.0/16", "10.20.0.0/16", "172.16.0.0/18", "192.168.0.0/20"])
@pytest.mark.parametrize("zones", [2, 3])
def test_subnets_fit_the_vpc_and_never_overlap(cidr: str, zones: int):
    plan = plan_subnets(cidr, zones)
    vpc = ipaddress.IPv4Network(cidr)
    nets = [ipaddress.IPv4Network(n) for n in plan.private + plan.public]
    assert len(plan.private) == len(plan.public) == zones
    assert all(n.subnet_of(vpc) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # Pods take VPC addresses: the private subnets get four times the room of the public ones.
    assert all(
        ipaddress.IPv4Network(p).num_addresses == 4 * ipaddress.IPv4Network(q).num_addresses
        for p, q in zip(plan.private, plan.public, strict=True)
    )


def test_too_few_zones_in_the_region_is_an_error():
    assert pick_zones(["us-east-1a", "us-east-1b"], ["use1-az1", "use1-az2"], 2, "us-east-1") == [
        "us-east-1a",
        "us-east-1b",
    ]
    with pytest.raises(ValueError, match="offers 2 availability zones EKS supports"):
        pick_zones(["us-east-1a", "us-east-1b"], ["use1-az1", "use1-az2"], 3, "us-east-1")


def test_zones_are_picked_by_id_skipping_those_eks_does_not_support():
    """In this account us-east-1a is use1-az3, where EKS cannot place a cluster's subnets."""
    names, ids = (
        ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"],
        ["use1-az3", "use1-az1", "use1-az2", "use1-az4"],
    )
    assert pick_zones(names, ids, 3, "us-east-1") == ["us-east-1b", "us-east-1c", "us-east-1d"]
    assert pick_zones(
        ["ca-central-1a", "ca-central-1b", "ca-central-1d"], ["cac1-az3", "cac1-az1", "cac1-az2"], 2, "ca-central-1"
    ) == [
        "ca-central-1b",
        "ca-central-1d",
    ]
    with pytest.raises(ValueError, match=r"network\.availabilityZones: us-east-1a is zone ID use1-az3"):
        pick_zones(names, ids, 2, "us-east-1", ["us-east-1a", "us-east-1b"])
    assert EKS_UNSUPPORTED_ZONE_IDS["us-west-1"] == ("usw1-az2",)


def build(settings: NetworkConfig, mocks: RecordingMocks | None = None) -> RecordingMocks:
    def program() -> dict[str, Any]:
        network = Network("net", {"settings": settings, "cluster_name": "mlflow-test", "region": "us-east-1"})
        return {"vpc": network.vpc_id, "private": network.private_subnet_ids, "zones": network.availability_zones}

    mocks, outputs, _ = run_mocked(program, mocks=mocks)
    assert outputs["vpc"] == "net-vpc-id"
    return mocks


def test_the_created_network_avoids_an_eks_unsupported_zone_whatever_its_name():
    account = RecordingMocks(
        zones={"us-east-1a": "use1-az3", "us-east-1b": "use1-az1", "us-east-1c": "use1-az2", "us-east-1d": "use1-az4"}
    )
    mocks = build(NetworkConfig(availability_zone_count=3), account)
    assert [s["availabilityZone"] for s in subnets(mocks, "private")] == ["us-east-1b", "us-east-1c", "us-east-1d"]
    (zones_call,) = [args for token, args in mocks.invokes if token.endswith("getAvailabilityZones")]
    assert zones_call["excludeZoneIds"] == ["use1-az3"]


def subnets(mocks: RecordingMocks, kind: str) -> list[dict[str, Any]]:
    """In index order (registration order follows when their AZ resolves)."""
    return [r.inputs for r in sorted(mocks.of_type(SUBNET), key=lambda r: r.name) if f"-{kind}-" in r.name]


def default_route_target(mocks: RecordingMocks, table_name: str) -> dict[str, Any]:
    (route,) = [r.inputs for r in mocks.of_type(ROUTE) if r.inputs["routeTableId"] == f"{table_name}-id"]
    assert route["destinationCidrBlock"] == "0.0.0.0/0"
    return route


def test_cheap_network_two_zones_one_nat():
    mocks = build(NetworkConfig(cidr_block="10.10.0.0/16", availability_zone_count=2, nat_gateways="single"))
    vpc = mocks.one("aws:ec2/vpc:Vpc").inputs
    assert vpc["cidrBlock"] == "10.10.0.0/16" and vpc["enableDnsHostnames"] and vpc["enableDnsSupport"]
    private, public = subnets(mocks, "private"), subnets(mocks, "public")
    assert [s["availabilityZone"] for s in private] == [s["availabilityZone"] for s in public] == list(ZONES[:2])
    assert [s["cidrBlock"] for s in private] == ["10.10.0.0/18", "10.10.64.0/18"]
    # Nothing gets a public address by being launched in a subnet.
    assert all(s["mapPublicIpOnLaunch"] is False for s in private + public)
    # Only the dedicated load-balancer subnets are tagged for internal load balancers (issue 17).
    assert all("kubernetes.io/role/internal-elb" not in s["tags"] for s in private)
    assert all(s["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in subnets(mocks, "lb"))
    assert all(s["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s["tags"]["kubernetes.io/cluster/mlflow-test"] == "shared" for s in private + public)
    # One NAT gateway, in a public subnet; both private route tables egress through it.
    (nat,) = mocks.of_type(NAT)
    assert nat.inputs["subnetId"] == "net-public-0-id" and nat.inputs["connectivityType"] == "public"
    assert len(mocks.of_type("aws:ec2/eip:Eip")) == 1
    for index in range(2):
        assert default_route_target(mocks, f"net-private-{index}-rt")["natGatewayId"] == "net-nat-0-id"
    # The public subnets route to the internet gateway, the private ones never do.
    assert default_route_target(mocks, "net-public-rt")["gatewayId"] == "net-igw-id"
    assert not [r for r in mocks.of_type(ROUTE) if "private" in r.name and r.inputs.get("gatewayId")]
    associations = {(a.inputs["subnetId"], a.inputs["routeTableId"]) for a in mocks.of_type(ASSOCIATION)}
    assert associations == {
        ("net-public-0-id", "net-public-rt-id"),
        ("net-public-1-id", "net-public-rt-id"),
        ("net-private-0-id", "net-private-0-rt-id"),
        ("net-private-1-id", "net-private-1-rt-id"),
        ("net-lb-0-id", "net-private-0-rt-id"),
        ("net-lb-1-id", "net-private-1-rt-id"),
    }
    # The zones come from the region (opt-in zones excluded), not from a guess.
    (zones_call,) = [args for token, args in mocks.invokes if token.endswith("getAvailabilityZones")]
    assert zones_call["state"] == "available"
    assert zones_call["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]


def test_production_network_has_a_nat_gateway_per_zone():
    mocks = build(NetworkConfig(cidr_block="10.20.0.0/16", availability_zone_count=3, nat_gateways="perAz"))
    nats = {n.name: n.inputs["subnetId"] for n in mocks.of_type(NAT)}
    assert nats == {f"net-nat-{i}": f"net-public-{i}-id" for i in range(3)}
    # Each AZ egresses through its own NAT gateway: losing one AZ cuts no other AZ's egress.
    for index in range(3):
        assert default_route_target(mocks, f"net-private-{index}-rt")["natGatewayId"] == f"net-nat-{index}-id"
    assert len({s["availabilityZone"] for s in subnets(mocks, "private")}) == 3


def test_configured_zones_are_used_as_given_once_checked_against_the_account():
    account = RecordingMocks(zones={"us-east-1a": "use1-az3", "us-east-1d": "use1-az1", "us-east-1f": "use1-az5"})
    mocks = build(NetworkConfig(availability_zone_count=2, availability_zones=("us-east-1d", "us-east-1f")), account)
    assert [s["availabilityZone"] for s in subnets(mocks, "private")] == ["us-east-1d", "us-east-1f"]
    assert [token for token, _ in mocks.invokes if token.endswith("getAvailabilityZones")]


def test_s3_traffic_stays_on_the_gateway_endpoint():
    mocks = build(NetworkConfig(availability_zone_count=3))
    endpoint = mocks.one("aws:ec2/vpcEndpoint:VpcEndpoint").inputs
    assert endpoint["serviceName"] == "com.amazonaws.us-east-1.s3"
    assert endpoint["vpcEndpointType"] == "Gateway"
    assert sorted(endpoint["routeTableIds"]) == [f"net-private-{i}-rt-id" for i in range(3)]


def test_default_security_group_has_no_rules():
    mocks = build(NetworkConfig())
    group = mocks.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").inputs
    assert group["vpcId"] == "net-vpc-id"
    assert group["ingress"] == [] and group["egress"] == []


def test_all_vpc_traffic_is_flow_logged_for_the_configured_time():
    mocks = build(NetworkConfig(flow_log_retention_days=365))
    log_group = mocks.one("aws:cloudwatch/logGroup:LogGroup").inputs
    assert log_group["retentionInDays"] == 365
    flow = mocks.one("aws:ec2/flowLog:FlowLog").inputs
    assert flow["vpcId"] == "net-vpc-id" and flow["trafficType"] == "ALL"
    assert flow["logDestinationType"] == "cloud-watch-logs"
    assert flow["logDestination"] == f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:/aws/vpc/net/flow-logs"
    trust = json.loads(mocks.one("aws:iam/role:Role", "net-flow-logs").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": ACCOUNT_ID}}
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "net-flow-logs").inputs["policy"])
    grant, describe = policy["Statement"]
    assert all(r.startswith(flow["logDestination"]) for r in grant["Resource"])
    assert not any(a.endswith("*") for a in grant["Action"])
    # The one action AWS's documented flow-logs role has and delivery into our group lacked.
    assert describe == {
        "Sid": "DescribeLogGroups",
        "Effect": "Allow",
        "Action": "logs:DescribeLogGroups",
        "Resource": f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:log-group:*",
    }


@pytest.mark.parametrize(("stack", "zones", "nats"), [("dev", 2, 1), ("prod", 3, 3)])
def test_stack_files_size_the_network(stack: str, zones: int, nats: int):
    mocks, _, _ = captured_program(stack)
    assert len([s for s in mocks.of_type(SUBNET) if "-private-" in s.name]) == zones
    assert len(mocks.of_type(NAT)) == nats
    cidr = "10.10.0.0/16" if stack == "dev" else "10.20.0.0/16"
    assert mocks.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == cidr
    # The tracking server's NetworkPolicies use the same CIDR for the ALB and the database.
    policy = [
        r.inputs
        for r in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.name.endswith("-server-network-policy")
    ]
    egress_cidrs = {
        peer["ipBlock"]["cidr"] for rule in policy[0]["spec"]["egress"] for peer in rule["to"] if "ipBlock" in peer
    }
    assert cidr in egress_cidrs

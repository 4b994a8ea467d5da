"""Issue 17, findings 1 and 2, on the inputs AWS would receive for both stack files: the deployer
reaches the API it creates (security-group rule, public allow list, transit-gateway route back),
preview and drift roles get read-only access entries separate from the deploy role, and the
first phase of a first deployment (``mlflow-platform:kubernetes=false``) registers AWS resources
only, each with the URN the full program gives it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.pulumi_harness import (
    CLUSTER_SECURITY_GROUP,
    Recorded,
    RecordingMocks,
    captured_program,
    run_program,
    stack_file_config,
)

STACKS = ["dev", "prod"]
RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
POLICY = "arn:aws:eks::aws:cluster-access-policy/"
ACCOUNT = {"dev": "111111111111", "prod": "222222222222"}


def deployer_rules(mocks: RecordingMocks) -> list[Recorded]:
    return [r for r in mocks.of_type(RULE) if "-cluster-deployer-" in r.name]


def _full(stack: str) -> RecordingMocks:
    return captured_program(stack)[0]


@pytest.fixture
def fresh_loop() -> Iterator[None]:
    previous = asyncio.get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(previous)
    loop.close()


def _first_phase(stack: str) -> tuple[RecordingMocks, dict[str, object]]:
    """The program as ``pulumi up --config mlflow-platform:kubernetes=false`` runs it: the CLI
    stores the string ``false``, which the program JSON-decodes."""
    config = {**stack_file_config(stack), "mlflow-platform:kubernetes": "false"}
    mocks, outputs, _ = run_program(stack, config)
    return mocks, outputs


# --- finding 1: the deployer's network ------------------------------------------------------


@pytest.mark.parametrize(("stack", "cidr"), [("dev", "198.51.100.10/32"), ("prod", "10.100.0.0/24")])
def test_the_cluster_security_group_admits_the_deployer_on_443_only(stack: str, cidr: str):
    (rule,) = deployer_rules(_full(stack))
    assert rule.inputs["securityGroupId"] == CLUSTER_SECURITY_GROUP  # the group EKS puts on the API ENIs
    assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", 443, 443)
    assert rule.inputs["cidrIpv4"] == cidr
    assert "referencedSecurityGroupId" not in rule.inputs


def test_prod_stays_private_and_routes_the_runners_network_back_through_the_transit_gateway():
    mocks = _full("prod")
    vpc = mocks.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is False and "publicAccessCidrs" not in vpc
    attachment = mocks.one("aws:ec2transitgateway/vpcAttachment:VpcAttachment").inputs
    private = sorted(s.name + "-id" for s in mocks.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name)
    assert attachment["transitGatewayId"] == "tgw-0123456789abcdef0"
    assert sorted(attachment["subnetIds"]) == private
    routes = [r.inputs for r in mocks.of_type("aws:ec2/route:Route") if "-deployer-" in r.name]
    tables = sorted(t.name + "-id" for t in mocks.of_type("aws:ec2/routeTable:RouteTable") if "-private-" in t.name)
    assert sorted(r["routeTableId"] for r in routes) == tables  # one per private route table
    assert {(r["destinationCidrBlock"], r["transitGatewayId"]) for r in routes} == {
        ("10.100.0.0/24", "tgw-0123456789abcdef0")
    }


def test_dev_reaches_its_public_endpoint_and_needs_no_route():
    mocks = _full("dev")
    vpc = mocks.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24", "198.51.100.10/32"]
    assert mocks.of_type("aws:ec2transitgateway/vpcAttachment:VpcAttachment") == []
    assert [r for r in mocks.of_type("aws:ec2/route:Route") if "-deployer-" in r.name] == []


def test_a_deployer_security_group_becomes_a_referenced_rule(fresh_loop: None):
    config = stack_file_config("prod")
    cluster = json.loads(config["mlflow-platform:cluster"])
    cluster["deployerSecurityGroupIds"] = ["sg-0123456789abcdef0"]
    config["mlflow-platform:cluster"] = json.dumps(cluster)
    mocks, _, _ = run_program("prod", config)
    (rule,) = [r.inputs for r in deployer_rules(mocks) if "referencedSecurityGroupId" in r.inputs]
    assert rule["referencedSecurityGroupId"] == "sg-0123456789abcdef0"
    assert (rule["securityGroupId"], rule["fromPort"], rule["toPort"]) == (CLUSTER_SECURITY_GROUP, 443, 443)


# --- finding 2: preview and drift roles -----------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_preview_and_drift_roles_get_read_only_entries_apart_from_the_deploy_role(stack: str):
    mocks = _full(stack)
    role = f"arn:aws:iam::{ACCOUNT[stack]}:role/mlflow-platform-{{}}-{stack}"
    entries = {e.inputs["principalArn"]: e.inputs for e in mocks.of_type(ENTRY)}
    assert set(entries) == {role.format(kind) for kind in ("deploy", "preview", "drift")}
    assert {e["type"] for e in entries.values()} == {"STANDARD"}
    assert all("kubernetesGroups" not in e for e in entries.values())  # no RBAC groups: the policy is all
    granted = {
        (a.inputs["principalArn"], a.inputs["policyArn"].removeprefix(POLICY)) for a in mocks.of_type(ASSOCIATION)
    }
    assert granted == {
        (role.format("deploy"), "AmazonEKSClusterAdminPolicy"),
        (role.format("preview"), "AmazonEKSViewPolicy"),  # no Secrets: PR code never reads one
        (role.format("drift"), "AmazonEKSAdminViewPolicy"),  # read-only, Secrets included (refresh GETs them)
    }
    assert {json.dumps(a.inputs["accessScope"]) for a in mocks.of_type(ASSOCIATION)} == {'{"type": "cluster"}'}


def test_the_kubernetes_provider_waits_for_the_access_entries_and_deployer_rules():
    """The provider depends on the cluster component, whose children include the entries and
    the 443 rule, so no Kubernetes call is made before the deployer is admitted."""
    mocks = _full("prod")
    children = [u for u in mocks.urns if "mlflow:index:Cluster$" in u]
    assert any(RULE in u for u in children)
    assert sum(ENTRY in u for u in children) == 3


# --- the first phase of a first deployment ---------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_first_phase_registers_no_kubernetes_resource_and_only_urns_the_full_run_has(stack: str, fresh_loop: None):
    phase1, outputs = _first_phase(stack)
    assert [r.typ for r in phase1.resources if r.typ.startswith(("kubernetes:", "pulumi:providers:kubernetes"))] == []
    assert [u for u in phase1.urns if "kubernetes" in u.split("::")[-2].lower()] == []
    full = set(_full(stack).urns)
    # Phase 2 only adds: every resource of phase 1 keeps its URN, so nothing is replaced.
    assert set(phase1.urns) <= full
    added = {u.split("::")[-2].split("$")[-1] for u in full - set(phase1.urns)}
    assert "aws:eks/cluster:Cluster" not in added and "aws:rds/instance:Instance" not in added
    # AWS side complete: cluster, access entries, deployer rule, database, bucket, roles.
    types = {r.typ for r in phase1.resources}
    assert {"aws:eks/cluster:Cluster", ENTRY, RULE, "aws:rds/instance:Instance", "aws:s3/bucket:Bucket"} <= types
    assert "trackingUrl" not in outputs and "trackingAdminPassword" not in outputs
    assert outputs["trainingRoleArn"] and outputs["databaseAddress"]


def test_the_full_run_is_what_the_stack_files_describe():
    """Steady state: the stack files leave ``kubernetes`` unset, and the program builds the
    Kubernetes side (the key exists only for the command-line override)."""
    assert "mlflow-platform:kubernetes" not in stack_file_config("prod")
    assert _full("prod").of_type("pulumi:providers:kubernetes")

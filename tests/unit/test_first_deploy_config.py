"""Issue 17, findings 1 and 2, in the stack config: a created cluster with a private-only API
endpoint must name the deployer's network unless the Kubernetes side is left out (the first
phase of a first deployment); connected deployer networks need a route back; preview and drift
roles are create-only and distinct from the admins. The same validation runs in ``pulumi
preview`` (``infra/config_source.py``) and ``python -m stackconfig check``."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rendering.cluster_access import connected_deployer_cidrs, is_connected_network, public_endpoint_cidrs
from stackconfig import ConfigError, load_stack_config, load_stack_file
from tests.pulumi_harness import reused_values

ROOT = Path(__file__).resolve().parents[2]
DEPLOYER_KEY = "mlflow-platform:cluster.deployerCidrs"


def prod() -> dict[str, Any]:
    return copy.deepcopy(load_stack_file(ROOT / "Pulumi.prod.yaml"))


def without_deployer(values: dict[str, Any]) -> dict[str, Any]:
    for key in ("deployerCidrs", "deployerSecurityGroupIds"):
        values["cluster"].pop(key, None)
    return values


def problems(values: dict[str, Any]) -> list[str]:
    try:
        load_stack_config(values)
    except ConfigError as error:
        return [str(problem) for problem in error.problems]
    return []


def test_a_private_endpoint_without_a_deployer_network_is_refused_naming_the_keys():
    (message,) = problems(without_deployer(prod()))
    assert message.startswith(f"{DEPLOYER_KEY}: got <missing>; expected ")
    for key in (
        "cluster.deployerSecurityGroupIds",
        "cluster.mode 'create'",
        "cluster.publicAccessCidrs",
        "kubernetes true",
    ):
        assert key in message, key


def _kubernetes_off(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "kubernetes": False}


def _deployer_group(values: dict[str, Any]) -> dict[str, Any]:
    values["cluster"]["deployerSecurityGroupIds"] = ["sg-0123456789abcdef0"]
    return values


def _public_endpoint(values: dict[str, Any]) -> dict[str, Any]:
    values["cluster"]["publicAccessCidrs"] = ["198.51.100.0/24"]
    return values


def _reused(values: dict[str, Any]) -> dict[str, Any]:
    return reused_values("prod", values)


@pytest.mark.parametrize("change", [_kubernetes_off, _deployer_group, _public_endpoint, _reused])
def test_configurations_that_can_reach_the_api_load(change: Any):
    """First phase (Kubernetes left out), a deployer security group, a public endpoint, or a
    cluster that is not ours."""
    assert problems(change(without_deployer(prod()))) == []


def test_a_connected_deployer_network_needs_the_transit_gateway_route_back():
    values = prod()
    values["network"].pop("transitGatewayId")
    (message,) = problems(values)
    assert message.startswith("mlflow-platform:network.transitGatewayId: got <missing>; expected a transit gateway")
    assert "10.100.0.0/24" in message


@pytest.mark.parametrize(
    "cidrs",
    [["0.0.0.0/0"], ["10.0.0.0/7"], ["8.8.0.0/15"], ["10.100.0.1/24"], ["not-a-cidr"], [24], "10.0.0.0/8"],
    ids=[
        "internet",
        "wider-than-rfc1918",
        "public-wider-than-16",
        "host-bits",
        "text",
        "number",
        "not-a-list",
    ],
)
def test_bad_deployer_cidrs_are_refused(cidrs: Any):
    values = prod()
    values["cluster"]["deployerCidrs"] = cidrs
    found = [m for m in problems(values) if m.startswith(f"{DEPLOYER_KEY}: got {cidrs!r}")]
    assert found and "never 0.0.0.0/0" in found[0]


def test_a_deployer_network_inside_the_created_vpc_is_refused():
    values = prod()
    values["cluster"]["deployerCidrs"] = ["10.20.8.0/24"]  # inside prod's 10.20.0.0/16
    (message,) = problems(values)
    assert message.startswith(f"{DEPLOYER_KEY}: got ['10.20.8.0/24']; expected networks outside the VPC")


def test_kubernetes_switch_takes_only_a_boolean():
    values = prod()
    values["kubernetes"] = "no"
    (message,) = problems(values)
    assert message.startswith("mlflow-platform:kubernetes: got 'no'; expected true or false")


@pytest.mark.parametrize("key", ["deployerCidrs", "deployerSecurityGroupIds", "previewRoleArns", "driftRoleArns"])
def test_deployer_and_read_only_keys_are_refused_on_a_reused_cluster(key: str):
    values = reused_values("prod", prod())
    values["cluster"][key] = prod()["cluster"].get(key, ["sg-0123456789abcdef0"])
    (message,) = problems(values)
    assert message.startswith(f"mlflow-platform:cluster.{key}: got ") and "cluster.mode 'reuse'" in message


def test_a_role_gets_one_access_entry():
    values = prod()
    values["cluster"]["driftRoleArns"] = list(values["cluster"]["adminRoleArns"])
    (message,) = problems(values)
    assert message.startswith("mlflow-platform:cluster.driftRoleArns: got ")
    assert "not already in mlflow-platform:cluster.adminRoleArns" in message


def test_public_endpoint_and_route_rendering():
    assert is_connected_network("10.100.0.0/24") and is_connected_network("100.64.0.0/10")
    assert not is_connected_network("198.51.100.10/32")
    # Public deployer networks join an enabled public endpoint; private ones never; none turns it on.
    assert public_endpoint_cidrs(["203.0.113.0/24"], ["198.51.100.10/32", "10.1.0.0/16", "203.0.113.0/24"]) == (
        "203.0.113.0/24",
        "198.51.100.10/32",
    )
    assert public_endpoint_cidrs([], ["198.51.100.10/32"]) == ()
    assert connected_deployer_cidrs(["198.51.100.10/32", "10.1.0.0/16"]) == ("10.1.0.0/16",)


def test_stackconfig_check_refuses_the_unreachable_stack_in_one_line(tmp_path: Path):
    document = yaml.safe_load((ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["mlflow-platform:cluster"].pop("deployerCidrs")
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    result = subprocess.run(
        [sys.executable, "-m", "stackconfig", "check", str(stack_file)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 2, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {DEPLOYER_KEY}: got <missing>; expected ")
    assert "Traceback" not in result.stderr


def test_both_stack_files_name_their_deployer_network_and_read_only_roles():
    for stack in ("dev", "prod"):
        cluster = load_stack_config(load_stack_file(ROOT / f"Pulumi.{stack}.yaml")).cluster
        assert cluster.deployer_cidrs, stack
        assert cluster.preview_role_arns and cluster.drift_role_arns, stack
        assert not set(cluster.preview_role_arns) & set(cluster.admin_role_arns), stack

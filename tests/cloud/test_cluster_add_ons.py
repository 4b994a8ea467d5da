"""The cluster add-ons a real cluster needs (issue 17, finding 6), on the inputs Kubernetes and AWS
would receive: the Prometheus Operator before the ServiceMonitor, selected by the label its
Prometheus expects."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest

from components.cluster_addons import AWS_LOAD_BALANCER_CONTROLLER
from components.cluster_monitoring import KUBE_PROMETHEUS_STACK
from components.cluster_scaling import CLUSTER_AUTOSCALER
from components.network import plan_subnets
from rendering.autoscaler import DISCOVERY_ACTIONS
from rendering.nlb import unhonoured
from rendering.node_capacity import INSTANCE_TYPES, Requests, nodes_needed, pod_requests, server_pod_requests
from rendering.prometheus_stack import RELEASE_NAME, kube_prometheus_stack_values, service_monitor_labels
from stackconfig import ConfigError, load_stack_config, load_stack_file
from stackconfig.cluster_addons import stack_system_pods
from tests.cloud.test_cluster import assert_irsa_trust
from tests.pulumi_harness import ACCOUNT_ID, ROOT, RecordingMocks, captured_program, reused_values

STACKS = ["dev", "prod"]

RELEASE = "kubernetes:helm.sh/v3:Release"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"


def stack_values(stack: str) -> dict[str, Any]:
    """A stack file's values, keyed by section (``load_stack_file``), typed for editing."""
    return load_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def _run(stack: str, mode: str = "create") -> RecordingMocks:
    return captured_program(stack, mode)[0]


def _release(mocks: RecordingMocks, chart: str) -> dict[str, Any]:
    (release,) = [r.inputs for r in mocks.of_type(RELEASE) if r.inputs["chart"] == chart]
    return release


# --- Prometheus Operator -------------------------------------------------------------------


def test_created_cluster_gets_kube_prometheus_stack_before_the_service_monitor():
    mocks = _run("prod")
    release = _release(mocks, "kube-prometheus-stack")
    assert release["name"] == RELEASE_NAME
    assert release["version"] == KUBE_PROMETHEUS_STACK.version == "67.8.0"
    assert release["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    assert release["namespace"] == "monitoring"  # server.monitoringNamespace: the NetworkPolicy's source
    assert release["values"] == kube_prometheus_stack_values()
    # The CRD must exist before the ServiceMonitor ("no matches for kind ServiceMonitor").
    monitor = mocks.one(SERVICE_MONITOR)
    assert "mlflow-prod-cluster-monitoring-kube-prometheus-stack" in mocks.dependencies[monitor.name]


def test_service_monitor_carries_the_label_the_releases_prometheus_selects():
    mocks = _run("prod")
    spec = _release(mocks, "kube-prometheus-stack")["values"]["prometheus"]["prometheusSpec"]
    selector = spec["serviceMonitorSelector"]["matchLabels"]
    assert selector == service_monitor_labels() == {"release": "kube-prometheus-stack"}
    labels = mocks.one(SERVICE_MONITOR).inputs["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert spec["serviceMonitorNamespaceSelector"] == {}  # the monitor lives in the server's namespace


def test_grafana_with_its_public_default_password_is_not_installed():
    values = _release(_run("prod"), "kube-prometheus-stack")["values"]
    assert values["grafana"] == {"enabled": False}


def test_operator_prometheus_pods_are_the_ones_the_network_policy_admits():
    """The operator labels Prometheus pods app.kubernetes.io/name=prometheus; the NetworkPolicy
    admits monitoring.scraperPodLabels from server.monitoringNamespace."""
    mocks = _run("prod")
    policy = next(
        r.inputs
        for r in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.name.endswith("-server-network-policy")
    )
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
        "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
    } in peers


def test_no_operator_is_installed_where_the_stack_does_not_want_one():
    assert "kube-prometheus-stack" not in [r.inputs["chart"] for r in _run("dev").of_type(RELEASE)]
    assert _run("dev").of_type(SERVICE_MONITOR) == []


def test_reused_cluster_takes_the_selector_from_config():
    mocks = _run("prod", "reuse")
    assert mocks.of_type(RELEASE) == []
    labels = mocks.one(SERVICE_MONITOR).inputs["metadata"]["labels"]
    assert labels["prometheus"] == "platform"  # tests/pulumi_harness.py REUSED["prod"]


def test_reused_cluster_with_the_operator_requires_the_selector():
    values = reused_values("prod", stack_values("prod"))
    values["monitoring"].pop("serviceMonitorLabels")
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:monitoring.serviceMonitorLabels"]


def test_created_cluster_refuses_a_configured_selector():
    values = copy.deepcopy(stack_values("prod"))
    values["monitoring"]["serviceMonitorLabels"] = {"release": "other"}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:monitoring.serviceMonitorLabels"]


# --- autoscaling ---------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_metrics_server_is_an_eks_add_on_once_nodes_exist(stack: str):
    mocks = _run(stack)
    addon = mocks.one("aws:eks/addon:Addon", "-metrics-server")
    assert addon.inputs["addonName"] == "metrics-server"
    assert f"mlflow-{stack}-cluster-nodes" in mocks.dependencies[addon.name]


@pytest.mark.parametrize("stack", STACKS)
def test_cluster_autoscaler_is_pinned_with_its_own_irsa_role(stack: str):
    mocks = _run(stack)
    release = _release(mocks, "cluster-autoscaler")
    assert (release["version"], release["repositoryOpts"]) == (
        CLUSTER_AUTOSCALER.version,
        {"repo": "https://kubernetes.github.io/autoscaler"},
    )
    assert release["namespace"] == "kube-system"
    role = mocks.one("aws:iam/role:Role", "-autoscaling-role")
    assert_irsa_trust(role, "kube-system", "cluster-autoscaler")
    values = release["values"]
    assert values["autoDiscovery"] == {"clusterName": f"mlflow-{stack}"}
    assert values["image"] == {"tag": "v1.36.0"}  # the cluster's minor version (kubernetesVersion "1.36")
    assert values["rbac"]["serviceAccount"] == {
        "create": True,
        "name": "cluster-autoscaler",
        "annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}-7f3a2b"},
    }
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "-autoscaling-role").inputs["policy"])
    assert policy["Statement"] == [
        {"Sid": "Discovery", "Effect": "Allow", "Action": list(DISCOVERY_ACTIONS), "Resource": "*"},
        {
            "Sid": "ThisClustersNodeGroups",
            "Effect": "Allow",
            "Action": "eks:DescribeNodegroup",
            "Resource": f"arn:aws:eks:us-east-1:{ACCOUNT_ID}:nodegroup/mlflow-{stack}/*/*",
        },
        {
            "Sid": "ScaleThisClustersNodeGroups",
            "Effect": "Allow",
            "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
            "Resource": f"arn:aws:autoscaling:us-east-1:{ACCOUNT_ID}:autoScalingGroup:*:autoScalingGroupName/*",
            "Condition": {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/mlflow-{stack}": "owned"}},
        },
    ]
    # Nothing that writes, or that IAM can scope, is granted on "*".
    assert all(a.split(":")[1].startswith(("Describe", "Get")) for a in DISCOVERY_ACTIONS)


@pytest.mark.parametrize("stack", STACKS)
def test_the_autoscalers_desired_size_is_not_drift(stack: str):
    assert _run(stack).ignore_changes[f"mlflow-{stack}-cluster-nodes"] == ["scalingConfig.desiredSize"]


# --- node capacity -------------------------------------------------------------------------


def test_allocatable_follows_the_eks_ami_formulas():
    # maxPods = ENIs × (IPv4 per ENI − 1) + 2, as eni-max-pods.txt lists them.
    assert {name: INSTANCE_TYPES[name].max_pods for name in ("m5.large", "t3.large", "m6i.xlarge")} == {
        "m5.large": 29,
        "t3.large": 35,
        "m6i.xlarge": 58,
    }
    # m6i.xlarge: 4000m − (60 + 10 + 10) reserved; 16 GiB × 0.925 − (11 × 58 + 255) − 100 MiB eviction.
    assert INSTANCE_TYPES["m6i.xlarge"].allocatable == Requests(3920, 15155 - 893 - 100)


@pytest.mark.parametrize("stack", STACKS)
def test_the_server_pod_the_check_counts_is_the_rendered_one(stack: str):
    spec = _run(stack).one("kubernetes:apps/v1:Deployment").inputs["spec"]["template"]["spec"]
    server = load_stack_config(stack_values(stack)).server
    assert pod_requests(spec) == server_pod_requests(server.cpu, server.memory)


# What each release and add-on the program installs runs, by the name the capacity check gives it.
COUNTED_AS = {
    "vpc-cni": ["aws-node (vpc-cni)"],
    "kube-proxy": ["kube-proxy"],
    "coredns": ["coredns"],
    "aws-ebs-csi-driver": ["ebs-csi-node", "ebs-csi-controller"],
    "metrics-server": ["metrics-server"],
    "cluster-autoscaler": ["cluster-autoscaler"],
    "aws-load-balancer-controller": ["aws-load-balancer-controller"],
    "ingress-nginx": ["ingress-nginx-controller"],
    "cert-manager": ["cert-manager (controller, webhook, cainjector)"],
    "kube-prometheus-stack": ["prometheus", "prometheus-operator", "kube-state-metrics", "node-exporter"],
}


@pytest.mark.parametrize("stack", STACKS)
def test_every_system_pod_the_stack_installs_is_counted(stack: str):
    mocks = _run(stack)
    installed = [r.inputs["addonName"] for r in mocks.of_type("aws:eks/addon:Addon")]
    installed += [r.inputs["chart"] for r in mocks.of_type(RELEASE)]
    config = load_stack_config(stack_values(stack))
    counted = {pod.name for pod in stack_system_pods(config)}
    assert sorted(name for thing in installed for name in COUNTED_AS[thing]) == sorted(counted)


@pytest.mark.parametrize(("stack", "needed", "max_size"), [("dev", 1, 3), ("prod", 5, 6)])
def test_max_replicas_fit_on_the_node_group_at_max_size(stack: str, needed: int, max_size: int):
    config = load_stack_config(stack_values(stack))
    nodes = config.cluster.node_group
    assert nodes.max_size == max_size
    pod = server_pod_requests(config.server.cpu, config.server.memory)
    worst = max(
        nodes_needed(INSTANCE_TYPES[name], pod, config.server.max_replicas, stack_system_pods(config)).nodes_needed
        or 10**6
        for name in nodes.instance_types
    )
    assert worst == needed <= max_size


def test_a_node_group_too_small_for_max_replicas_is_refused():
    values = copy.deepcopy(stack_values("prod"))
    values["cluster"]["nodeGroup"] = {**values["cluster"]["nodeGroup"], "maxSize": 4}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    (problem,) = error.value.problems
    assert problem.key == "mlflow-platform:cluster.nodeGroup.maxSize"
    assert "at least 5 nodes of m6i.xlarge" in str(problem) and "server.maxReplicas (5)" in str(problem)


def test_an_instance_type_of_unknown_capacity_is_refused():
    values = copy.deepcopy(stack_values("dev"))
    values["cluster"]["nodeGroup"] = {**values["cluster"]["nodeGroup"], "instanceTypes": ["x9.huge"]}
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    assert [p.key for p in error.value.problems] == ["mlflow-platform:cluster.nodeGroup.instanceTypes"]


# --- dev ingress hairpin -------------------------------------------------------------------


def test_nginx_nlb_is_reconciled_by_the_load_balancer_controller_with_ip_targets():
    mocks = _run("dev")
    nginx = _release(mocks, "ingress-nginx")
    service = nginx["values"]["controller"]["service"]
    assert service["loadBalancerClass"] == "service.k8s.aws/nlb"
    assert service["annotations"] == {
        "service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes": "preserve_client_ip.enabled=false",
        # Pinned to the dedicated load-balancer subnets (below).
        "service.beta.kubernetes.io/aws-load-balancer-subnets": "mlflow-dev-network-lb-0-id,mlflow-dev-network-lb-1-id",
    }
    # The controller runs on the nginx path too, before the Service it reconciles.
    lbc = _release(mocks, "aws-load-balancer-controller")
    assert lbc["version"] == AWS_LOAD_BALANCER_CONTROLLER.version
    assert "mlflow-dev-ingress-lbc" in mocks.dependencies["mlflow-dev-ingress-ingress-nginx"]
    assert_irsa_trust(mocks.one("aws:iam/role:Role", "-ingress-lbc"), "kube-system", "aws-load-balancer-controller")


def test_the_nlb_annotations_are_ones_the_installed_controller_honours():
    annotations = _release(_run("dev"), "ingress-nginx")["values"]["controller"]["service"]["annotations"]
    assert unhonoured(annotations) == []
    # What the Service carried before: the in-tree controller's type, which the LBC does not reconcile.
    assert unhonoured({"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}) == [
        "service.beta.kubernetes.io/aws-load-balancer-type=nlb: the controller accepts ('external', 'nlb-ip')"
    ]
    assert unhonoured({"service.beta.kubernetes.io/aws-load-balancer-nlb-target": "ip"})  # a typo is caught


# --- load-balancer subnets -----------------------------------------------------------------


@pytest.mark.parametrize(("cidr", "zones"), [("10.20.0.0/16", 3), ("10.10.0.0/16", 2), ("192.168.0.0/20", 3)])
def test_load_balancer_subnets_are_their_own_part_of_the_vpc(cidr: str, zones: int):
    plan = plan_subnets(cidr, zones)
    nets = [ipaddress.IPv4Network(n) for n in plan.private + plan.public + plan.load_balancer]
    assert len(plan.load_balancer) == zones
    assert all(n.subnet_of(ipaddress.IPv4Network(cidr)) for n in nets)
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    # An ALB needs at least a /27 with 8 free addresses per subnet.
    assert all(ipaddress.IPv4Network(n).prefixlen <= 27 for n in plan.load_balancer)
    if cidr == "10.20.0.0/16":
        assert plan.load_balancer == ("10.20.240.0/22", "10.20.244.0/22", "10.20.248.0/22")


@pytest.mark.parametrize("stack", STACKS)
def test_no_node_and_so_no_pod_can_be_in_a_load_balancer_subnet(stack: str):
    mocks = _run(stack)
    lb_ids = {f"mlflow-{stack}-network-lb-{i}-id" for i in range({"dev": 2, "prod": 3}[stack])}
    assert {f"{r.name}-id" for r in mocks.of_type("aws:ec2/subnet:Subnet") if "-lb-" in r.name} == lb_ids
    assert not lb_ids & set(mocks.one("aws:eks/nodeGroup:NodeGroup").inputs["subnetIds"])
    assert not lb_ids & set(mocks.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["subnetIds"])
    # Only they are tagged for internal load balancers.
    tagged = {
        f"{r.name}-id"
        for r in mocks.of_type("aws:ec2/subnet:Subnet")
        if r.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"
    }
    assert tagged == lb_ids


def test_prod_alb_is_pinned_to_the_load_balancer_subnets_and_only_they_are_admitted():
    mocks = _run("prod")
    ingress = mocks.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    ids = ",".join(f"mlflow-prod-network-lb-{i}-id" for i in range(3))
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/subnets"] == ids
    policy = next(
        r.inputs
        for r in mocks.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if r.name.endswith("-server-network-policy")
    )
    blocks = [p["ipBlock"]["cidr"] for p in policy["spec"]["ingress"][0]["from"] if "ipBlock" in p]
    assert blocks == ["10.20.240.0/22", "10.20.244.0/22", "10.20.248.0/22"]
    assert "10.20.0.0/16" not in blocks


def test_reused_network_pins_the_configured_load_balancer_subnets():
    mocks = _run("prod", "reuse")
    ingress = mocks.one("kubernetes:networking.k8s.io/v1:Ingress").inputs
    assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/subnets"] == (
        "subnet-0f1e2d3c4b5a60101,subnet-0f1e2d3c4b5a60102,subnet-0f1e2d3c4b5a60103"
    )


def _reused_prod_with_lb_subnets(subnets: Any) -> dict[str, Any]:
    values = reused_values("prod", stack_values("prod"))
    values["network"]["loadBalancerSubnets"] = subnets
    return values


@pytest.mark.parametrize(
    ("subnets", "key", "expected"),
    [
        (None, "mlflow-platform:network.loadBalancerSubnets", "at least two"),
        (
            [
                {"id": "subnet-0f1e2d3c4b5a60001", "cidrBlock": "10.20.0.0/18"},  # a node subnet
                {"id": "subnet-0f1e2d3c4b5a60102", "cidrBlock": "10.20.244.0/22"},
            ],
            "mlflow-platform:network.loadBalancerSubnets[0]",
            "also in privateSubnetIds",
        ),
        (
            [
                {"id": "subnet-0f1e2d3c4b5a60101", "cidrBlock": "10.20.240.0/22"},
                {"id": "subnet-0f1e2d3c4b5a60102", "cidrBlock": "10.20.240.0/24"},
            ],
            "mlflow-platform:network.loadBalancerSubnets[1]",
            "not overlapping",
        ),
        (
            [
                {"id": "subnet-0f1e2d3c4b5a60101", "cidrBlock": "10.20.240.0/22"},
                {"id": "subnet-0f1e2d3c4b5a60102", "cidrBlock": "10.99.0.0/22"},
            ],
            "mlflow-platform:network.loadBalancerSubnets",
            "inside mlflow-platform:server.vpcCidr",
        ),
    ],
)
def test_reuse_requires_load_balancer_subnets_apart_from_the_nodes(subnets: Any, key: str, expected: str):
    values = _reused_prod_with_lb_subnets(subnets)
    if subnets is None:
        values["network"].pop("loadBalancerSubnets")
    with pytest.raises(ConfigError) as error:
        load_stack_config(values)
    (problem,) = error.value.problems
    assert problem.key == key and expected in str(problem)

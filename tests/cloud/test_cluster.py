"""The created EKS cluster and its ingress path, as rendered for both stack files, plus the same
program on an existing cluster (``cluster.mode: reuse``): the security properties on the inputs
AWS and Kubernetes would receive."""

from __future__ import annotations

import ast
import json
from types import SimpleNamespace
from typing import Any

import pytest

from components.cluster import LOG_TYPES
from components.cluster_addons import (
    AWS_LOAD_BALANCER_CONTROLLER,
    CERT_MANAGER,
    INGRESS_NGINX,
    TrackingHostRecord,
    load_balancer_controller_policy,
    load_balancer_hostname,
)
from components.cluster_monitoring import KUBE_PROMETHEUS_STACK
from components.cluster_scaling import CLUSTER_AUTOSCALER
from policy.rules import eks
from tests.policy.harness import violations
from tests.pulumi_harness import (
    ACCOUNT_ID,
    CLUSTER_CA,
    OIDC_ISSUER,
    ROOT,
    Recorded,
    RecordingMocks,
    captured_program,
    reused_config,
    run_mocked,
)

STACKS = ["dev", "prod"]
ISSUER_HOST_PATH = OIDC_ISSUER.removeprefix("https://")
OIDC_ARN = f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{ISSUER_HOST_PATH}"
ROLE = "aws:iam/role:Role"
ADDON = "aws:eks/addon:Addon"
RELEASE = "kubernetes:helm.sh/v3:Release"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


def _run(stack: str, mode: str = "create") -> RecordingMocks:
    return captured_program(stack, mode)[0]


def cluster(stack: str) -> dict[str, Any]:
    return _run(stack).one("aws:eks/cluster:Cluster").inputs


def trust(role: Recorded) -> dict[str, Any]:
    return json.loads(role.inputs["assumeRolePolicy"])


def assert_irsa_trust(role: Recorded, namespace: str, service_account: str) -> None:
    """Exactly one statement: this service account of this cluster, through STS, nothing else."""
    (statement,) = trust(role)["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Federated": OIDC_ARN}
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"] == {
        "StringEquals": {
            f"{ISSUER_HOST_PATH}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{ISSUER_HOST_PATH}:aud": "sts.amazonaws.com",
        }
    }


def attached(mocks: RecordingMocks, role_name: str) -> set[str]:
    return {
        a.inputs["policyArn"].removeprefix("arn:aws:iam::aws:policy/")
        for a in mocks.of_type(ATTACHMENT)
        if a.inputs["role"] == f"{role_name}-7f3a2b"
    }


def test_the_cluster_is_built_by_object_family_in_short_methods():
    """Issue 19: one method per object family (control plane, OIDC, access, IRSA roles, add-ons,
    nodes), none a wall of resources, and the module under the 500-line limit."""
    source = (ROOT / "components" / "cluster.py").read_text()
    (cluster_class,) = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Cluster"]
    lengths = {
        method.name: method.end_lineno - method.lineno + 1
        for method in cluster_class.body
        if isinstance(method, ast.FunctionDef) and method.end_lineno is not None
    }
    assert {"_control_plane", "_oidc", "_access", "_irsa_roles", "_addon", "_nodes"} <= lengths.keys()
    assert max(lengths.values()) <= 60, lengths
    assert len(source.splitlines()) <= 500


# --- control plane -------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_are_envelope_encrypted_with_a_rotated_customer_key(stack: str):
    mocks = _run(stack)
    key = mocks.one("aws:kms/key:Key", "-cluster-secrets-key")
    assert key.inputs["enableKeyRotation"] is True
    assert cluster(stack)["encryptionConfig"] == {
        "provider": {"keyArn": f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/{key.name}-7f3a2b"},
        "resources": ["secrets"],
    }
    # The control plane's role may use that key, and only that key.
    role = mocks.one(ROLE, "-cluster-role")
    assert trust(role)["Statement"][0]["Principal"] == {"Service": "eks.amazonaws.com"}
    grant = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "-cluster-role-secrets-key").inputs["policy"])
    (statement,) = grant["Statement"]
    assert statement["Resource"] == cluster(stack)["encryptionConfig"]["provider"]["keyArn"]
    assert statement["Action"] == ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:ListGrants"]


@pytest.mark.parametrize(("stack", "days"), [("dev", 7), ("prod", 365)])
def test_all_five_log_types_go_to_a_log_group_with_retention(stack: str, days: int):
    assert cluster(stack)["enabledClusterLogTypes"] == list(LOG_TYPES)
    assert set(LOG_TYPES) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    log_group = _run(stack).one("aws:cloudwatch/logGroup:LogGroup", "-cluster-logs").inputs
    assert log_group["name"] == f"/aws/eks/mlflow-{stack}/cluster" and log_group["retentionInDays"] == days


def test_dev_api_endpoint_is_public_only_to_the_listed_cidrs():
    vpc = cluster("dev")["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is True
    # The operators' range, then the CI runners' egress address (cluster.deployerCidrs).
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24", "198.51.100.10/32"]


def test_prod_api_endpoint_is_private_only():
    vpc = cluster("prod")["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc


@pytest.mark.parametrize("stack", STACKS)
def test_control_plane_and_nodes_live_in_the_private_subnets(stack: str):
    mocks = _run(stack)
    private = sorted(s.name + "-id" for s in mocks.of_type("aws:ec2/subnet:Subnet") if "-private-" in s.name)
    assert sorted(cluster(stack)["vpcConfig"]["subnetIds"]) == private
    assert sorted(mocks.one("aws:eks/nodeGroup:NodeGroup").inputs["subnetIds"]) == private


@pytest.mark.parametrize("stack", STACKS)
def test_access_is_through_explicit_access_entries_only(stack: str):
    mocks = _run(stack)
    inputs = cluster(stack)
    assert inputs["accessConfig"] == {"authenticationMode": "API", "bootstrapClusterCreatorAdminPermissions": False}
    account = "111111111111" if stack == "dev" else "222222222222"
    admin = f"arn:aws:iam::{account}:role/mlflow-platform-deploy-{stack}"
    # The deploy role is the only cluster-admin (preview and drift roles: tests/cloud/test_first_deploy.py).
    (entry,) = [e for e in mocks.of_type("aws:eks/accessEntry:AccessEntry") if "-admin-" in e.name]
    assert entry.inputs["principalArn"] == admin and entry.inputs["type"] == "STANDARD"
    associations = mocks.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    (association,) = [a for a in associations if a.inputs["policyArn"].endswith("/AmazonEKSClusterAdminPolicy")]
    assert association.inputs["principalArn"] == admin
    assert association.inputs["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    assert association.inputs["accessScope"] == {"type": "cluster"}


@pytest.mark.parametrize(("stack", "protected"), [("dev", False), ("prod", True)])
def test_version_support_and_deletion_protection(stack: str, protected: bool):
    inputs = cluster(stack)
    assert inputs["name"] == f"mlflow-{stack}" and inputs["version"] == "1.36"
    assert inputs["upgradePolicy"] == {"supportType": "STANDARD"}  # no silent extended-support billing
    assert inputs["deletionProtection"] is protected
    assert inputs["bootstrapSelfManagedAddons"] is False  # add-ons below, each explicit


@pytest.mark.parametrize("stack", STACKS)
def test_policy_pack_eks_rules_pass_on_the_created_cluster_and_would_catch_an_open_endpoint(stack: str):
    inputs = _run(stack).one("aws:eks/cluster:Cluster").raw_inputs
    for policy in (eks.eks_secrets_encryption, eks.eks_control_plane_logging, eks.eks_endpoint_access):
        assert violations(policy, eks.EKS_CLUSTER, inputs) == []
    opened = json.loads(json.dumps(inputs))
    opened["vpcConfig"].update(endpointPublicAccess=True, publicAccessCidrs=["0.0.0.0/0"])
    assert violations(eks.eks_endpoint_access, eks.EKS_CLUSTER, opened)


# --- IRSA, add-ons, nodes ------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_oidc_provider_is_the_clusters_issuer_for_sts(stack: str):
    oidc = _run(stack).one("aws:iam/openIdConnectProvider:OpenIdConnectProvider").inputs
    assert oidc["url"] == OIDC_ISSUER
    assert oidc["clientIdLists"] == ["sts.amazonaws.com"]


@pytest.mark.parametrize("stack", STACKS)
def test_vpc_cni_enforces_network_policies_with_its_own_role(stack: str):
    mocks = _run(stack)
    addons = {a.inputs["addonName"]: a.inputs for a in mocks.of_type(ADDON)}
    assert set(addons) == {"vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "metrics-server"}
    cni = addons["vpc-cni"]
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}
    role = mocks.one(ROLE, "-cluster-vpc-cni")
    assert cni["serviceAccountRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}-7f3a2b"
    assert_irsa_trust(role, "kube-system", "aws-node")
    assert attached(mocks, role.name) == {"AmazonEKS_CNI_Policy"}
    assert all(a["resolveConflictsOnCreate"] == "OVERWRITE" for a in addons.values())


@pytest.mark.parametrize("stack", STACKS)
def test_ebs_csi_driver_runs_with_an_irsa_role_for_its_controller(stack: str):
    mocks = _run(stack)
    (ebs,) = [a.inputs for a in mocks.of_type(ADDON) if a.inputs["addonName"] == "aws-ebs-csi-driver"]
    role = mocks.one(ROLE, "-cluster-ebs-csi")
    assert ebs["serviceAccountRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}-7f3a2b"
    assert_irsa_trust(role, "kube-system", "ebs-csi-controller-sa")
    assert attached(mocks, role.name) == {"service-role/AmazonEBSCSIDriverPolicy"}


@pytest.mark.parametrize("stack", STACKS)
def test_nodes_hold_no_cni_rights_and_no_credentials_for_pods(stack: str):
    mocks = _run(stack)
    node_role = mocks.one(ROLE, "-cluster-node")
    assert trust(node_role)["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": ["sts:AssumeRole"]}
    ]
    assert attached(mocks, node_role.name) == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}
    template = mocks.one("aws:ec2/launchTemplate:LaunchTemplate").inputs
    # IMDSv2 only, one hop: a pod (one hop further) cannot reach the node's credentials.
    assert template["metadataOptions"] == {
        "httpEndpoint": "enabled",
        "httpTokens": "required",
        "httpPutResponseHopLimit": 1,
    }
    (disk,) = template["blockDeviceMappings"]
    assert disk["ebs"]["encrypted"] == "true" and disk["ebs"]["volumeType"] == "gp3"
    group = mocks.one("aws:eks/nodeGroup:NodeGroup").inputs
    assert group["launchTemplate"] == {"id": "mlflow-" + stack + "-cluster-nodes-id", "version": "1"}
    assert group["nodeRoleArn"] == f"arn:aws:iam::{ACCOUNT_ID}:role/{node_role.name}-7f3a2b"
    assert "remoteAccess" not in group  # no SSH


@pytest.mark.parametrize(
    ("stack", "capacity", "sizes", "types"),
    [
        ("dev", "SPOT", (2, 1, 3), ["t3.large", "t3a.large", "m5.large"]),
        ("prod", "ON_DEMAND", (3, 3, 6), ["m6i.xlarge"]),
    ],
)
def test_node_group_is_sized_per_stack(stack: str, capacity: str, sizes: tuple[int, int, int], types: list[str]):
    group = _run(stack).one("aws:eks/nodeGroup:NodeGroup").inputs
    assert group["capacityType"] == capacity and group["instanceTypes"] == types
    scaling = group["scalingConfig"]
    assert (scaling["desiredSize"], scaling["minSize"], scaling["maxSize"]) == sizes
    assert group["amiType"] == "AL2023_x86_64_STANDARD"


# --- ingress path --------------------------------------------------------------------------


def releases(stack: str) -> dict[str, dict[str, Any]]:
    return {r.inputs["chart"]: r.inputs for r in _run(stack).of_type(RELEASE)}


@pytest.mark.parametrize("stack", STACKS)
def test_helm_releases_are_pinned(stack: str):
    found = releases(stack)
    assert found
    pins = {
        c.name: c
        for c in (AWS_LOAD_BALANCER_CONTROLLER, INGRESS_NGINX, CERT_MANAGER, KUBE_PROMETHEUS_STACK, CLUSTER_AUTOSCALER)
    }
    for chart, inputs in found.items():
        assert inputs["version"] == pins[chart].version
        assert inputs["repositoryOpts"] == {"repo": pins[chart].repository}
        assert inputs["repositoryOpts"]["repo"].startswith("https://")
        assert inputs["atomic"] is True


def test_alb_path_installs_the_load_balancer_controller_with_its_irsa_role():
    mocks = _run("prod")
    lbc = releases("prod")["aws-load-balancer-controller"]
    role = mocks.one(ROLE, "-ingress-lbc")
    assert_irsa_trust(role, "kube-system", "aws-load-balancer-controller")
    assert lbc["namespace"] == "kube-system"
    values = lbc["values"]
    assert values["serviceAccount"] == {
        "create": True,
        "name": "aws-load-balancer-controller",
        "annotations": {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}-7f3a2b"},
    }
    assert values["clusterName"] == "mlflow-prod" and values["region"] == "us-east-1"
    assert values["vpcId"] == "mlflow-prod-network-vpc-id"
    policy = mocks.one("aws:iam/rolePolicy:RolePolicy", "-ingress-lbc").inputs
    assert policy["role"] == f"{role.name}-id"
    assert json.loads(policy["policy"]) == load_balancer_controller_policy()


def test_vendored_controller_policy_is_the_upstream_shape():
    policy = load_balancer_controller_policy()
    statements = policy["Statement"]
    actions = {a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])}
    assert not [a for a in actions if a.endswith(":*") or a == "*"]
    # The controller may only create the ELB service-linked role, and only tag what it created.
    (slr,) = [s for s in statements if "iam:CreateServiceLinkedRole" in s["Action"]]
    assert slr["Condition"] == {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}}
    deletes = [s for s in statements if "ec2:DeleteSecurityGroup" in s["Action"]]
    assert deletes and all("aws:ResourceTag/elbv2.k8s.aws/cluster" in s["Condition"]["Null"] for s in deletes)
    # Actions v3 controllers need (without them they stop reconciling or cannot create an ALB).
    assert {"elasticloadbalancing:DescribeListenerAttributes", "ec2:GetSecurityGroupsForVpc"} <= actions


def test_alb_path_issues_a_dns_validated_certificate_the_ingress_uses():
    mocks = _run("prod")
    certificate = mocks.one("aws:acm/certificate:Certificate").inputs
    assert certificate["domainName"] == "mlflow.example.com" and certificate["validationMethod"] == "DNS"
    record = mocks.one("aws:route53/record:Record", "-certificate-validation").inputs
    assert record["zoneId"] == "Z0PROD0123456789EXAMPLE"
    assert (record["name"], record["type"], record["records"]) == (
        "_3b1f0c.mlflow.example.com.",
        "CNAME",
        ["_9a8b7c.acm-validations.aws."],
    )
    validation = mocks.one("aws:acm/certificateValidation:CertificateValidation").inputs
    assert validation["validationRecordFqdns"] == ["_3b1f0c.mlflow.example.com"]
    (ingress,) = [r.inputs for r in mocks.of_type("kubernetes:networking.k8s.io/v1:Ingress")]
    arn = ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/certificate-arn"]
    assert arn == validation["certificateArn"]
    assert arn.startswith(f"arn:aws:acm:us-east-1:{ACCOUNT_ID}:certificate/")
    assert not mocks.of_type("kubernetes:cert-manager.io/v1:ClusterIssuer")


def test_nginx_path_installs_ingress_nginx_and_cert_manager_with_a_dns01_issuer():
    mocks = _run("dev")
    found = releases("dev")
    assert set(found) == {"ingress-nginx", "cert-manager", "cluster-autoscaler", "aws-load-balancer-controller"}
    nginx = found["ingress-nginx"]
    # The namespace the tracking server's NetworkPolicy admits.
    assert nginx["namespace"] == "ingress-nginx" and nginx["createNamespace"] is True
    controller = nginx["values"]["controller"]
    assert controller["allowSnippetAnnotations"] is False
    # The NLB: tests/cloud/test_cluster_add_ons.py (hairpin).
    cert_manager = found["cert-manager"]
    assert cert_manager["namespace"] == "cert-manager"
    assert cert_manager["values"]["crds"] == {"enabled": True, "keep": True}
    role = mocks.one(ROLE, "-ingress-cert-manager")
    assert_irsa_trust(role, "cert-manager", "cert-manager")
    annotations = cert_manager["values"]["serviceAccount"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{role.name}-7f3a2b"}
    issuer = mocks.one("kubernetes:cert-manager.io/v1:ClusterIssuer").inputs
    assert issuer["metadata"]["name"] == "letsencrypt"  # server.ingress.certManagerIssuer
    acme = issuer["spec"]["acme"]
    assert acme["server"] == "https://acme-v02.api.letsencrypt.org/directory"
    assert acme["email"] == "ml-platform@example.com"
    (solver,) = acme["solvers"]
    assert solver["dns01"] == {"route53": {"region": "us-east-1", "hostedZoneID": "Z0DEV0123456789EXAMPLE"}}
    assert solver["selector"] == {"dnsNames": ["mlflow.dev.example.com"]}
    assert not mocks.of_type("aws:acm/certificate:Certificate")


def test_cert_manager_may_write_only_the_challenge_record_of_the_tracking_host():
    policy = json.loads(_run("dev").one("aws:iam/rolePolicy:RolePolicy", "-ingress-cert-manager").inputs["policy"])
    statements = {s["Sid"]: s for s in policy["Statement"]}
    zone = "arn:aws:route53:::hostedzone/Z0DEV0123456789EXAMPLE"
    change = statements["ChallengeRecord"]
    assert (change["Action"], change["Resource"]) == ("route53:ChangeResourceRecordSets", zone)
    assert change["Condition"] == {
        "ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["_acme-challenge.mlflow.dev.example.com"],
            "route53:ChangeResourceRecordSetsRecordTypes": ["TXT"],
        }
    }
    assert statements["ReadZone"]["Resource"] == zone
    assert statements["ChangeStatus"]["Resource"] == "arn:aws:route53:::change/*"


@pytest.mark.parametrize(
    ("stack", "zone", "host"),
    [
        ("dev", "Z0DEV0123456789EXAMPLE", "mlflow.dev.example.com"),
        ("prod", "Z0PROD0123456789EXAMPLE", "mlflow.example.com"),
    ],
)
def test_tracking_host_points_at_the_ingress_load_balancer(stack: str, zone: str, host: str):
    record = _run(stack).one("aws:route53/record:Record", "-dns-cname").inputs
    assert (record["zoneId"], record["name"], record["type"]) == (zone, host, "CNAME")
    assert record["records"] == ["k8s-mlflow-mlflow-0a1b2c3d4e-1234567890.us-east-1.elb.amazonaws.com"]


def test_tracking_host_record_component():
    def program() -> dict[str, Any]:
        record = TrackingHostRecord(
            "dns", {"hosted_zone_id": "Z123", "host": "mlflow.example.org", "load_balancer_hostname": "lb.example"}
        )
        return {"fqdn": record.fqdn}

    mocks, outputs, _ = run_mocked(program)
    assert outputs["fqdn"] == "mlflow.example.org"
    assert mocks.one("aws:route53/record:Record").inputs == {
        "zoneId": "Z123",
        "name": "mlflow.example.org",
        "type": "CNAME",
        "ttl": 300.0,
        "records": ["lb.example"],
    }


def test_an_ingress_without_a_load_balancer_yet_is_a_clear_error():
    status = SimpleNamespace(load_balancer=SimpleNamespace(ingress=[SimpleNamespace(hostname=None)]))
    with pytest.raises(ValueError, match="no load balancer hostname"):
        load_balancer_hostname(status)
    with pytest.raises(ValueError):
        load_balancer_hostname(None)


# --- reuse ---------------------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_reuse_creates_no_cluster_network_or_addons_and_talks_to_the_configured_cluster(stack: str):
    mocks = _run(stack, "reuse")
    created = {
        r.typ
        for r in mocks.resources
        if r.typ.startswith(("aws:eks/", "aws:ec2/", "aws:acm/", "aws:route53/", "kubernetes:helm.sh/"))
        or r.typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider"
    }
    assert created == {"aws:ec2/securityGroup:SecurityGroup"}  # the database's own group only
    config = json.loads(reused_config(stack)["mlflow-platform:cluster"])
    kubeconfig = json.loads(mocks.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"] == {
        "server": config["endpoint"],
        "certificate-authority-data": config["certificateAuthorityData"],
    }
    assert kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] != CLUSTER_CA
    # The tracking roles trust the configured OIDC provider.
    host_path = config["oidcProviderArn"].split(":oidc-provider/", 1)[1]
    statement = trust(mocks.one(ROLE, "-server-role"))["Statement"][0]
    assert statement["Principal"] == {"Federated": config["oidcProviderArn"]}
    assert statement["Condition"]["StringEquals"] == {
        f"{host_path}:sub": "system:serviceaccount:mlflow:mlflow-server",
        f"{host_path}:aud": "sts.amazonaws.com",
    }
    if stack == "prod":  # the configured ACM certificate, as given
        (ingress,) = [r.inputs for r in mocks.of_type("kubernetes:networking.k8s.io/v1:Ingress")]
        annotation = ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/certificate-arn"]
        assert annotation == json.loads(reused_config(stack)["mlflow-platform:server"])["ingress"]["acmCertificateArn"]

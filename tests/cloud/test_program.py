"""The whole program (``infra/__main__.py``) run fresh per stack file, as ``pulumi up`` would."""

from __future__ import annotations

import json

import pulumi
import pytest

from tests.pulumi_harness import (
    LOAD_BALANCER_HOSTNAME,
    captured_program,
    reused_config,
    run_program,
    stack_file_config,
)

STACKS = ["dev", "prod"]
MODES = ["create", "reuse"]
SERVER_SIDE = [
    "mlflow:index:ArtifactStore",
    "mlflow:index:GarbageCollection",
    "mlflow:index:KeyPolicy",
    "mlflow:index:LogsKey",
    "mlflow:index:Monitoring",
    "mlflow:index:TrackingDatabase",
    "mlflow:index:TrackingServer",
    "mlflow:index:TrackingServerAccess",
    "mlflow:index:TrackingServerMetrics",
    "mlflow:index:TrainingJobAccess",
]
CLUSTER_SIDE = [
    "mlflow:index:Cluster",
    "mlflow:index:ClusterAutoscaling",
    "mlflow:index:ClusterIngress",
    "mlflow:index:Network",
    "mlflow:index:TrackingHostRecord",
]


def config_for(stack: str, mode: str) -> dict[str, str]:
    """The stack files create their cluster; ``reuse`` runs the same file on an existing one."""
    return stack_file_config(stack) if mode == "create" else reused_config(stack)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stack", STACKS)
def test_stack_builds_the_whole_platform(stack: str, mode: str):
    mocks, outputs, secrets = captured_program(stack, mode)
    components = sorted(r.typ for r in mocks.resources if r.typ.startswith("mlflow:index:"))
    # kube-prometheus-stack: on a created cluster whose stack wants the Prometheus Operator (prod).
    operator = ["mlflow:index:ClusterMonitoring"] if (mode, stack) == ("create", "prod") else []
    assert components == sorted(SERVER_SIDE + (CLUSTER_SIDE if mode == "create" else []) + operator)
    assert outputs["clusterMode"] == mode
    assert outputs["clusterName"] == f"mlflow-{stack}"
    assert outputs["artifactRoot"] == f"s3://{outputs['artifactBucketName']}/mlflow"
    assert outputs["trainingRoleArn"].startswith("arn:aws:iam::")
    assert outputs["trackingServerRoleArn"] != outputs["trainingRoleArn"]
    assert outputs["databaseAddress"].endswith(".rds.amazonaws.com")
    assert outputs["trackingUrl"] == "https://" + (
        "mlflow.example.com" if stack == "prod" else "mlflow.dev.example.com"
    )
    # Exactly the passwords are secret (the kubeconfig holds no credential: it execs aws eks get-token).
    assert {key for key, secret in secrets.items() if secret} == {"databaseMasterPassword", "trackingAdminPassword"}
    kubeconfig = json.loads(outputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["command"] == "aws"
    if mode == "create":
        assert outputs["trackingHostRecord"] == outputs["trackingUrl"].removeprefix("https://")
    else:
        assert "trackingHostRecord" not in outputs
    # Every resource is a child of one of our components; the only exception is the one
    # explicit Kubernetes provider the program builds.
    loose = [u for u in mocks.urns if "mlflow:index:" not in u]
    assert [u.split("::")[-2].split("$")[-1] for u in loose] == ["pulumi:providers:kubernetes"]


def test_dev_and_prod_differ_as_their_files_say():
    dev_mocks, _, _ = captured_program("dev")
    prod_mocks, prod_out, _ = captured_program("prod")
    dev_db = dev_mocks.one("aws:rds/instance:Instance").inputs
    prod_db = prod_mocks.one("aws:rds/instance:Instance").inputs
    assert (dev_db["instanceClass"], prod_db["instanceClass"]) == ("db.t4g.medium", "db.r6g.large")
    assert (dev_db["multiAz"], prod_db["multiAz"]) == (False, True)
    assert (dev_db["deletionProtection"], prod_db["deletionProtection"]) == (False, True)
    assert (dev_db["skipFinalSnapshot"], prod_db["skipFinalSnapshot"]) == (True, False)
    assert dev_mocks.of_type("aws:s3/bucketLogging:BucketLogging") == []
    # prod logs the artifact bucket and its disaster-recovery replica, each in its own region.
    assert len(prod_mocks.of_type("aws:s3/bucketLogging:BucketLogging")) == 2
    assert dev_mocks.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig") == []
    assert len(prod_mocks.of_type("aws:s3/bucketReplicationConfig:BucketReplicationConfig")) == 1
    # prod: db.r6g.large = 16 GiB -> shared_buffers 4 GiB = 524288 pages, max_connections 400
    params = {
        p["name"]: p["value"] for p in prod_mocks.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
    }
    assert params["shared_buffers"] == "524288" and params["max_connections"] == "400"
    assert prod_out["databaseMaxConnections"] == 400
    # SageMaker may assume prod's training role, only for this account's mlflow-* training jobs.
    trust = json.loads(prod_mocks.one("aws:iam/role:Role", "training-role").inputs["assumeRolePolicy"])
    sagemaker = [s for s in trust["Statement"] if s["Principal"] == {"Service": "sagemaker.amazonaws.com"}]
    assert sagemaker and sagemaker[0]["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:sagemaker:us-east-1:222222222222:training-job/mlflow-*"},
    }


def test_proxied_mode_switch_reaches_iam():
    config = stack_file_config("dev")
    artifacts = json.loads(config["mlflow-platform:artifacts"])
    config["mlflow-platform:artifacts"] = json.dumps({**artifacts, "accessMode": "proxied"})
    mocks, outputs, _ = run_program("dev", config)
    assert outputs["artifactAccessMode"] == "proxied"
    artifact_policies = [
        p.name for p in mocks.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-artifacts")
    ]
    assert artifact_policies == ["mlflow-dev-server-artifacts"]


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("mlflow-platform:database", {"instanceClass": "db.z1.mega"}, "mlflow-platform:database.instanceClass"),
        ("mlflow-platform:artifactz", {"accessMode": "direct"}, "mlflow-platform:artifactz"),
    ],
)
def test_invalid_config_fails_the_preview_with_the_key_named(key: str, value: object, named: str):
    config = stack_file_config("dev")
    config[key] = json.dumps(value)
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", config)
    assert named in str(caught.value)
    assert "Traceback" not in str(caught.value)


@pytest.mark.parametrize("stack", STACKS)
def test_database_admits_only_the_clusters_security_group(stack: str):
    """Created cluster: its own security group (nodes and pods), nothing else. Reused: the
    configured groups, nothing else."""
    created, _, _ = captured_program(stack, "create")
    cluster = created.one("aws:eks/cluster:Cluster")
    rules = [
        r for r in created.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if "-db-" in r.name
    ]
    assert [r.inputs["referencedSecurityGroupId"] for r in rules] == ["sg-0c1a5e7e55ec0123f"]
    assert (
        cluster.inputs["vpcConfig"]["subnetIds"] == created.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"]
    )
    assert (
        created.one("aws:ec2/securityGroup:SecurityGroup", "-db-").inputs["vpcId"]
        == "mlflow-" + stack + "-network-vpc-id"
    )

    reused, _, _ = captured_program(stack, "reuse")
    configured = json.loads(config_for(stack, "reuse")["mlflow-platform:network"])
    rules = reused.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert sorted(r.inputs["referencedSecurityGroupId"] for r in rules) == sorted(
        configured["databaseClientSecurityGroupIds"]
    )
    assert reused.one("aws:ec2/securityGroup:SecurityGroup", "-db-").inputs["vpcId"] == configured["vpcId"]
    assert reused.of_type("aws:eks/cluster:Cluster") == [] and reused.of_type("aws:ec2/vpc:Vpc") == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stack", STACKS)
def test_one_explicit_kubernetes_provider_for_every_kubernetes_resource(stack: str, mode: str):
    mocks, _, _ = captured_program(stack, mode)
    providers = mocks.of_type("pulumi:providers:kubernetes")
    assert [p.name for p in providers] == [f"mlflow-{stack}-kubernetes"]
    kubeconfig = json.loads(providers[0].inputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:4] == [
        "eks",
        "get-token",
        "--cluster-name",
        f"mlflow-{stack}",
    ]
    kube = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
    assert len(kube) >= 15
    expected = f"pulumi:providers:kubernetes::mlflow-{stack}-kubernetes::"
    strays = [(r.typ, r.name, r.provider) for r in kube if not (r.provider and expected in r.provider)]
    assert strays == []
    helm = {r.inputs["chart"] for r in kube if r.typ == "kubernetes:helm.sh/v3:Release"}
    if mode == "reuse":
        assert helm == set()  # the controllers of an existing cluster are taken as given
    else:
        assert helm == (
            {"ingress-nginx", "cert-manager", "cluster-autoscaler", "aws-load-balancer-controller"}
            if stack == "dev"
            else {"aws-load-balancer-controller", "kube-prometheus-stack", "cluster-autoscaler"}
        )


@pytest.mark.parametrize("stack", STACKS)
def test_created_cluster_feeds_kubeconfig_irsa_and_dns(stack: str):
    mocks, outputs, _ = captured_program(stack, "create")
    cluster = mocks.one("aws:eks/cluster:Cluster")
    # The provider talks to the created cluster, with its CA.
    kubeconfig = json.loads(mocks.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == outputs["clusterEndpoint"]
    assert (
        kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
        == "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1PQ0s="
    )
    assert cluster.inputs["name"] == f"mlflow-{stack}"
    # The tracking roles trust the created cluster's OIDC provider.
    oidc = mocks.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    host_path = oidc.inputs["url"].removeprefix("https://")
    for role in ("training-role", "server-role"):
        trust = json.loads(mocks.one("aws:iam/role:Role", f"mlflow-{stack}-{role}").inputs["assumeRolePolicy"])
        irsa = trust["Statement"][0]
        assert irsa["Principal"] == {"Federated": outputs["oidcProviderArn"]}
        assert irsa["Condition"]["StringEquals"][f"{host_path}:aud"] == "sts.amazonaws.com"
    # The tracking host points at the load balancer the Ingress reports.
    record = mocks.one("aws:route53/record:Record", "-dns-")
    assert record.inputs["records"] == [LOAD_BALANCER_HOSTNAME]
    assert outputs["vpcId"] == f"mlflow-{stack}-network-vpc-id"


def test_region_must_match_the_aws_provider():
    config = stack_file_config("dev")
    config["aws:region"] = "eu-west-1"
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", config)
    assert "mlflow-platform:cluster.region" in str(caught.value) and "eu-west-1" in str(caught.value)


def test_a_misspelled_namespace_fails_the_program_too():
    """The program passes the other namespaces' keys to the same loader as `stackconfig check`."""
    config = stack_file_config("dev")
    config["mlflow-platfrom:database"] = config.pop("mlflow-platform:database")
    with pytest.raises(pulumi.RunError) as caught:
        run_program("dev", config)
    assert "did you mean 'mlflow-platform:database'?" in str(caught.value)

"""Stack config: both stack files load; bad input names the key, the value and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from rendering.units import GIB
from stackconfig import ConfigError, load_stack_config, load_stack_file
from tests.pulumi_harness import reused_values

ROOT = Path(__file__).resolve().parents[2]


def stack_values(stack: str) -> dict[str, Any]:
    return load_stack_file(ROOT / f"Pulumi.{stack}.yaml")


def test_dev_and_prod_differ_only_through_their_files():
    dev = load_stack_config(stack_values("dev"))
    prod = load_stack_config(stack_values("prod"))
    assert (dev.database.multi_az, prod.database.multi_az) == (False, True)
    assert (dev.database.deletion_protection, prod.database.deletion_protection) == (False, True)
    assert (dev.database.final_snapshot, prod.database.final_snapshot) == (False, True)
    assert prod.database.backup_retention_days >= 7 > dev.database.backup_retention_days
    assert (dev.artifacts.access_logging, prod.artifacts.access_logging) == (False, True)
    # Disaster recovery: prod replicates its artifacts to another region, dev does not.
    assert (dev.artifacts.replication_region, prod.artifacts.replication_region) == ("", "us-west-2")
    assert prod.database.memory_bytes == 16 * GIB  # db.r6g.large
    # Both create their cluster: dev small and cheap, prod production-sized.
    assert (dev.cluster.mode, prod.cluster.mode) == ("create", "create")
    assert (dev.network.nat_gateways, prod.network.nat_gateways) == ("single", "perAz")
    assert (dev.network.availability_zone_count, prod.network.availability_zone_count) == (2, 3)
    assert (dev.cluster.node_group.capacity_type, prod.cluster.node_group.capacity_type) == ("SPOT", "ON_DEMAND")
    assert prod.cluster.node_group.min_size >= 3
    assert prod.cluster.public_access_cidrs == ()  # private endpoint only
    assert (dev.cluster.deletion_protection, prod.cluster.deletion_protection) == (False, True)
    assert (dev.server.vpc_cidr, prod.server.vpc_cidr) == (dev.network.cidr_block, prod.network.cidr_block)


def test_defaults_are_the_secure_choice():
    dev = stack_values("dev")
    minimal = {
        "cluster": {key: dev["cluster"][key] for key in ("mode", "name", "adminRoleArns", "hostedZoneId", "acmeEmail")},
        "server": {key: dev["server"][key] for key in ("image", "host", "ingress")},
    }
    # A private-only endpoint (the default) needs the deployer's network named (issue 17).
    minimal["cluster"]["deployerSecurityGroupIds"] = ["sg-0123456789abcdef0"]
    config = load_stack_config(minimal)
    cluster, network = config.cluster, config.network
    assert cluster.public_access_cidrs == () and cluster.deletion_protection
    assert cluster.node_group.capacity_type == "ON_DEMAND" and cluster.node_group.min_size == 3
    assert network.nat_gateways == "perAz" and network.availability_zone_count == 3
    assert network.cidr_block == config.server.vpc_cidr
    assert config.database.multi_az and config.database.deletion_protection and config.database.final_snapshot
    assert config.database.backup_retention_days >= 7
    assert config.artifacts.encryption == "kms" and config.artifacts.access_logging
    assert config.artifacts.access_mode == "direct"
    assert not config.artifacts.force_destroy
    assert config.artifacts.replication_region == ""  # a replica costs a second copy: opt in


def test_memory_override_allows_an_unlisted_class():
    values = stack_values("dev")
    values["database"] = {**values["database"], "instanceClass": "db.x2g.large", "memoryGib": 32}
    assert load_stack_config(values).database.memory_bytes == 32 * GIB


def _set(values: dict[str, Any], path: str, value: Any) -> None:
    section, _, field = path.partition(".")
    if not field:
        if value is _DELETE:
            values.pop(section, None)
        else:
            values[section] = value
        return
    values.setdefault(section, {})
    if value is _DELETE:
        values[section].pop(field, None)
    else:
        values[section][field] = value


_DELETE = object()

BAD_INPUTS: list[tuple[str, Any, str, str]] = [
    # (path, value, key named in the error, words from "expected")
    ("database.instanceClass", "db.x9.huge", "mlflow-platform:database.instanceClass", "memoryGib"),
    ("database.instanceClass", 42, "mlflow-platform:database.instanceClass", "RDS class"),
    ("database.engineVersion", "16.4", "mlflow-platform:database.engineVersion", "major version"),
    ("database.engineVersion", "12", "mlflow-platform:database.engineVersion", "from 14 to 19"),
    ("database.allocatedStorageGib", 10, "mlflow-platform:database.allocatedStorageGib", "from 20"),
    ("database.maxAllocatedStorageGib", 20, "mlflow-platform:database.maxAllocatedStorageGib", "more than"),
    ("database.multiAz", "yes", "mlflow-platform:database.multiAz", "true or false"),
    ("database.backupRetentionDays", 0, "mlflow-platform:database.backupRetentionDays", "from 1 to 35"),
    ("database.backupRetentionDays", 40, "mlflow-platform:database.backupRetentionDays", "from 1 to 35"),
    ("database.backupRetentionDays", True, "mlflow-platform:database.backupRetentionDays", "integer"),
    (
        "database.performanceInsightsRetentionDays",
        30,
        "mlflow-platform:database.performanceInsightsRetentionDays",
        "multiple of 31",
    ),
    ("database.monitoringIntervalSeconds", 20, "mlflow-platform:database.monitoringIntervalSeconds", "one of"),
    ("database.masterUsername", "postgres", "mlflow-platform:database.masterUsername", "reserved"),
    ("database.maxConnections", 5, "mlflow-platform:database.maxConnections", "from 20 to 5000"),
    ("database.instanceClas", "db.t4g.medium", "mlflow-platform:database.instanceClas", "no such key"),
    ("artifacts.accessMode", "hybrid", "mlflow-platform:artifacts.accessMode", "'direct', 'proxied'"),
    ("artifacts.encryption", "none", "mlflow-platform:artifacts.encryption", "'kms', 's3'"),
    ("artifacts.prefix", "/mlflow/", "mlflow-platform:artifacts.prefix", "without leading or trailing"),
    ("artifacts.replicationRegion", "us-west", "mlflow-platform:artifacts.replicationRegion", "region like us-west-2"),
    ("artifacts.replicationRegion", "us-east-1", "mlflow-platform:artifacts.replicationRegion", "another region"),
    (
        "training.serviceAccounts",
        [{"namespace": "ML_Training", "name": "job"}],
        "mlflow-platform:training.serviceAccounts[0].namespace",
        "Kubernetes name",
    ),
    (
        "training.extraPrincipals",
        [{"type": "AWS", "identifier": "*"}],
        "mlflow-platform:training.extraPrincipals[0]",
        "never '*'",
    ),
    ("server.namespace", "MLflow", "mlflow-platform:server.namespace", "namespace"),
    ("tags", {"team": 7}, "mlflow-platform:tags", "string values"),
    ("databse", {"instanceClass": "db.t4g.small"}, "mlflow-platform:databse", "no such key"),
    ("network", "vpc-0a1b2c3d4e5f60718", "mlflow-platform:network", "an object"),
    ("server.image", "mlflow:latest", "mlflow-platform:server.image", "by digest"),
    ("server.image", _DELETE, "mlflow-platform:server.image", "by digest"),
    ("server.host", "MLflow_Host", "mlflow-platform:server.host", "DNS name"),
    ("server.ingress", {"className": "nginx"}, "mlflow-platform:server.ingress.certManagerIssuer", "ClusterIssuer"),
    ("server.ingress", {"className": "traefik"}, "mlflow-platform:server.ingress.className", "'nginx', 'alb'"),
    ("server.maxReplicas", 0, "mlflow-platform:server.maxReplicas", "from 1 to 50"),
    ("server.cpu", "two", "mlflow-platform:server.cpu", "CPU quantity"),
    ("server.inFlightPerWorker", 65, "mlflow-platform:server.inFlightPerWorker", "from 1 to 64"),
    # cluster and network, mode create (the stack files' mode)
    ("cluster.mode", "hybrid", "mlflow-platform:cluster.mode", "'create', 'reuse'"),
    ("cluster.mode", _DELETE, "mlflow-platform:cluster.mode", "'create', 'reuse'"),
    ("cluster", _DELETE, "mlflow-platform:cluster", "an object"),
    ("cluster.name", "mlflow dev", "mlflow-platform:cluster.name", "EKS cluster name"),
    ("cluster.publicAccessCidrs", ["0.0.0.0/0"], "mlflow-platform:cluster.publicAccessCidrs", "refused: ['0.0.0.0/0']"),
    (
        "cluster.publicAccessCidrs",
        ["203.0.113.0/24", "0.0.0.0/1", "128.0.0.0/1"],
        "mlflow-platform:cluster.publicAccessCidrs",
        "refused: ['0.0.0.0/1', '128.0.0.0/1']",
    ),
    ("cluster.publicAccessCidrs", ["203.0.113.7/24"], "mlflow-platform:cluster.publicAccessCidrs", "refused"),
    ("cluster.publicAccessCidrs", "203.0.113.0/24", "mlflow-platform:cluster.publicAccessCidrs", "a list"),
    ("cluster.adminRoleArns", _DELETE, "mlflow-platform:cluster.adminRoleArns", "access entries"),
    ("cluster.adminRoleArns", ["*"], "mlflow-platform:cluster.adminRoleArns", "IAM role or user ARNs"),
    ("cluster.kubernetesVersion", 1.36, "mlflow-platform:cluster.kubernetesVersion", "as a string"),
    ("cluster.kubernetesVersion", "1.2", "mlflow-platform:cluster.kubernetesVersion", "minor version"),
    ("cluster.logRetentionDays", 10, "mlflow-platform:cluster.logRetentionDays", "CloudWatch Logs retention"),
    ("cluster.hostedZoneId", _DELETE, "mlflow-platform:cluster.hostedZoneId", "hosted zone"),
    ("cluster.acmeEmail", _DELETE, "mlflow-platform:cluster.acmeEmail", "Let's Encrypt"),
    ("cluster.addonVersions", {"istio": "v1.0.0-eksbuild.1"}, "mlflow-platform:cluster.addonVersions", "vpc-cni"),
    ("cluster.endpoint", "https://X.gr7.us-east-1.eks.amazonaws.com", "mlflow-platform:cluster.endpoint", "'create'"),
    ("cluster.nodeGroup", {"capacityType": "spot"}, "mlflow-platform:cluster.nodeGroup.capacityType", "'SPOT'"),
    (
        "cluster.nodeGroup",
        {"minSize": 2, "desiredSize": 5, "maxSize": 3},
        "mlflow-platform:cluster.nodeGroup.desiredSize",
        "maxSize (3)",
    ),
    ("cluster.nodeGroup", {"instanceTypes": []}, "mlflow-platform:cluster.nodeGroup.instanceTypes", "at least 1"),
    ("cluster.nodeGroup", {"diskSize": 50}, "mlflow-platform:cluster.nodeGroup.diskSize", "no such key"),
    ("network.vpcId", "vpc-0a1b2c3d4e5f60718", "mlflow-platform:network.vpcId", "'create'"),
    ("network.natGateways", "none", "mlflow-platform:network.natGateways", "'single', 'perAz'"),
    ("network.cidrBlock", "8.8.0.0/16", "mlflow-platform:network.cidrBlock", "private IPv4"),
    ("network.cidrBlock", "10.0.0.0/8", "mlflow-platform:network.cidrBlock", "/16 to /20"),
    ("network.availabilityZoneCount", 4, "mlflow-platform:network.availabilityZoneCount", "from 2 to 3"),
    ("network.availabilityZones", ["us-east-1a"], "mlflow-platform:network.availabilityZones", "at least 2"),
    (
        "network.availabilityZones",
        ["us-east-1a", "us-east-1b", "us-east-1c"],
        "mlflow-platform:network.availabilityZones",
        "exactly",
    ),
    ("server.vpcCidr", "10.99.0.0/16", "mlflow-platform:server.vpcCidr", "network.cidrBlock"),
    (
        "server.ingress",
        {
            "className": "nginx",
            "certManagerIssuer": "letsencrypt",
            "acmCertificateArn": "arn:aws:acm:us-east-1:111111111111:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
        },
        "mlflow-platform:server.ingress.acmCertificateArn",
        "'create'",
    ),
]

REUSE_BAD_INPUTS: list[tuple[str, Any, str, str]] = [
    ("network.vpcId", "vpc-xyz", "mlflow-platform:network.vpcId", "VPC id"),
    ("network.vpcId", _DELETE, "mlflow-platform:network.vpcId", "VPC id"),
    (
        "network.privateSubnetIds",
        ["subnet-0a1b2c3d4e5f60001"],
        "mlflow-platform:network.privateSubnetIds",
        "at least 2",
    ),
    (
        "network.privateSubnetIds",
        ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60001"],
        "mlflow-platform:network.privateSubnetIds",
        "without duplicates",
    ),
    (
        "network.databaseClientSecurityGroupIds",
        ["0.0.0.0/0"],
        "mlflow-platform:network.databaseClientSecurityGroupIds",
        "security group ids",
    ),
    ("network.cidrBlock", "10.0.0.0/16", "mlflow-platform:network.cidrBlock", "'reuse'"),
    (
        "cluster.oidcProviderArn",
        "https://oidc.eks.us-east-1.amazonaws.com/id/X",
        "mlflow-platform:cluster.oidcProviderArn",
        "oidc-provider",
    ),
    ("cluster.endpoint", "https://example.com", "mlflow-platform:cluster.endpoint", "eks.amazonaws.com"),
    ("cluster.publicAccessCidrs", ["203.0.113.0/24"], "mlflow-platform:cluster.publicAccessCidrs", "'reuse'"),
    ("server.ingress", {"className": "alb"}, "mlflow-platform:server.ingress.acmCertificateArn", "ACM certificate"),
]


def _check_refused(values: dict[str, Any], path: str, value: Any, key: str, expected: str) -> None:
    _set(values, path, value)
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    messages = [str(problem) for problem in caught.value.problems]
    matching = [m for m in messages if m.startswith(f"{key}: ")]
    assert matching, f"no problem names {key}: {messages}"
    assert expected in matching[0], matching[0]
    if value is not _DELETE and not isinstance(value, dict | list):
        assert repr(value) in matching[0]


@pytest.mark.parametrize(("path", "value", "key", "expected"), BAD_INPUTS, ids=[f"{b[0]}={b[1]!r}" for b in BAD_INPUTS])
def test_bad_input_names_key_value_and_expectation(path: str, value: Any, key: str, expected: str):
    _check_refused(copy.deepcopy(stack_values("dev")), path, value, key, expected)


@pytest.mark.parametrize(
    ("path", "value", "key", "expected"), REUSE_BAD_INPUTS, ids=[f"{b[0]}={b[1]!r}" for b in REUSE_BAD_INPUTS]
)
def test_bad_reuse_input_names_key_value_and_expectation(path: str, value: Any, key: str, expected: str):
    values = reused_values("prod", stack_values("prod"))
    values["server"]["ingress"] = {"className": "nginx", "certManagerIssuer": "letsencrypt"}
    _check_refused(values, path, value, key, expected)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_load_in_reuse_mode(stack: str):
    config = load_stack_config(reused_values(stack, stack_values(stack)))
    assert config.cluster.mode == "reuse" and config.network.vpc_id.startswith("vpc-")
    assert config.cluster.oidc_issuer_host_path.startswith("oidc.eks.us-east-1.amazonaws.com/id/")


def test_reuse_names_every_missing_fact_of_the_existing_cluster():
    values = copy.deepcopy(stack_values("prod"))
    values["cluster"] = {"mode": "reuse", "name": "mlflow-prod"}
    values.pop("network")
    values["server"]["ingress"] = {"className": "alb"}
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    assert {problem.key for problem in caught.value.problems} == {
        f"mlflow-platform:{key}"
        for key in (
            "cluster.endpoint",
            "cluster.certificateAuthorityData",
            "cluster.oidcProviderArn",
            "network.vpcId",
            "network.privateSubnetIds",
            "network.databaseClientSecurityGroupIds",
            "network.loadBalancerSubnets",
            "server.ingress.acmCertificateArn",
            # prod wants the Prometheus Operator: an existing one's ServiceMonitor selector.
            "monitoring.serviceMonitorLabels",
        )
    }


def test_settings_of_the_other_mode_are_refused_not_ignored():
    values = copy.deepcopy(stack_values("dev"))
    values["cluster"]["oidcProviderArn"] = (
        "arn:aws:iam::111111111111:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/X"
    )
    values["network"]["databaseClientSecurityGroupIds"] = ["sg-0a1b2c3d4e5f60099"]
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    assert {problem.key for problem in caught.value.problems} == {
        "mlflow-platform:cluster.oidcProviderArn",
        "mlflow-platform:network.databaseClientSecurityGroupIds",
    }
    assert all("'create'" in str(problem) for problem in caught.value.problems)


def test_replicas_above_max_replicas_are_refused():
    values = copy.deepcopy(stack_values("prod"))
    values["server"]["replicas"] = 8
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    assert [str(p) for p in caught.value.problems] == [
        "mlflow-platform:server.maxReplicas: got 5; expected at least replicas (8)"
    ]


def test_pools_that_do_not_fit_the_database_are_refused_with_the_fix():
    values = copy.deepcopy(stack_values("prod"))  # db.r6g.large: max_connections 400
    values["server"]["maxReplicas"] = 20
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    # 20 pods of 2 CPUs do not fit on 6 nodes either (rendering/node_capacity.py).
    problem, nodes = caught.value.problems
    assert nodes.key == "mlflow-platform:cluster.nodeGroup.maxSize"
    assert problem.key == "mlflow-platform:server.maxReplicas"
    # 2 databases × (2 workers × 8 in flight × 1 connection with the set-based store + 2 reserve).
    assert "20 replicas × 36 database connections each + 10 reserved = 730 > max_connections 400" in str(problem)
    assert "lower in_flight_per_worker to 3" in str(problem)


def test_all_problems_are_reported_at_once():
    values = copy.deepcopy(stack_values("prod"))
    values["database"]["multiAz"] = "yes"
    values["artifacts"]["accessMode"] = "hybrid"
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"mlflow-platform:database.multiAz", "mlflow-platform:artifacts.accessMode"}
    assert "2 problem(s)" in str(caught.value)


# -- namespaces, did-you-mean and the region rule: what `check` and the program both run ------


def _write_stack(tmp_path: Path, edit: Any) -> Path:
    import yaml

    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    edit(document["config"])
    path = tmp_path / "Pulumi.edited.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _rename(old: str, new: str) -> Any:
    def edit(config: dict[str, Any]) -> None:
        config[new] = config.pop(old)

    return edit


def test_check_refuses_a_misspelled_namespace_with_a_suggestion(tmp_path: Path) -> None:
    """Issue 21 item 4: ``mlflow-platfrom:network`` used to be dropped silently (defaults used)."""
    from stackconfig.__main__ import check

    path = _write_stack(tmp_path, _rename("mlflow-platform:database", "mlflow-platfrom:database"))
    assert check(path) == [
        "mlflow-platfrom:database: got namespace 'mlflow-platfrom'; expected a key in the 'mlflow-platform' "
        "namespace or a provider's (aws, kubernetes, random, pulumi) (did you mean 'mlflow-platform:database'?)"
    ]
    bare = _write_stack(tmp_path, _rename("mlflow-platform:database", "database"))
    assert check(bare) == ["database: got no namespace; expected <namespace>:<name>, e.g. 'mlflow-platform:database'"]


def test_provider_namespaces_are_the_programs_providers() -> None:
    """Every ``pulumi-<provider>`` package the program installs has its namespace accepted."""
    from stackconfig.namespaces import PROVIDER_NAMESPACES

    lines = (ROOT / "requirements" / "project.in").read_text().splitlines()
    providers = {ln.split("#")[0].strip().removeprefix("pulumi-") for ln in lines if ln.startswith("pulumi-")}
    providers.discard("policy")  # the policy SDK (CrossGuard), not a provider: it reads no stack config
    assert providers | {"pulumi"} == set(PROVIDER_NAMESPACES)


@pytest.mark.parametrize(
    ("section", "typo", "suggestion"),
    [
        ("database", "multiAZ", "multiAz"),
        ("database", "instanceClas", "instanceClass"),
        ("server", "replica", "replicas"),
    ],
)
def test_unknown_keys_get_a_did_you_mean(section: str, typo: str, suggestion: str) -> None:
    values = stack_values("dev")
    values[section] = {**values.get(section, {}), typo: values.get(section, {}).get(suggestion, 1)}
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    [problem] = caught.value.problems
    assert problem.key == f"mlflow-platform:{section}.{typo}"
    assert problem.expected.startswith("no such key (known keys: ")
    assert problem.expected.endswith(f") (did you mean {suggestion!r}?)")


def test_a_misspelled_section_gets_a_did_you_mean() -> None:
    values = stack_values("dev")
    values["databse"] = values.pop("database")
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    [problem] = caught.value.problems
    assert problem.key == "mlflow-platform:databse"
    assert problem.expected.startswith("no such key (known keys: cluster, network,")
    assert problem.expected.endswith(") (did you mean 'database'?)")
    assert "garbageCollection" in problem.expected


def test_check_runs_the_region_rule(tmp_path: Path) -> None:
    """Issue 21 item 5: the rule lived only in infra/stack.py, so `check` said ok."""
    from stackconfig.__main__ import check

    def edit(config: dict[str, Any]) -> None:
        config["aws:region"] = "eu-west-1"

    assert check(_write_stack(tmp_path, edit)) == [
        "mlflow-platform:cluster.region: got 'us-east-1'; expected the stack's aws:region ('eu-west-1'): "
        "set both to the same region"
    ]


def test_check_works_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stack name means the project's file; the script form needs no project on sys.path."""
    import subprocess
    import sys

    from stackconfig.__main__ import main

    monkeypatch.chdir(tmp_path)
    assert main(["check", "dev"]) == 0
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "check_stack_config.py"), "prod"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok: {ROOT / 'Pulumi.prod.yaml'} is a valid mlflow-platform stack configuration"

"""The tracking server on EKS, asserted on the Kubernetes objects the program would apply."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

import pytest

from rendering.versions import mlflow_version
from tests.k8s_manifests import checkov_failures, manifests, schema_errors
from tests.pulumi_harness import RecordingMocks, captured_program

STACKS = ["dev", "prod"]


def _run(stack: str) -> RecordingMocks:
    """The stack file's program, run once per session and shared with the other cloud tests."""
    return captured_program(stack)[0]


def objects(stack: str, kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests(_run(stack)) if m["kind"] == kind]


def one(stack: str, kind: str, name: str | None = None) -> dict[str, Any]:
    found = [m for m in objects(stack, kind) if name is None or m["metadata"]["name"] == name]
    assert len(found) == 1, [m["metadata"]["name"] for m in found]
    return found[0]


def pod(stack: str) -> dict[str, Any]:
    return one(stack, "Deployment")["spec"]["template"]["spec"]


def all_containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("stack", STACKS)
def test_every_object_is_valid_against_the_kubernetes_schema(stack: str):
    found = manifests(_run(stack))
    assert len(found) >= 15
    errors = [error for manifest in found for error in schema_errors(manifest)]
    assert errors == []


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_finds_nothing(stack: str, tmp_path: Path):
    passed, failed = checkov_failures(manifests(_run(stack)), tmp_path)
    assert failed == []
    assert passed > 100


@pytest.mark.parametrize("stack", STACKS)
def test_no_kubernetes_resource_uses_the_default_provider(stack: str):
    kube = [r for r in _run(stack).resources if r.typ.startswith("kubernetes:")]
    assert kube
    for resource in kube:
        assert resource.provider and f"pulumi:providers:kubernetes::mlflow-{stack}-kubernetes::" in resource.provider


@pytest.mark.parametrize("stack", STACKS)
def test_pgbouncer_is_a_native_sidecar_with_verified_tls(stack: str):
    spec = pod(stack)
    init = {c["name"]: c for c in spec["initContainers"]}
    assert list(init) == ["stage-secrets", "pgbouncer"]  # secrets staged first, then the sidecar
    assert init["pgbouncer"]["restartPolicy"] == "Always"
    assert "restartPolicy" not in init["stage-secrets"]
    assert init["pgbouncer"]["image"].split(":")[-1] >= "1.24.1"
    ini = one(stack, "ConfigMap", "mlflow-pgbouncer")["data"]["pgbouncer.ini"]
    settings = dict(line.split(" = ", 1) for line in ini.splitlines() if " = " in line and not line.startswith(";"))
    assert settings["pool_mode"] == "transaction"
    assert settings["server_tls_sslmode"] == "verify-full"
    assert settings["server_tls_ca_file"] == "/run/mlflow/rds-ca.pem"
    assert settings["listen_addr"] == "0.0.0.0"  # noqa: S104 - the kubelet probes the pod IP (test_pod_probes.py)
    assert settings["auth_type"] == "scram-sha-256"


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_is_locked_down(stack: str):
    for spec in (pod(stack), one(stack, "Job")["spec"]["template"]["spec"]):
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in all_containers(spec):
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True and security["runAsUser"] >= 10000, container["name"]
            assert security["allowPrivilegeEscalation"] is False, container["name"]
            assert security["readOnlyRootFilesystem"] is True, container["name"]
            assert security["capabilities"] == {"drop": ["ALL"]}, container["name"]
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}, container["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_probes_use_health_and_are_not_subject_to_admission(stack: str):
    containers = {c["name"]: c for c in pod(stack)["containers"]}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert containers["mlflow"][probe]["httpGet"] == {"path": "/health", "port": "mlflow"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert containers["admission-proxy"][probe]["httpGet"]["path"] == "/health"
    conf = one(stack, "ConfigMap", "mlflow-admission-proxy")["data"]["nginx.conf"]
    health = conf.split("location = /health {")[1].split("}")[0]
    root = conf.split("location / {")[1].split("}")[0]
    assert "limit_conn" not in health
    assert "limit_conn mlflow_in_flight" in root and "limit_conn_status 503;" in root


@pytest.mark.parametrize("stack", STACKS)
def test_read_only_root_with_a_sized_tmp(stack: str):
    volumes = {v["name"]: v for v in pod(stack)["volumes"]}
    expected = {"dev": "4Gi", "prod": "20Gi"}[stack]
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": expected}
    mlflow = next(c for c in pod(stack)["containers"] if c["name"] == "mlflow")
    assert {"name": "tmp", "mountPath": "/tmp"} in mlflow["volumeMounts"]


@pytest.mark.parametrize("stack", STACKS)
def test_allowed_hosts_cover_ingress_and_service_names(stack: str):
    argv = next(c for c in pod(stack)["containers"] if c["name"] == "mlflow")["command"]
    hosts = set(argv[argv.index("--allowed-hosts") + 1].split(","))
    host = {"dev": "mlflow.dev.example.com", "prod": "mlflow.example.com"}[stack]
    for name in (host, "mlflow", "mlflow.mlflow", "mlflow.mlflow.svc", "mlflow.mlflow.svc.cluster.local"):
        assert {name, f"{name}:80", f"{name}:443"} <= hosts
    assert not [h for h in hosts if "*" in h]


@pytest.mark.parametrize("stack", STACKS)
def test_secrets_live_only_in_secrets(stack: str):
    server_secret = one(stack, "Secret", "mlflow-server")["stringData"]
    assert set(server_secret) == {
        "auth.ini",
        "server.pgpass",
        "userlist.txt",
        "MLFLOW_FLASK_SERVER_SECRET_KEY",
        "MLFLOW_AUTH_ADMIN_PASSWORD",
        "PGBOUNCER_EXPORTER_CONNECTION_STRING",
    }
    job_secret = one(stack, "Secret", one(stack, "Job")["metadata"]["name"])["stringData"]
    # The credentials themselves: admin, Flask key, app role (server.pgpass) and master (migrator.pgpass).
    credentials = {
        server_secret["MLFLOW_FLASK_SERVER_SECRET_KEY"],
        server_secret["MLFLOW_AUTH_ADMIN_PASSWORD"],
        *(line.rsplit(":", 1)[1] for line in server_secret["server.pgpass"].splitlines()),
        *(line.rsplit(":", 1)[1] for line in job_secret["migrator.pgpass"].splitlines()),
        # The PgBouncer stats user's password, inside the exporter's DSN.
        server_secret["PGBOUNCER_EXPORTER_CONNECTION_STRING"].split("@")[0].rsplit(":", 1)[1],
    }
    assert len(credentials) == 5 and all(len(c) >= 32 for c in credentials)
    everything_else = repr([m for m in manifests(_run(stack)) if m["kind"] != "Secret"])
    for credential in credentials:
        assert credential not in everything_else
    assert "SCRAM-SHA-256$" not in everything_else  # the verifier stays in Secrets too
    mlflow = next(c for c in pod(stack)["containers"] if c["name"] == "mlflow")
    env = {e["name"]: e for e in mlflow["env"]}
    for key in ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD"):
        assert env[key] == {"name": key, "valueFrom": {"secretKeyRef": {"name": "mlflow-server", "key": key}}}
    assert not [e for e in env.values() if "value" in e and any(c in e["value"] for c in credentials)]


@pytest.mark.parametrize("stack", STACKS)
def test_auth_store_is_postgres_not_sqlite(stack: str):
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(one(stack, "Secret", "mlflow-server")["stringData"]["auth.ini"])
    assert ini["mlflow"]["database_uri"].startswith("postgresql+psycopg2://mlflow@127.0.0.1:6432/mlflow_auth")
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert int(ini["mlflow"]["auth_cache_ttl_seconds"]) > 0


@pytest.mark.parametrize("stack", STACKS)
def test_migration_job_follows_the_mlflow_version_and_goes_straight_to_rds(stack: str):
    job = one(stack, "Job")
    assert job["metadata"]["name"] == "mlflow-db-migrate-" + mlflow_version().replace(".", "-")
    import json

    plan = json.loads(one(stack, "Secret", job["metadata"]["name"])["stringData"]["bootstrap.json"])
    assert ".rds.amazonaws.com" in plan["migrator_dsn"] and "sslmode=verify-full" in plan["migrator_dsn"]
    commands = [" ".join(c["argv"]) for c in plan["migrations"]]
    assert commands[0].startswith("mlflow db upgrade postgresql+psycopg2://mlflow_admin@")
    assert "-m mlflow.server.auth db upgrade --url" in commands[1]
    assert all(":5432/" in c and ":6432/" not in c for c in commands)  # not through PgBouncer


def test_prod_has_pdb_and_hpa_and_dev_has_neither():
    assert one("prod", "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    hpa = one("prod", "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 5)
    assert objects("dev", "PodDisruptionBudget") == [] and objects("dev", "HorizontalPodAutoscaler") == []


@pytest.mark.parametrize("stack", STACKS)
def test_ingress_is_tls_with_redirect_and_large_artifacts(stack: str):
    ingress = one(stack, "Ingress")
    host = ingress["spec"]["rules"][0]["host"]
    assert ingress["spec"]["tls"][0]["hosts"] == [host]
    annotations = ingress["metadata"]["annotations"]
    if stack == "dev":  # nginx + cert-manager
        assert ingress["spec"]["ingressClassName"] == "nginx"
        assert annotations["cert-manager.io/cluster-issuer"] == "letsencrypt"
        assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
        assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
        assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"].endswith("m")
        assert ingress["spec"]["tls"][0]["secretName"] == "mlflow-tls"
    else:  # ALB + ACM
        assert ingress["spec"]["ingressClassName"] == "alb"
        assert annotations["alb.ingress.kubernetes.io/ssl-redirect"] == "443"
        assert annotations["alb.ingress.kubernetes.io/certificate-arn"].startswith("arn:aws:acm:")
        assert annotations["alb.ingress.kubernetes.io/scheme"] == "internal"


@pytest.mark.parametrize("stack", STACKS)
def test_network_policy_limits_ingress_and_egress(stack: str):
    policy = one(stack, "NetworkPolicy", "mlflow-server")["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    rule, scraper = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    sources = [
        s.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name") or s["ipBlock"]["cidr"]
        for s in rule["from"]
    ]
    # prod's ALB: only the dedicated load-balancer subnets (issue 17), never the whole VPC.
    edge = {"dev": ["ingress-nginx"], "prod": ["10.20.240.0/22", "10.20.244.0/22", "10.20.248.0/22"]}[stack]
    assert sources == [*edge, "ml-training"]
    # The scraper: only Prometheus's pods (labels from config) in the monitoring namespace, only
    # to the metrics ports (the proxy, whose /metrics needs a login, and the PgBouncer exporter).
    assert scraper == {
        "from": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
            }
        ],
        "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "TCP", "port": 9127}],
    }
    egress_ports = sorted(p["port"] for e in policy["egress"] for p in e["ports"])
    assert egress_ports == [53, 53, 443, 5432]
    for egress in policy["egress"]:
        for peer in egress["to"]:
            if "ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0":
                assert peer["ipBlock"]["except"] == ["169.254.169.254/32"]


@pytest.mark.parametrize("stack", STACKS)
def test_training_namespace_has_an_irsa_service_account(stack: str):
    account = one(stack, "ServiceAccount", "training-job")
    assert account["metadata"]["namespace"] == "ml-training"
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    assert "training-role" in account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    server = one(stack, "ServiceAccount", "mlflow-server")
    assert "server-role" in server["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]


def test_documented_training_job_is_a_valid_job_using_the_stacks_objects():
    import yaml

    job = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "training-job.yaml").read_text())
    assert schema_errors(job) == []
    spec = job["spec"]["template"]["spec"]
    account = one("prod", "ServiceAccount", spec["serviceAccountName"])
    assert account["metadata"]["namespace"] == job["metadata"]["namespace"]
    sources = spec["containers"][0]["envFrom"]
    client = one("prod", "ConfigMap", sources[0]["configMapRef"]["name"])
    assert client["metadata"]["namespace"] == job["metadata"]["namespace"]
    assert client["data"]["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"


@pytest.mark.parametrize("stack", STACKS)
def test_training_namespaces_get_the_client_retry_budget(stack: str):
    """The ``mlflow-client`` ConfigMap carries ``rendering.client.TRAINING_CLIENT_RETRY``, the
    budget ``python -m mlflowbench.jobs`` measures training jobs with."""
    from rendering.client import TRAINING_CLIENT_RETRY

    maps = [m for m in objects(stack, "ConfigMap") if m["metadata"]["name"] == "mlflow-client"]
    assert maps, "no training namespace got the client ConfigMap"
    for config_map in maps:
        data = config_map["data"]
        assert {k: data[k] for k in TRAINING_CLIENT_RETRY.env()} == {
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "600",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "7",
            "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "10",
        }

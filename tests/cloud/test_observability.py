"""Metrics scraping and the gc CronJob on EKS, asserted on what the program would apply (the
schema and checkov checks of tests/cloud/test_tracking_server.py cover these objects too)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rendering.images import PGBOUNCER_EXPORTER_IMAGE
from tests.k8s_manifests import manifests
from tests.pulumi_harness import RecordingMocks, captured_program

STACKS = ["dev", "prod"]


def _mocks(stack: str) -> RecordingMocks:
    return captured_program(stack)[0]


def _one(stack: str, kind: str, name: str) -> dict[str, Any]:
    found = [m for m in manifests(_mocks(stack)) if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, [m["metadata"]["name"] for m in found]
    return found[0]


def _pod(stack: str) -> dict[str, Any]:
    return _one(stack, "Deployment", "mlflow")["spec"]["template"]["spec"]


@pytest.mark.parametrize("stack", STACKS)
def test_mlflow_exposes_prometheus_metrics_from_an_in_memory_emptydir(stack: str):
    pod = _pod(stack)
    mlflow = next(c for c in pod["containers"] if c["name"] == "mlflow")
    argv = mlflow["command"]
    directory = argv[argv.index("--expose-prometheus") + 1]
    env = {e["name"]: e for e in mlflow["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"]["value"] == directory
    assert {"name": "metrics", "mountPath": directory} in mlflow["volumeMounts"]
    assert {"name": "metrics", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}} in pod["volumes"]
    # Prometheus scrapes <pod IP>:8080 and sends that Host: only this pod's own IP is admitted.
    hosts = argv[argv.index("--allowed-hosts") + 1].split(",")
    assert "$(POD_IP):8080" in hosts
    assert env["POD_IP"] == {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


@pytest.mark.parametrize("stack", STACKS)
def test_pgbouncer_exporter_sidecar_reads_pools_as_a_stats_user(stack: str):
    pod = _pod(stack)
    exporter = next(c for c in pod["containers"] if c["name"] == "pgbouncer-exporter")
    assert exporter["image"] == PGBOUNCER_EXPORTER_IMAGE and ":v" in exporter["image"]
    assert exporter["ports"] == [{"name": "pgb-metrics", "containerPort": 9127, "protocol": "TCP"}]
    (dsn_env,) = exporter["env"]
    assert dsn_env["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-server",
        "key": "PGBOUNCER_EXPORTER_CONNECTION_STRING",
    }
    secret = _one(stack, "Secret", "mlflow-server")["stringData"]
    dsn = secret["PGBOUNCER_EXPORTER_CONNECTION_STRING"]
    assert dsn.startswith("postgresql://pgbouncer_stats:") and dsn.endswith("@127.0.0.1:6432/pgbouncer?sslmode=disable")
    ini = _one(stack, "ConfigMap", "mlflow-pgbouncer")["data"]["pgbouncer.ini"]
    lines = ini.splitlines()
    assert "stats_users = pgbouncer_stats" in lines
    assert "admin_users =" in lines  # SHOW only: nobody may PAUSE, KILL or RELOAD
    assert "ignore_startup_parameters = extra_float_digits" in ini
    assert '"pgbouncer_stats" "SCRAM-SHA-256$' in secret["userlist.txt"]


def test_prod_has_a_service_monitor_with_basic_auth_and_dev_has_none():
    prod = _mocks("prod").of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor")
    assert len(prod) == 1
    spec = prod[0].inputs["spec"]
    service = _one("prod", "Service", "mlflow-metrics")
    assert service["spec"]["clusterIP"] == "None"
    assert spec["selector"]["matchLabels"] == service["metadata"]["labels"]
    by_port = {e["port"]: e for e in spec["endpoints"]}
    assert set(by_port) == {p["name"] for p in service["spec"]["ports"]} == {"http-metrics", "pgbouncer-metrics"}
    assert by_port["http-metrics"]["basicAuth"] == {
        "username": {"name": "mlflow-metrics-scrape", "key": "username"},
        "password": {"name": "mlflow-metrics-scrape", "key": "password"},
    }
    scrape = _one("prod", "Secret", "mlflow-metrics-scrape")
    assert scrape["type"] == "kubernetes.io/basic-auth"
    assert scrape["stringData"]["username"] == "admin"
    assert (
        scrape["stringData"]["password"]
        == _one("prod", "Secret", "mlflow-server")["stringData"]["MLFLOW_AUTH_ADMIN_PASSWORD"]
    )
    assert _mocks("dev").of_type("kubernetes:monitoring.coreos.com/v1:ServiceMonitor") == []
    assert [m for m in manifests(_mocks("dev")) if m["metadata"]["name"] == "mlflow-metrics-scrape"] == []


def test_metrics_location_is_outside_admission_control():
    conf = _one("prod", "ConfigMap", "mlflow-admission-proxy")["data"]["nginx.conf"]
    block = conf.split("location = /metrics {")[1].split("}")[0]
    assert "proxy_pass http://mlflow;" in block and "limit_conn" not in block
    assert "proxy_set_header Host $http_host;" in block


@pytest.mark.parametrize("stack", STACKS)
def test_gc_cron_job_runs_the_rendered_command_alone_and_locked_down(stack: str):
    cron = _one(stack, "CronJob", "mlflow-gc")["spec"]
    older = {"dev": "7d", "prod": "30d"}[stack]
    assert cron["schedule"] == "17 3 * * *" and cron["timeZone"] == "Etc/UTC"
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mlflow-gc" and pod["automountServiceAccountToken"] is False
    (gc,) = pod["containers"]
    argv = gc["command"]
    assert argv[:2] == ["mlflow", "gc"]
    assert argv[argv.index("--older-than") + 1] == older
    backend = argv[argv.index("--backend-store-uri") + 1]
    # Straight to RDS with verified TLS, as the application role (never the master user).
    assert backend.startswith("postgresql+psycopg2://mlflow@") and "sslmode=verify-full" in backend
    assert argv[argv.index("--tracking-uri") + 1] == backend  # direct mode: no HTTP server involved
    env = {e["name"]: e.get("value") for e in gc["env"]}
    assert env["PGPASSFILE"] == "/run/mlflow/gc.pgpass"
    assert not [name for name in env if name.startswith("MLFLOW_TRACKING_")]
    assert gc["resources"]["limits"] == {"cpu": "200m", "memory": "512Mi"}
    security = gc["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"] == {"drop": ["ALL"]}
    secret = _one(stack, "Secret", "mlflow-gc")["stringData"]
    assert set(secret) == {"gc.pgpass"}
    host, port, database, user, _password = secret["gc.pgpass"].strip().split(":")
    assert (port, database, user) == ("5432", "mlflow", "mlflow") and host.endswith(".rds.amazonaws.com")


@pytest.mark.parametrize("stack", STACKS)
def test_gc_role_may_only_list_the_prefix_and_delete_objects(stack: str):
    mocks = _mocks(stack)
    role = mocks.one("aws:iam/role:Role", "-gc-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    conditions = statement["Condition"]["StringEquals"]
    assert [v for k, v in conditions.items() if k.endswith(":sub")] == ["system:serviceaccount:mlflow:mlflow-gc"]
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "-gc-artifacts").inputs["policy"])
    bucket = mocks.one("aws:s3/bucket:Bucket", "artifacts-bucket")
    bucket_arn = f"arn:aws:s3:::{bucket.name}-7f3a2b"
    assert policy["Statement"] == [
        {
            "Sid": "ArtifactObjects",
            "Effect": "Allow",
            "Action": ["s3:DeleteObject"],
            "Resource": f"{bucket_arn}/mlflow/*",
        },
        {
            "Sid": "ListArtifactPrefix",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": bucket_arn,
            "Condition": {"StringLike": {"s3:prefix": ["mlflow", "mlflow/*"]}},
        },
    ]
    account = _one(stack, "ServiceAccount", "mlflow-gc")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(f"{role.name}-7f3a2b")


@pytest.mark.parametrize("stack", STACKS)
def test_gc_network_policy_allows_only_dns_database_and_https(stack: str):
    policy = _one(stack, "NetworkPolicy", "mlflow-gc")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "garbage-collection"
    assert policy["ingress"] == []
    ports = sorted(p["port"] for rule in policy["egress"] for p in rule["ports"])
    assert ports == [53, 53, 443, 5432]
    https = next(rule for rule in policy["egress"] if rule["ports"] == [{"protocol": "TCP", "port": 443}])
    assert https["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]

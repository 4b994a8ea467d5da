"""A workload built only from ``components.pod_toolkit`` — what a new module would write — is a
valid Kubernetes Job and NetworkPolicy with the platform's security properties."""

from __future__ import annotations

from typing import Any

from components.pod_toolkit import (
    Resources,
    container,
    dns_egress,
    https_egress_without_instance_metadata,
    job_spec,
    namespace_peer,
    network_policy_spec,
    pod_spec,
    postgres_egress,
    run_volume,
    secrets_volume,
    stage_secrets_container,
    workload_labels,
)
from rendering.eks_pod import RDS_CA_IN_IMAGE, RUN_DIR, SECRETS_DIR, UID
from tests.k8s_manifests import schema_errors

IMAGE = "registry.example.com/mlflow@sha256:" + "0" * 64
LABELS = workload_labels("report")


def job() -> dict[str, Any]:
    resources = Resources("100m", "256Mi").spec()
    main = container(
        "report",
        IMAGE,
        resources,
        command=["python", "-m", "report"],
        volumeMounts=[{"name": "run", "mountPath": RUN_DIR, "readOnly": True}],
    )
    pod = pod_spec(
        "mlflow-report",
        init_containers=[stage_secrets_container(IMAGE, ["report.pgpass"], resources, rds_ca=True)],
        containers=[main],
        volumes=[secrets_volume("mlflow-report", ["report.pgpass"]), run_volume("16Mi")],
        restart_policy="Never",
    )
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "mlflow-report", "namespace": "mlflow", "labels": LABELS},
        "spec": job_spec(LABELS, pod, backoff_limit=1, active_deadline_seconds=600),
    }


def test_a_job_from_the_toolkit_is_valid_and_locked_down() -> None:
    manifest = job()
    assert schema_errors(manifest) == []
    pod = manifest["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["fsGroup"] == UID
    for c in [*pod["initContainers"], *pod["containers"]]:
        security = c["securityContext"]
        assert security["runAsUser"] == UID and security["readOnlyRootFilesystem"] is True, c["name"]
        assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
        assert c["resources"]["limits"] == {"cpu": "200m", "memory": "256Mi"}
    stage = pod["initContainers"][0]
    script = stage["command"][-1]
    assert f"install -m 0600 {SECRETS_DIR}/report.pgpass {RUN_DIR}/report.pgpass" in script
    assert f"install -m 0444 {RDS_CA_IN_IMAGE} {RUN_DIR}/rds-ca.pem" in script
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["secrets"]["secret"]["defaultMode"] == 0o440
    assert volumes["run"]["emptyDir"]["medium"] == "Memory"


def test_without_the_rds_ca_only_the_secrets_are_staged() -> None:
    stage = stage_secrets_container(IMAGE, ["a", "b"], Resources("50m", "64Mi").spec(), rds_ca=False)
    assert stage["command"] == [
        "sh",
        "-ec",
        f"install -m 0600 {SECRETS_DIR}/a {RUN_DIR}/a && install -m 0600 {SECRETS_DIR}/b {RUN_DIR}/b",
    ]


def test_a_network_policy_from_the_toolkit_denies_ingress_and_never_reaches_instance_metadata() -> None:
    spec = network_policy_spec(
        LABELS, egress=[dns_egress(), postgres_egress("10.0.0.0/16"), https_egress_without_instance_metadata()]
    )
    manifest = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "mlflow-report", "namespace": "mlflow"},
        "spec": spec,
    }
    assert schema_errors(manifest) == []
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    anywhere = [peer["ipBlock"] for rule in spec["egress"] for peer in rule["to"] if "ipBlock" in peer]
    assert {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]} in anywhere
    assert sorted(p["port"] for rule in spec["egress"] for p in rule["ports"]) == [53, 53, 443, 5432]
    assert namespace_peer("kube-system") == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    }

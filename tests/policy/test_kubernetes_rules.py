"""Kubernetes rules on hand-written objects shaped like the tracking-server component's inputs
(camelCase, numbers as floats): a Deployment with the MLflow container and a PgBouncer native
sidecar, the migration Job, and nginx and ALB Ingresses; plus mutations."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from pulumi_policy import ResourceValidationPolicy

from policy.rules import kubernetes
from tests.policy.harness import urn_for, violations

POLICIES_WITH_FAILING_CASES = {
    kubernetes.k8s_non_root.name,
    kubernetes.k8s_resource_limits.name,
    kubernetes.k8s_probes.name,
    kubernetes.k8s_ingress_tls.name,
}
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
INGRESS = kubernetes.INGRESS_TYPE
WORKLOAD_POLICIES = [kubernetes.k8s_non_root, kubernetes.k8s_resource_limits, kubernetes.k8s_probes]

HARDENED: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
MLFLOW: dict[str, Any] = {
    "name": "mlflow",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlflow-tracking-server@sha256:" + "a" * 64,
    "args": ["server", "--port", "5000", "--app-name", "basic-auth"],
    "ports": [{"name": "http", "containerPort": 5000.0}],
    "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
    "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10.0, "failureThreshold": 6.0},
    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 5.0},
    "securityContext": HARDENED,
    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
}
PGBOUNCER: dict[str, Any] = {
    "name": "pgbouncer",
    "image": "docker.io/bitnami/pgbouncer@sha256:" + "b" * 64,
    "restartPolicy": "Always",
    "ports": [{"name": "pgbouncer", "containerPort": 6432.0}],
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "250m", "memory": "128Mi"}},
    "readinessProbe": {"tcpSocket": {"port": "pgbouncer"}, "periodSeconds": 5.0},
    "securityContext": {**HARDENED, "runAsUser": 70.0},
}
POD_SPEC: dict[str, Any] = {
    "serviceAccountName": "mlflow-server",
    "automountServiceAccountToken": True,
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 10001.0,
        "runAsGroup": 10001.0,
        "fsGroup": 10001.0,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "initContainers": [PGBOUNCER],
    "containers": [MLFLOW],
    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "8Gi"}}],
}
DEPLOYMENT_PROPS: dict[str, Any] = {
    "metadata": {"name": "mlflow", "namespace": "mlflow", "labels": {"app.kubernetes.io/name": "mlflow"}},
    "spec": {
        "replicas": 2.0,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "mlflow"}},
        "template": {"metadata": {"labels": {"app.kubernetes.io/name": "mlflow"}}, "spec": POD_SPEC},
    },
}
MIGRATION: dict[str, Any] = {
    "name": "migrate",
    "image": MLFLOW["image"],
    "command": ["python", "/opt/mlflow-platform/run_bootstrap.py"],
    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
    "securityContext": HARDENED,
}
JOB_PROPS: dict[str, Any] = {
    "metadata": {"name": "mlflow-migrate-3-17-0", "namespace": "mlflow"},
    "spec": {
        "backoffLimit": 2.0,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "securityContext": POD_SPEC["securityContext"],
                "containers": [MIGRATION],
            }
        },
    },
}


def check(policy: ResourceValidationPolicy, typ: str, props: dict[str, Any], **config: Any) -> list[str]:
    urn = urn_for(typ, "mlflow", parents=["mlflow:index:TrackingServer"])
    return violations(policy, typ, props, urn=urn, config=config)


def deployment(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """A copy of the Deployment with ``change`` applied to its pod spec."""
    props = copy.deepcopy(DEPLOYMENT_PROPS)
    change(props["spec"]["template"]["spec"])
    return props


def mlflow(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["containers"][0]  # type: ignore[no-any-return]


def pgbouncer(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["initContainers"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("policy", WORKLOAD_POLICIES, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("typ", "props"), [(DEPLOYMENT, DEPLOYMENT_PROPS), (JOB, JOB_PROPS)], ids=["deployment", "job"]
)
def test_the_hardened_workloads_pass(policy: ResourceValidationPolicy, typ: str, props: dict[str, Any]) -> None:
    assert check(policy, typ, props) == []


NON_ROOT_BREAKERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "container runs as uid 0": lambda pod: mlflow(pod)["securityContext"].update(runAsUser=0.0),
    "pod runs as uid 0, mlflow inherits it": lambda pod: (
        pod["securityContext"].update(runAsUser=0.0),
        pod["securityContext"].pop("runAsNonRoot"),
    ),
    "container opts out of runAsNonRoot": lambda pod: mlflow(pod)["securityContext"].update(runAsNonRoot=False),
    "no user anywhere": lambda pod: [pod["securityContext"].pop(k) for k in ("runAsNonRoot", "runAsUser")],
    "privileged sidecar": lambda pod: pgbouncer(pod)["securityContext"].update(privileged=True),
}


@pytest.mark.parametrize("breaker", sorted(NON_ROOT_BREAKERS))
def test_containers_must_not_run_as_root(breaker: str) -> None:
    found = check(kubernetes.k8s_non_root, DEPLOYMENT, deployment(NON_ROOT_BREAKERS[breaker]))
    assert found, breaker


def test_container_level_user_satisfies_non_root() -> None:
    def container_only(pod: dict[str, Any]) -> None:
        pod.pop("securityContext")
        mlflow(pod)["securityContext"]["runAsUser"] = 10001.0
        pgbouncer(pod)["securityContext"]["runAsNonRoot"] = True

    assert check(kubernetes.k8s_non_root, DEPLOYMENT, deployment(container_only)) == []


RESOURCE_BREAKERS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "mlflow memory limit": (lambda pod: mlflow(pod)["resources"]["limits"].pop("memory"), "limits for memory"),
    "mlflow cpu limit": (lambda pod: mlflow(pod)["resources"]["limits"].pop("cpu"), "limits for cpu"),
    "mlflow requests": (lambda pod: mlflow(pod)["resources"].pop("requests"), "requests for cpu, memory"),
    "sidecar limits": (lambda pod: pgbouncer(pod)["resources"].pop("limits"), "'pgbouncer' has no limits"),
    "no resources at all": (lambda pod: mlflow(pod).pop("resources"), "'mlflow' has no limits"),
}


@pytest.mark.parametrize("breaker", sorted(RESOURCE_BREAKERS))
def test_containers_must_declare_requests_and_limits(breaker: str) -> None:
    change, expected = RESOURCE_BREAKERS[breaker]
    found = check(kubernetes.k8s_resource_limits, DEPLOYMENT, deployment(change))
    assert any(expected in message for message in found), found


def test_job_containers_need_limits_too() -> None:
    props = copy.deepcopy(JOB_PROPS)
    props["spec"]["template"]["spec"]["containers"][0]["resources"].pop("limits")
    assert check(kubernetes.k8s_resource_limits, JOB, props)


def test_required_resources_are_configurable() -> None:
    """Teams that drop CPU limits on purpose say so in the policy config, not by silencing the rule."""
    no_cpu_limit = deployment(lambda pod: mlflow(pod)["resources"]["limits"].pop("cpu"))
    assert check(kubernetes.k8s_resource_limits, DEPLOYMENT, no_cpu_limit, requiredLimits=["memory"]) == []


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_the_mlflow_container_needs_both_probes(probe: str) -> None:
    (message,) = check(kubernetes.k8s_probes, DEPLOYMENT, deployment(lambda pod: mlflow(pod).pop(probe)))
    assert probe in message and "'mlflow'" in message


def test_native_sidecar_probes_are_opt_in() -> None:
    """The PgBouncer sidecar above has a readiness probe but no liveness probe."""
    assert check(kubernetes.k8s_probes, DEPLOYMENT, DEPLOYMENT_PROPS) == []
    (message,) = check(kubernetes.k8s_probes, DEPLOYMENT, DEPLOYMENT_PROPS, includeNativeSidecars=True)
    assert "'pgbouncer'" in message and "livenessProbe" in message


def test_jobs_need_no_probes() -> None:
    assert "livenessProbe" not in MIGRATION
    assert check(kubernetes.k8s_probes, JOB, JOB_PROPS) == []


def test_cronjob_pod_spec_is_found() -> None:
    cronjob: dict[str, Any] = {"spec": {"schedule": "0 3 * * *", "jobTemplate": copy.deepcopy(JOB_PROPS)}}
    cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUser"] = 0.0
    assert check(kubernetes.k8s_non_root, "kubernetes:batch/v1:CronJob", cronjob)


def test_excluded_namespaces_are_skipped() -> None:
    rooted = deployment(lambda pod: mlflow(pod)["securityContext"].update(runAsUser=0.0))
    rooted["metadata"]["namespace"] = "kube-system"
    assert check(kubernetes.k8s_non_root, DEPLOYMENT, rooted) == []
    assert check(kubernetes.k8s_non_root, DEPLOYMENT, rooted, excludeNamespaces=[])


NGINX_INGRESS: dict[str, Any] = {
    "metadata": {
        "name": "mlflow",
        "namespace": "mlflow",
        "annotations": {
            "cert-manager.io/cluster-issuer": "letsencrypt",
            "nginx.ingress.kubernetes.io/proxy-body-size": "0",
            "nginx.ingress.kubernetes.io/proxy-read-timeout": "600",
        },
    },
    "spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["mlflow.example.com"], "secretName": "mlflow-tls"}],
        "rules": [
            {
                "host": "mlflow.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "mlflow", "port": {"number": 5000.0}}},
                        }
                    ]
                },
            }
        ],
    },
}
ALB_INGRESS: dict[str, Any] = {
    "metadata": {
        "name": "mlflow",
        "namespace": "mlflow",
        "annotations": {
            "alb.ingress.kubernetes.io/scheme": "internal",
            "alb.ingress.kubernetes.io/target-type": "ip",
            "alb.ingress.kubernetes.io/certificate-arn": "arn:aws:acm:us-east-1:123456789012:certificate/abc",
            "alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}, {"HTTPS": 443}]',
            "alb.ingress.kubernetes.io/ssl-redirect": "443",
        },
    },
    "spec": {"ingressClassName": "alb", "rules": NGINX_INGRESS["spec"]["rules"]},
}


def ingress(base: dict[str, Any], change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    props = copy.deepcopy(base)
    change(props)
    return props


@pytest.mark.parametrize("props", [NGINX_INGRESS, ALB_INGRESS], ids=["nginx", "alb"])
def test_tls_ingresses_pass(props: dict[str, Any]) -> None:
    assert check(kubernetes.k8s_ingress_tls, INGRESS, props) == []


INGRESS_BREAKERS: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], object], str]] = {
    "nginx without tls": (NGINX_INGRESS, lambda p: p["spec"].pop("tls"), "plain HTTP"),
    "nginx host not covered": (
        NGINX_INGRESS,
        lambda p: p["spec"]["rules"][0].update(host="mlflow.other.example.org"),
        "Hosts without TLS",
    ),
    "nginx tls without secret": (NGINX_INGRESS, lambda p: p["spec"]["tls"][0].pop("secretName"), "secretName"),
    "nginx redirect disabled": (
        NGINX_INGRESS,
        lambda p: p["metadata"]["annotations"].update({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
        "ssl-redirect",
    ),
    "alb http only": (
        ALB_INGRESS,
        lambda p: p["metadata"]["annotations"].update({"alb.ingress.kubernetes.io/listen-ports": '[{"HTTP": 80}]'}),
        "no HTTPS listener",
    ),
    "alb no redirect": (
        ALB_INGRESS,
        lambda p: p["metadata"]["annotations"].pop("alb.ingress.kubernetes.io/ssl-redirect"),
        "without alb.ingress.kubernetes.io/ssl-redirect",
    ),
    "alb no certificate": (
        ALB_INGRESS,
        lambda p: p["metadata"]["annotations"].pop("alb.ingress.kubernetes.io/certificate-arn"),
        "no certificate",
    ),
    "alb defaults to http": (
        ALB_INGRESS,
        lambda p: [
            p["metadata"]["annotations"].pop(f"alb.ingress.kubernetes.io/{k}")
            for k in ("listen-ports", "certificate-arn")
        ],
        "no HTTPS listener",
    ),
    "alb bad listen-ports": (
        ALB_INGRESS,
        lambda p: p["metadata"]["annotations"].update({"alb.ingress.kubernetes.io/listen-ports": "HTTPS:443"}),
        "not valid JSON",
    ),
}


@pytest.mark.parametrize("breaker", sorted(INGRESS_BREAKERS))
def test_ingress_without_tls_fails(breaker: str) -> None:
    base, change, expected = INGRESS_BREAKERS[breaker]
    found = check(kubernetes.k8s_ingress_tls, INGRESS, ingress(base, change))
    assert any(expected in message for message in found), found


def test_wildcard_certificate_covers_one_level_of_subdomain() -> None:
    wildcard = ingress(NGINX_INGRESS, lambda p: p["spec"]["tls"][0].update(hosts=["*.example.com"]))
    assert check(kubernetes.k8s_ingress_tls, INGRESS, wildcard) == []
    deeper = ingress(wildcard, lambda p: p["spec"]["rules"][0].update(host="mlflow.dev.example.com"))
    assert check(kubernetes.k8s_ingress_tls, INGRESS, deeper)


def test_alb_with_https_only_and_a_certificate_needs_no_redirect() -> None:
    def https_only(p: dict[str, Any]) -> None:
        annotations = p["metadata"]["annotations"]
        annotations.pop("alb.ingress.kubernetes.io/ssl-redirect")
        annotations["alb.ingress.kubernetes.io/listen-ports"] = '[{"HTTPS": 443}]'

    assert check(kubernetes.k8s_ingress_tls, INGRESS, ingress(ALB_INGRESS, https_only)) == []

"""Declarations of the ``training``, ``server``, ``monitoring`` and ``garbageCollection`` sections
(``stackconfig.schema``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rendering.nlb import LoadBalancerScheme

from .. import patterns as p
from ..declare import key

IngressClass = Literal["nginx", "alb"]
_K8S_NAMESPACE = "a Kubernetes namespace name"


@dataclass(frozen=True)
class ServiceAccountRef:
    namespace: str
    name: str

    @property
    def subject(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class ExtraPrincipal:
    """A non-IRSA principal that may assume the training role, e.g. SageMaker."""

    type: Literal["Service", "AWS"]
    identifier: str
    source_arn: str = ""
    """Service principals: the ``aws:SourceArn`` pattern the service may assume the role for (e.g.
    ``arn:aws:sagemaker:us-east-1:<account>:training-job/mlflow-*``), so that no other job or
    resource of the service in the account can (the confused-deputy guard beyond the account)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Who may assume the training role."""

    service_accounts: tuple[ServiceAccountRef, ...] = field(
        default=(ServiceAccountRef("ml-training", "training-job"),),
        metadata=key(
            "Kubernetes service accounts that may assume the training role (IRSA, `sub` and `aud` pinned).",
            explicit=True,
            allowed="at least one `{namespace, name}` (Kubernetes names)",
            shown_default="`[{namespace: ml-training, name: training-job}]`",
        ),
    )
    extra_principals: tuple[ExtraPrincipal, ...] = field(
        default=(),
        metadata=key(
            "Non-IRSA principals that may assume the training role, e.g. SageMaker (scoped with "
            "`aws:SourceAccount` and `aws:SourceArn`).",
            explicit=True,
            allowed="`{type: Service, identifier: <service>.amazonaws.com, sourceArn: <ARN pattern>}` or "
            "`{type: AWS, identifier: <role/user ARN or 12-digit account>}`; never `*`",
        ),
    )


@dataclass(frozen=True)
class IngressConfig:
    """How the tracking host is exposed (the `server.ingress` keys)."""

    class_name: IngressClass = field(
        default="nginx",
        metadata=key(
            "`nginx`: ingress-nginx + cert-manager (retired upstream in March 2026: prefer `alb`); `alb`: the "
            "AWS Load Balancer Controller + ACM."
        ),
    )
    cert_manager_issuer: str = field(
        default="",
        metadata=key(
            "nginx: the cert-manager ClusterIssuer that signs the tracking host's certificate (required with `nginx`).",
            pattern=p.K8S_NAME,
            expected="a cert-manager ClusterIssuer name",
        ),
    )
    acm_certificate_arn: str = field(
        default="",
        metadata=key(
            "alb: the ACM certificate for the tracking host; required with `alb` in mode reuse, refused in mode "
            "create (the stack issues it).",
            pattern=p.ACM_ARN,
            expected="an ACM certificate ARN (arn:aws:acm:<region>:<acct>:certificate/<id>)",
        ),
    )
    scheme: LoadBalancerScheme = field(
        default="internal", metadata=key("Whether the load balancer is reachable from the internet.")
    )
    controller_namespace: str = field(
        default="ingress-nginx",
        metadata=key(
            "Where the ingress controller's pods run (NetworkPolicy source for nginx).",
            pattern=p.K8S_NAME,
            expected=_K8S_NAMESPACE,
        ),
    )


@dataclass(frozen=True)
class ServerConfig:
    """The tracking server on EKS."""

    namespace: str = field(
        default="mlflow",
        metadata=key("Namespace of the tracking server.", pattern=p.K8S_NAME, expected=_K8S_NAMESPACE),
    )
    service_account: str = field(
        default="mlflow-server",
        metadata=key(
            "Its service account (IRSA to the server role).",
            pattern=p.K8S_NAME,
            expected="a Kubernetes service account name",
        ),
    )
    image: str = field(
        default="",
        metadata=key(
            "The tracking-server image, by digest, built by CI from images/tracking-server.",
            pattern=p.IMAGE_BY_DIGEST,
            expected="the tracking-server image by digest, <registry>/<repo>[:tag]@sha256:<64 hex> "
            "(CI builds it from images/tracking-server/Dockerfile)",
            required=True,
        ),
    )
    host: str = field(
        default="",
        metadata=key(
            "Public DNS name of the tracking server (Ingress host, TLS name, allowed Host header).",
            pattern=p.DNS_NAME,
            expected="a lowercase DNS name like mlflow.example.com",
            required=True,
        ),
    )
    ingress: IngressConfig = field(
        default_factory=IngressConfig,
        metadata=key("The ingress (the `server.ingress` keys).", explicit=True),
    )
    replicas: int = field(
        default=2, metadata=key("Server pods; a PodDisruptionBudget is created above 1.", low=1, high=50)
    )
    max_replicas: int = field(
        default=2,
        metadata=key(
            "Above `replicas` an HPA (CPU 70 %) scales between the two; the pools of this many replicas must "
            "fit the database's `max_connections`, and it must carry a declared peak (docs/capacity.md).",
            low=1,
            high=50,
            explicit=True,
            allowed="1–50, at least `replicas`",
            shown_default="`replicas` (at least 2)",
        ),
    )
    workers: int = field(default=2, metadata=key("Uvicorn workers per pod.", low=1, high=16))
    in_flight_per_worker: int = field(
        default=4,
        metadata=key(
            "Admission limit per uvicorn worker; pools and `max_connections` are derived from it. Both stacks set "
            "8, from `make bench` (16 clients, log_batch 100, 2 workers): at 4 the proxy refused 73 requests and "
            "clients sat in their retry backoff while the server had room (777 metrics/s, p99 13 s); at 8 it "
            "refused none (1,243 metrics/s, p99 4.2 s); 1 and 2 were worse. The default stays 4 because 8 does "
            "not fit two replicas on the default db.t4g.medium (2 × 68 + 10 connections > 100).",
            low=1,
            high=64,
        ),
    )
    auth_cache_ttl_seconds: int = field(
        default=60, metadata=key("Basic-auth credential cache; 0 disables it (~12× slower).", low=0, high=3600)
    )
    peak_requests_per_second: int = field(
        default=0,
        metadata=key(
            "Declared peak of MLflow API requests/s over all training jobs; 0: not declared. With it, "
            "`maxReplicas` must carry the peak at the measured cost (rendering/capacity.py, docs/capacity.md).",
            low=0,
            high=1_000_000,
        ),
    )
    peak_metrics_per_second: int = field(
        default=0,
        metadata=key("Declared peak of metrics/s logged in batches; 0: not declared.", low=0, high=100_000_000),
    )
    cpu: str = field(
        default="1",
        metadata=key(
            "CPU request of the MLflow container (limit 2×).", pattern=p.CPU, expected="a CPU quantity like 500m or 2"
        ),
    )
    memory: str = field(
        default="2Gi",
        metadata=key(
            "Memory request and limit of the MLflow container.",
            pattern=p.MEMORY,
            expected="a memory quantity like 512Mi or 2Gi",
        ),
    )
    tmp_size_gib: int = field(
        default=8, metadata=key("Size of the `/tmp` emptyDir (the root filesystem is read-only).", low=1, high=500)
    )
    monitoring_namespace: str = field(
        default="monitoring",
        metadata=key(
            "Namespace whose Prometheus may reach the server (NetworkPolicy).",
            pattern=p.K8S_NAME,
            expected=_K8S_NAMESPACE,
        ),
    )
    vpc_cidr: str = field(
        default="10.0.0.0/16",
        metadata=key(
            "Destination of database egress in the NetworkPolicy; the ALB is admitted from the load-balancer "
            "subnets only (docs/cluster-add-ons.md). Mode create: must equal `network.cidrBlock`.",
            pattern=p.CIDR,
            expected="an IPv4 CIDR like 10.0.0.0/16",
        ),
    )

    @property
    def service_account_ref(self) -> ServiceAccountRef:
        return ServiceAccountRef(self.namespace, self.service_account)


DEFAULT_SCRAPER_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}


@dataclass(frozen=True)
class MonitoringConfig:
    """Metrics scraping (Kubernetes) and alarms (CloudWatch + SNS): docs/observability.md."""

    prometheus_operator: bool = field(
        default=False,
        metadata=key(
            "The cluster has the Prometheus Operator CRDs: a ServiceMonitor is created; otherwise "
            "docs/observability.md has the equivalent scrape config."
        ),
    )
    scraper_pod_labels: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_SCRAPER_POD_LABELS),
        metadata=key(
            "Labels of the Prometheus pods (in `server.monitoringNamespace`) the NetworkPolicy admits to the "
            "metrics ports.",
            explicit=True,
            allowed="a non-empty object of Kubernetes label keys to values",
        ),
    )
    scrape_interval_seconds: int = field(default=30, metadata=key("Prometheus scrape interval.", low=10, high=300))
    alarm_emails: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "E-mail subscriptions of the alarm topic (each must confirm AWS's mail); empty: the topic only.",
            pattern=p.EMAIL,
            expected="e-mail addresses for the alarm topic",
        ),
    )
    service_monitor_labels: dict[str, str] = field(
        default_factory=dict,
        metadata=key(
            "Mode reuse: the labels the cluster's Prometheus selects ServiceMonitors by (required with "
            "`prometheusOperator`). Mode create renders them (rendering/prometheus_stack.py) and refuses a value.",
            explicit=True,
            allowed="a non-empty object of Kubernetes label keys to values",
        ),
    )


@dataclass(frozen=True)
class GarbageCollectionConfig:
    """The ``mlflow gc`` CronJob."""

    schedule: str = field(
        default="17 3 * * *",
        metadata=key(
            "When `mlflow gc` runs (UTC).",
            pattern=p.CRON,
            expected="a five-field cron expression like '17 3 * * *' (UTC)",
        ),
    )
    older_than: str = field(
        default="30d",
        metadata=key(
            "Runs deleted longer ago than this are removed for good (`mlflow gc --older-than`).",
            expected="an age like 30d or 7d12h",
            allowed="an age like `30d` or `7d12h`, at least `1d`",
        ),
    )

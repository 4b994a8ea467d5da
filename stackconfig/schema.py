"""The stack configuration schema. Defaults are the secure, production-leaning choice;
``Pulumi.dev.yaml`` relaxes what a throwaway stack does not need."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rendering.ownership import TeamOwnership

ArtifactAccessMode = Literal["direct", "proxied"]
"""``direct``: training jobs read/write S3 with their own role, the server runs with
``--default-artifact-root``. ``proxied``: the server streams artifacts (``--artifacts-destination``)
and only its role touches S3."""

BucketEncryption = Literal["kms", "s3"]


ClusterMode = Literal["create", "reuse"]
"""``create``: the program builds the VPC, the EKS cluster, its add-ons and the ingress path.
``reuse``: it deploys onto an existing VPC and cluster whose facts come from config."""

NatGateways = Literal["single", "perAz"]
CapacityType = Literal["ON_DEMAND", "SPOT"]


@dataclass(frozen=True)
class LoadBalancerSubnet:
    """A subnet of an existing VPC reserved for the tracking server's load balancer: no node
    group may use it (the NetworkPolicy admits its CIDR as the load balancer)."""

    id: str
    cidr_block: str


@dataclass(frozen=True)
class NetworkConfig:
    # mode reuse: the existing network
    vpc_id: str = ""
    private_subnet_ids: tuple[str, ...] = ()
    database_client_security_group_ids: tuple[str, ...] = ()
    """Security groups allowed to reach Postgres on 5432 (the cluster's node/pod groups)."""
    load_balancer_subnets: tuple[LoadBalancerSubnet, ...] = ()
    """Mode reuse: the subnets the load balancer goes to (required; none of the node subnets)."""
    # mode create: the VPC the program builds
    cidr_block: str = "10.0.0.0/16"
    availability_zone_count: int = 3
    availability_zones: tuple[str, ...] = ()
    """Explicit AZ names; empty: the first ``availability_zone_count`` available in the region."""
    nat_gateways: NatGateways = "perAz"
    """``perAz``: one NAT gateway per AZ (an AZ outage does not cut the others' egress);
    ``single``: one for the whole VPC (cheaper, for throwaway stacks)."""
    flow_log_retention_days: int = 90
    transit_gateway_id: str = ""
    """Mode create: a transit gateway the created VPC attaches to (private subnets), with a route
    back to each RFC 1918 ``cluster.deployerCidrs`` network; empty: no attachment."""


@dataclass(frozen=True)
class DatabaseConfig:
    instance_class: str = "db.t4g.medium"
    memory_bytes: int = 0
    """Memory the tuning assumes; from the instance class unless ``memoryGib`` overrides it."""
    engine_version: str = "16"
    allocated_storage_gib: int = 20
    max_allocated_storage_gib: int = 100
    multi_az: bool = True
    backup_retention_days: int = 14
    deletion_protection: bool = True
    final_snapshot: bool = True
    performance_insights_retention_days: int = 7
    monitoring_interval_seconds: int = 60
    max_connections: int | None = None
    log_min_duration_statement_ms: int = 500
    idle_in_transaction_session_timeout_ms: int = 60_000
    database_name: str = "mlflow"
    master_username: str = "mlflow_admin"
    log_retention_days: int = 90
    """Retention of the log groups the instance exports to (the stack creates them, so they do
    not default to RDS's never-expiring ones)."""

    @property
    def engine_major(self) -> int:
        return int(self.engine_version.split(".")[0])


@dataclass(frozen=True)
class ArtifactsConfig:
    access_mode: ArtifactAccessMode = "direct"
    encryption: BucketEncryption = "kms"
    access_logging: bool = True
    prefix: str = "mlflow"
    noncurrent_version_expiration_days: int = 90
    abort_incomplete_multipart_upload_days: int = 7
    access_log_retention_days: int = 365
    force_destroy: bool = False
    replication_region: str = ""
    """Disaster recovery: replicate every artifact (versions and deletes) to a bucket in this other
    region, with its own KMS key and a replication role; "" (default): no replica."""


EKS_ADDONS = ("vpc-cni", "kube-proxy", "coredns", "aws-ebs-csi-driver", "metrics-server")
LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"


@dataclass(frozen=True)
class NodeGroupConfig:
    """The managed node group (mode create). Defaults are production-sized: on-demand, three
    nodes, one per AZ."""

    instance_types: tuple[str, ...] = ("m6i.xlarge",)
    capacity_type: CapacityType = "ON_DEMAND"
    ami_type: str = "AL2023_x86_64_STANDARD"
    desired_size: int = 3
    min_size: int = 3
    max_size: int = 6
    disk_size_gib: int = 50


@dataclass(frozen=True)
class ClusterConfig:
    mode: ClusterMode
    name: str
    region: str = "us-east-1"
    # mode reuse: facts of the existing cluster
    oidc_provider_arn: str = ""
    """IAM OIDC provider of the EKS cluster, for IRSA trust."""
    endpoint: str = ""
    """API server URL; with ``certificateAuthorityData`` it builds the exec-based kubeconfig."""
    certificate_authority_data: str = ""
    # mode create: the cluster the program builds
    kubernetes_version: str = "1.36"
    public_access_cidrs: tuple[str, ...] = ()
    """Who may reach the public API endpoint; empty: the public endpoint is disabled."""
    admin_role_arns: tuple[str, ...] = ()
    """IAM principals given cluster-admin through EKS access entries (the deployer among them)."""
    deletion_protection: bool = True
    log_retention_days: int = 90
    node_group: NodeGroupConfig = field(default_factory=NodeGroupConfig)
    addon_versions: dict[str, str] = field(default_factory=dict)
    """``{add-on name: version}``; an add-on not listed gets EKS's default for the cluster version."""
    hosted_zone_id: str = ""
    """Route 53 zone for the tracking host's record and certificate validation."""
    acme_email: str = ""
    """Let's Encrypt account e-mail for the cert-manager ClusterIssuer (nginx)."""
    acme_server: str = LETS_ENCRYPT
    deployer_cidrs: tuple[str, ...] = ()
    """The network ``pulumi`` runs from (CI runners, VPN): an HTTPS rule on the cluster security
    group for each, and the publicly routable ones on the public endpoint's allow list when it is
    on (docs/cluster.md, "First deployment")."""
    deployer_security_group_ids: tuple[str, ...] = ()
    """Security groups of the deployer's machines (a peered VPC or one reached through the transit
    gateway): an HTTPS rule on the cluster security group for each."""
    preview_role_arns: tuple[str, ...] = ()
    """Roles of pull-request previews: an access entry with AmazonEKSViewPolicy (no Secrets, no
    writes; SSA dry runs they may not make fall back to input diffs)."""
    drift_role_arns: tuple[str, ...] = ()
    """Roles of the nightly ``preview --refresh``: an access entry with AmazonEKSAdminViewPolicy
    (read everything, Secrets included: refresh reads every object the stack owns; no writes)."""

    @property
    def creates(self) -> bool:
        return self.mode == "create"

    @property
    def oidc_issuer_host_path(self) -> str:
        """``oidc.eks.<region>.amazonaws.com/id/<ID>``: the prefix of IRSA condition keys (mode reuse)."""
        return self.oidc_provider_arn.split(":oidc-provider/", 1)[1]


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
    service_accounts: tuple[ServiceAccountRef, ...] = (ServiceAccountRef("ml-training", "training-job"),)
    extra_principals: tuple[ExtraPrincipal, ...] = ()


IngressClass = Literal["nginx", "alb"]


@dataclass(frozen=True)
class IngressConfig:
    class_name: IngressClass = "nginx"
    cert_manager_issuer: str = ""
    """nginx: the cert-manager ClusterIssuer that signs the tracking host's certificate."""
    acm_certificate_arn: str = ""
    """alb: the ACM certificate for the tracking host."""
    scheme: Literal["internal", "internet-facing"] = "internal"
    controller_namespace: str = "ingress-nginx"
    """Where the ingress controller's pods run (NetworkPolicy source for nginx)."""


@dataclass(frozen=True)
class ServerConfig:
    namespace: str = "mlflow"
    service_account: str = "mlflow-server"
    image: str = ""
    """The tracking-server image, by digest (``repo@sha256:…``), built from images/tracking-server."""
    host: str = ""
    """Public DNS name of the tracking server (Ingress host, TLS name, allowed Host header)."""
    ingress: IngressConfig = field(default_factory=IngressConfig)
    replicas: int = 2
    max_replicas: int = 2
    """Above ``replicas`` an HPA scales between the two."""
    workers: int = 2
    in_flight_per_worker: int = 4
    """Admission limit per uvicorn worker; pools and max_connections are derived from it.
    Both stacks set 8, from ``make bench`` (16 clients, log_batch 100, 2 workers): at 4 the proxy
    refused 73 requests and clients sat in their retry backoff while the server had room (777
    metrics/s, p99 13 s); at 8 it refused none (1,243 metrics/s, p99 4.2 s); 1 and 2 were worse.
    The default stays 4 because 8 does not fit two replicas on the default db.t4g.medium
    (2 × 68 + 10 connections > 100); the validation says so when it does not fit."""
    auth_cache_ttl_seconds: int = 60
    peak_requests_per_second: int = 0
    """Declared peak of MLflow API requests/s over all training jobs; 0: not declared. With it,
    ``maxReplicas`` must carry the peak at the measured cost (rendering.capacity)."""
    peak_metrics_per_second: int = 0
    """Declared peak of metrics/s logged in batches; 0: not declared."""
    cpu: str = "1"
    memory: str = "2Gi"
    tmp_size_gib: int = 8
    monitoring_namespace: str = "monitoring"
    vpc_cidr: str = "10.0.0.0/16"
    """Destination of database egress; the ALB is admitted from the load-balancer subnets only
    (the VPC CIDR only when a TrackingServer is built without them)."""

    @property
    def service_account_ref(self) -> ServiceAccountRef:
        return ServiceAccountRef(self.namespace, self.service_account)


DEFAULT_SCRAPER_POD_LABELS = {"app.kubernetes.io/name": "prometheus"}


@dataclass(frozen=True)
class MonitoringConfig:
    """Metrics scraping (Kubernetes) and alarms (CloudWatch + SNS)."""

    prometheus_operator: bool = False
    """True when the cluster has the Prometheus Operator CRDs: a ServiceMonitor is created.
    False: docs/observability.md has the equivalent scrape config."""
    scraper_pod_labels: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SCRAPER_POD_LABELS))
    """Labels of the Prometheus pods (in ``server.monitoringNamespace``) the NetworkPolicy admits
    to the metrics ports."""
    scrape_interval_seconds: int = 30
    alarm_emails: tuple[str, ...] = ()
    """E-mail subscriptions of the alarm topic (each must confirm); empty: the topic only."""
    service_monitor_labels: dict[str, str] = field(default_factory=dict)
    """Reuse mode: the labels the cluster's Prometheus selects ServiceMonitors by (required with
    ``prometheusOperator``). Create mode renders them (``rendering.prometheus_stack``)."""


@dataclass(frozen=True)
class GarbageCollectionConfig:
    """The ``mlflow gc`` CronJob."""

    schedule: str = "17 3 * * *"
    """Cron expression (UTC)."""
    older_than: str = "30d"
    """Runs deleted longer ago than this are removed for good (``mlflow gc --older-than``)."""


@dataclass(frozen=True)
class RotationConfig:
    """Generation of each generated credential: raising one in the stack file rotates it.

    0 is the credential first generated; every change regenerates it (a Pulumi ``random``
    resource keyed on the generation) and ``docs/rotation.md`` says what each one rolls.
    """

    admin_password: int = 0
    database_password: int = 0
    """The application role's password (PgBouncer and the server); not the RDS master's."""
    flask_secret_key: int = 0


@dataclass(frozen=True)
class KmsConfig:
    """Who administers the stack's customer KMS keys (artifacts, database, EKS Secrets, logs)."""

    administrator_arns: tuple[str, ...] = ()
    """IAM roles/users that manage (never use) the keys; empty: the principal running ``pulumi up``.
    The deploying principal is always added when it is not listed: KMS refuses a key policy that
    would lock out the principal setting it."""


@dataclass(frozen=True)
class StackConfig:
    cluster: ClusterConfig
    network: NetworkConfig = field(default_factory=NetworkConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    artifacts: ArtifactsConfig = field(default_factory=ArtifactsConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    rotation: RotationConfig = field(default_factory=RotationConfig)
    tags: dict[str, str] = field(default_factory=dict)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    garbage_collection: GarbageCollectionConfig = field(default_factory=GarbageCollectionConfig)
    kms: KmsConfig = field(default_factory=KmsConfig)
    kubernetes: bool = True
    """``mlflow-platform:kubernetes``. False only for the first phase of a first deployment
    (``pulumi up --config mlflow-platform:kubernetes=false``): AWS resources only, before the
    deployer can reach the new cluster's API. On a deployed stack it would delete the tracking
    server; the stack files never set it (docs/cluster.md)."""
    teams: tuple[TeamOwnership, ...] = ()
    """The ownership part of the teams declaration (``mlflow-platform:teams``,
    ``stackconfig.teams``); empty: no teams, the server app refuses every non-admin create."""

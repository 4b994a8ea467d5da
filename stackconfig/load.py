"""Parse and validate raw stack config values into :class:`StackConfig`.

Every problem is collected with its fully qualified key (``mlflow-platform:database.instanceClass``),
the value given and what is allowed, and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from rendering.capacity import CapacityEstimate, Demand, ReplicaShape, cpu_cores, estimate
from rendering.gc import age_seconds
from rendering.instance_classes import UnknownInstanceClassError, instance_memory_bytes
from rendering.pools import CapacityInputs, PoolSizingError, plan_pools
from rendering.postgres import PostgresTuning, max_connections_for
from rendering.units import GIB

from . import cluster_access, cluster_addons, security_keys
from .errors import MISSING, ConfigError, ConfigProblem
from .namespaces import PROJECT, did_you_mean, namespace_problems
from .schema import (
    EKS_ADDONS,
    LETS_ENCRYPT,
    ArtifactsConfig,
    ClusterConfig,
    ClusterMode,
    DatabaseConfig,
    ExtraPrincipal,
    GarbageCollectionConfig,
    IngressConfig,
    MonitoringConfig,
    NetworkConfig,
    NodeGroupConfig,
    RotationConfig,
    ServerConfig,
    ServiceAccountRef,
    StackConfig,
    TrainingConfig,
)
from .teams import parse_teams

SECTIONS = (
    "cluster",
    "network",
    "database",
    "artifacts",
    "training",
    "server",
    "rotation",
    "tags",
    "monitoring",
    "garbageCollection",
    "kubernetes",
    "kms",
    "teams",
)

T = TypeVar("T")

_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_SG_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")
_OIDC_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:oidc-provider/[A-Za-z0-9.\-]+(/[A-Za-z0-9.\-]+)*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$|^\d{12}$")
_SERVICE_PRINCIPAL = re.compile(r"^[a-z0-9.-]+\.amazonaws\.com$")
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_S3_PREFIX = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_IMAGE_BY_DIGEST = re.compile(
    r"^[a-z0-9][a-z0-9.\-]*(:[0-9]+)?(/[a-z0-9._\-]+)+(:[\w.\-]{1,128})?@sha256:[0-9a-f]{64}$"
)
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ACM_ARN = re.compile(r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f\-]{36}$")
_CPU = re.compile(r"^([1-9][0-9]*m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[1-9][0-9]*(Mi|Gi)$")
_CIDR = re.compile(r"^(\d{1,3}\.){3}\d{1,3}/(\d|[12]\d|3[0-2])$")
_EKS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$")
_EKS_ENDPOINT = re.compile(r"^https://[A-Za-z0-9.-]+\.eks\.amazonaws\.com(\.cn)?$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_K8S_VERSION = re.compile(r"^1\.(2[89]|[3-9][0-9])$")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
_AMI_TYPE = re.compile(r"^(AL2023|BOTTLEROCKET)_[A-Za-z0-9_]+$")
_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
_AZ_NAME = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")
_HTTPS_URL = re.compile(r"^https://[A-Za-z0-9.\-]+(:\d+)?(/[\w.\-/]*)?$")
_ADDON_VERSION = re.compile(r"^v\d+\.\d+\.\d+-eksbuild\.\d+$")
_LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
_MIN_PUBLIC_PREFIX = 16
"""The narrowest a public-endpoint CIDR may be: operators' egress ranges, never the internet."""
_REUSE_NETWORK_KEYS = ("vpcId", "privateSubnetIds", "databaseClientSecurityGroupIds", "loadBalancerSubnets")
_CREATE_NETWORK_KEYS = (
    "cidrBlock",
    "availabilityZoneCount",
    "availabilityZones",
    "natGateways",
    "flowLogRetentionDays",
    "transitGatewayId",
)
_REUSE_CLUSTER_KEYS = ("oidcProviderArn", "endpoint", "certificateAuthorityData")
_CREATE_CLUSTER_KEYS = (
    "kubernetesVersion",
    "publicAccessCidrs",
    "adminRoleArns",
    "deletionProtection",
    "logRetentionDays",
    "nodeGroup",
    "addonVersions",
    "hostedZoneId",
    "acmeEmail",
    "acmeServer",
    *cluster_access.DEPLOYER_KEYS,
)
_PG_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_TAG_KEY = re.compile(r"^[\w .:/=+\-@]{1,128}$")
_PI_RETENTION_HINT = "7, 731, or a multiple of 31 up to 713"
_MONITORING_INTERVALS = (0, 1, 5, 10, 15, 30, 60)
_RESERVED_PG_USERS = {"postgres", "admin", "rdsadmin", "root", "mlflow"}


class _Section:
    """Reads one config section (a YAML object) and records problems instead of raising."""

    def __init__(self, name: str, raw: object, problems: list[ConfigProblem], *, required: bool = False):
        self.name = name
        self.problems = problems
        self.present = raw is not None
        if raw is None:
            if required:
                problems.append(ConfigProblem(f"{PROJECT}:{name}", MISSING, "an object (see README config table)"))
            raw = {}
        if not isinstance(raw, Mapping):
            problems.append(ConfigProblem(f"{PROJECT}:{name}", raw, "an object (see README config table)"))
            raw = {}
        self.raw: Mapping[str, Any] = raw
        self.read: set[str] = set()

    def key(self, field: str) -> str:
        return f"{PROJECT}:{self.name}.{field}"

    def problem(self, field: str, value: object, expected: str) -> None:
        self.problems.append(ConfigProblem(self.key(field), value, expected))

    def _get(self, field: str, default: object, required: bool, expected: str) -> tuple[bool, object]:
        self.read.add(field)
        if field not in self.raw or self.raw[field] is None:
            if required:
                self.problem(field, MISSING, expected)
            return False, default
        return True, self.raw[field]

    def string(
        self,
        field: str,
        default: str = "",
        *,
        required: bool = False,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
        expected: str = "a string",
    ) -> str:
        if choices:
            expected = "one of " + ", ".join(repr(c) for c in choices)
        found, value = self._get(field, default, required, expected)
        if not found:
            return default
        if not isinstance(value, str):
            self.problem(field, value, expected)
            return default
        if choices and value not in choices:
            self.problem(field, value, expected)
            return default
        if pattern is not None and not pattern.match(value):
            self.problem(field, value, expected)
            return default
        return value

    def integer(self, field: str, default: int, *, low: int, high: int, required: bool = False) -> int:
        expected = f"an integer from {low} to {high}"
        found, value = self._get(field, default, required, expected)
        if not found:
            return default
        # bool is an int in Python; `true` for a size is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(field, value, expected)
            return default
        return value

    def optional_integer(self, field: str, *, low: int, high: int) -> int | None:
        if self.raw.get(field) is None:
            self.read.add(field)
            return None
        return self.integer(field, low, low=low, high=high)

    def boolean(self, field: str, default: bool) -> bool:
        found, value = self._get(field, default, False, "true or false")
        if not found:
            return default
        if not isinstance(value, bool):
            self.problem(field, value, "true or false")
            return default
        return value

    def string_list(
        self, field: str, *, pattern: re.Pattern[str], expected: str, min_items: int, required: bool = False
    ) -> tuple[str, ...]:
        full_expected = f"a list of at least {min_items} {expected}"
        found, value = self._get(field, (), required, full_expected)
        if not found:
            return ()
        if not isinstance(value, list) or len(value) < min_items:
            self.problem(field, value, full_expected)
            return ()
        bad = [item for item in value if not isinstance(item, str) or not pattern.match(item)]
        if bad:
            self.problem(field, value, f"{full_expected} (bad: {bad!r})")
            return ()
        if len(set(value)) != len(value):
            self.problem(field, value, f"{full_expected} without duplicates")
            return ()
        return tuple(value)

    def objects(
        self, field: str, default: tuple[T, ...], parse: Callable[[str, Mapping[str, Any]], T | None]
    ) -> tuple[T, ...]:
        found, value = self._get(field, default, False, "a list of objects")
        if not found:
            return default
        if not isinstance(value, list):
            self.problem(field, value, "a list of objects")
            return default
        parsed: list[T] = []
        for index, item in enumerate(value):
            item_key = f"{field}[{index}]"
            if not isinstance(item, Mapping):
                self.problem(item_key, item, "an object")
                continue
            result = parse(item_key, item)
            if result is not None:
                parsed.append(result)
        return tuple(parsed)

    def forbid(self, fields: tuple[str, ...], expected: str) -> None:
        """Keys that belong to the other cluster mode: reported if set, so a stack file cannot
        hold settings that silently do nothing."""
        for field in fields:
            self.read.add(field)
            if field in self.raw and self.raw[field] is not None:
                self.problem(field, self.raw[field], expected)

    def choice(self, field: str, default: str, choices: tuple[str, ...]) -> str:
        return self.string(field, default, choices=choices)

    def reject_unknown(self) -> None:
        for field in self.raw:
            if field not in self.read:
                known = ", ".join(sorted(self.read))
                hint = did_you_mean(field, self.read)
                self.problem(field, self.raw[field], f"no such key (known keys: {known}){hint}")


def _network(section: _Section, mode: ClusterMode | None) -> NetworkConfig:
    if mode is None:  # the mode itself is wrong (already reported): nothing else can be judged
        section.read.update(section.raw)
        return NetworkConfig()
    if mode == "create":
        section.forbid(
            _REUSE_NETWORK_KEYS,
            f"no value with {PROJECT}:cluster.mode 'create' (the program builds the VPC, and the database "
            "admits only the cluster's security group)",
        )
        return _network_to_create(section)
    section.forbid(_CREATE_NETWORK_KEYS, f"no value with {PROJECT}:cluster.mode 'reuse' (these shape a created VPC)")
    private_subnet_ids = section.string_list(
        "privateSubnetIds",
        pattern=_SUBNET_ID,
        expected="subnet ids (subnet-…) in different AZs",
        min_items=2,
        required=True,
    )
    return NetworkConfig(
        vpc_id=section.string("vpcId", required=True, pattern=_VPC_ID, expected="a VPC id like vpc-0123456789abcdef0"),
        private_subnet_ids=private_subnet_ids,
        load_balancer_subnets=cluster_addons.load_balancer_subnets(section, private_subnet_ids),
        database_client_security_group_ids=section.string_list(
            "databaseClientSecurityGroupIds",
            pattern=_SG_ID,
            expected="security group ids (sg-…)",
            min_items=1,
            required=True,
        ),
    )


def _network_to_create(section: _Section) -> NetworkConfig:
    d = NetworkConfig()
    cidr = section.string("cidrBlock", d.cidr_block, pattern=_CIDR, expected="an IPv4 CIDR from /16 to /20")
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
        if not 16 <= network.prefixlen <= 20 or not network.is_private:
            raise ValueError(cidr)
    except ValueError:
        section.problem(
            "cidrBlock", cidr, "a private IPv4 network (RFC 1918) from /16 to /20, without host bits, e.g. 10.0.0.0/16"
        )
        cidr = d.cidr_block
    count = section.integer("availabilityZoneCount", d.availability_zone_count, low=2, high=3)
    zones = section.string_list(
        "availabilityZones", pattern=_AZ_NAME, expected="availability zone names (us-east-1a, …)", min_items=2
    )
    if zones and len(zones) != count:
        section.problem(
            "availabilityZones", list(zones), f"exactly availabilityZoneCount ({count}) zone names, or none"
        )
    return NetworkConfig(
        cidr_block=cidr,
        availability_zone_count=count,
        availability_zones=zones,
        nat_gateways=cast(Any, section.choice("natGateways", d.nat_gateways, ("single", "perAz"))),
        flow_log_retention_days=_log_retention(section, "flowLogRetentionDays", d.flow_log_retention_days),
        transit_gateway_id=cluster_access.transit_gateway_id(section),
    )


def _log_retention(section: _Section, field: str, default: int) -> int:
    days = section.integer(field, default, low=1, high=3653)
    if days not in _LOG_RETENTION_DAYS:
        section.problem(field, days, f"a CloudWatch Logs retention: one of {_LOG_RETENTION_DAYS}")
        return default
    return days


def _database(section: _Section) -> DatabaseConfig:
    d = DatabaseConfig()
    instance_class = section.string("instanceClass", d.instance_class, expected="an RDS class like db.t4g.medium")
    memory_gib = section.optional_integer("memoryGib", low=1, high=4096)
    memory_bytes = 0
    if memory_gib is not None:
        memory_bytes = memory_gib * GIB
    else:
        try:
            memory_bytes = instance_memory_bytes(instance_class)
        except UnknownInstanceClassError:
            section.problem(
                "instanceClass",
                instance_class,
                "a known RDS class (db.t3/t4g micro–2xlarge, db.m5–m8g/db.r5–r8g large–24xlarge), "
                f"or set {PROJECT}:database.memoryGib to tune for an unlisted class",
            )
    engine_version = section.string(
        "engineVersion",
        d.engine_version,
        pattern=re.compile(r"^(1[4-9])$"),
        expected="a PostgreSQL major version from 14 to 19 as a string (e.g. '16'); "
        "minor versions follow auto minor upgrades",
    )
    allocated = section.integer("allocatedStorageGib", d.allocated_storage_gib, low=20, high=65536)
    max_allocated = section.integer("maxAllocatedStorageGib", d.max_allocated_storage_gib, low=20, high=65536)
    if max_allocated <= allocated:
        section.problem(
            "maxAllocatedStorageGib",
            max_allocated,
            f"more than allocatedStorageGib ({allocated}) so storage autoscaling can grow",
        )
    pi_days = section.integer(
        "performanceInsightsRetentionDays", d.performance_insights_retention_days, low=7, high=731
    )
    if not (pi_days in (7, 731) or (pi_days % 31 == 0 and pi_days <= 713)):
        section.problem("performanceInsightsRetentionDays", pi_days, _PI_RETENTION_HINT)
    monitoring = section.integer("monitoringIntervalSeconds", d.monitoring_interval_seconds, low=0, high=60)
    if monitoring not in _MONITORING_INTERVALS:
        section.problem("monitoringIntervalSeconds", monitoring, f"one of {_MONITORING_INTERVALS}")
    master_username = section.string(
        "masterUsername",
        d.master_username,
        pattern=_PG_IDENTIFIER,
        expected="a lowercase PostgreSQL identifier (letters, digits, _), not a reserved name",
    )
    if master_username in _RESERVED_PG_USERS:
        section.problem(
            "masterUsername",
            master_username,
            f"a name other than {sorted(_RESERVED_PG_USERS)} (reserved or used by the application role)",
        )
    return DatabaseConfig(
        instance_class=instance_class,
        memory_bytes=memory_bytes,
        engine_version=engine_version,
        allocated_storage_gib=allocated,
        max_allocated_storage_gib=max_allocated,
        multi_az=section.boolean("multiAz", d.multi_az),
        backup_retention_days=section.integer("backupRetentionDays", d.backup_retention_days, low=1, high=35),
        deletion_protection=section.boolean("deletionProtection", d.deletion_protection),
        final_snapshot=section.boolean("finalSnapshot", d.final_snapshot),
        performance_insights_retention_days=pi_days,
        monitoring_interval_seconds=monitoring,
        max_connections=section.optional_integer("maxConnections", low=20, high=5000),
        log_min_duration_statement_ms=section.integer(
            "logMinDurationStatementMs", d.log_min_duration_statement_ms, low=-1, high=3_600_000
        ),
        idle_in_transaction_session_timeout_ms=section.integer(
            "idleInTransactionSessionTimeoutMs", d.idle_in_transaction_session_timeout_ms, low=1000, high=86_400_000
        ),
        database_name=section.string(
            "databaseName", d.database_name, pattern=_PG_IDENTIFIER, expected="a lowercase PostgreSQL identifier"
        ),
        master_username=master_username,
        log_retention_days=_log_retention(section, "logRetentionDays", d.log_retention_days),
    )


def _artifacts(section: _Section) -> ArtifactsConfig:
    d = ArtifactsConfig()
    return ArtifactsConfig(
        access_mode=cast(Any, section.string("accessMode", d.access_mode, choices=("direct", "proxied"))),
        encryption=cast(Any, section.string("encryption", d.encryption, choices=("kms", "s3"))),
        access_logging=section.boolean("accessLogging", d.access_logging),
        prefix=section.string(
            "prefix",
            d.prefix,
            pattern=_S3_PREFIX,
            expected="an S3 key prefix of lowercase segments separated by '/', without leading or trailing '/'",
        ),
        noncurrent_version_expiration_days=section.integer(
            "noncurrentVersionExpirationDays", d.noncurrent_version_expiration_days, low=1, high=3650
        ),
        abort_incomplete_multipart_upload_days=section.integer(
            "abortIncompleteMultipartUploadDays", d.abort_incomplete_multipart_upload_days, low=1, high=365
        ),
        access_log_retention_days=section.integer(
            "accessLogRetentionDays", d.access_log_retention_days, low=1, high=3650
        ),
        force_destroy=section.boolean("forceDestroy", d.force_destroy),
        replication_region=section.string(
            "replicationRegion",
            d.replication_region,
            pattern=_REGION,
            expected="an AWS region like us-west-2 (another region than cluster.region), or unset for no replica",
        ),
    )


def _check_replication(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """A replica in the bucket's own region protects against nothing a region loses."""
    if config.artifacts.replication_region and config.artifacts.replication_region == config.cluster.region:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:artifacts.replicationRegion",
                config.artifacts.replication_region,
                f"another region than {PROJECT}:cluster.region ({config.cluster.region})",
            )
        )


def _cluster(section: _Section) -> ClusterConfig:
    mode_value = section.string("mode", "", required=True, choices=("create", "reuse"))
    mode: ClusterMode | None = cast(Any, mode_value) if mode_value else None
    name = section.string("name", required=True, pattern=_EKS_NAME, expected="the EKS cluster name")
    region = section.string("region", "us-east-1", pattern=_REGION, expected="an AWS region like us-east-1")
    if mode is None:
        section.read.update(section.raw)
        return ClusterConfig(mode="reuse", name=name, region=region)
    if mode == "create":
        section.forbid(
            _REUSE_CLUSTER_KEYS,
            f"no value with {PROJECT}:cluster.mode 'create' (the program reads them from the cluster it creates)",
        )
        return _cluster_to_create(section, name, region)
    section.forbid(
        _CREATE_CLUSTER_KEYS,
        f"no value with {PROJECT}:cluster.mode 'reuse' (an existing cluster, its add-ons and DNS are taken as given)",
    )
    return ClusterConfig(
        mode="reuse",
        name=name,
        region=region,
        endpoint=section.string(
            "endpoint",
            required=True,
            pattern=_EKS_ENDPOINT,
            expected="the cluster's API endpoint, https://….eks.amazonaws.com",
        ),
        certificate_authority_data=section.string(
            "certificateAuthorityData",
            required=True,
            pattern=_BASE64,
            expected="the cluster CA, base64 (as in kubeconfig)",
        ),
        oidc_provider_arn=section.string(
            "oidcProviderArn",
            "arn:aws:iam::000000000000:oidc-provider/invalid",
            required=True,
            pattern=_OIDC_ARN,
            expected="the cluster's IAM OIDC provider ARN, "
            "arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<ID>",
        ),
    )


def _public_access_cidrs(section: _Section) -> tuple[str, ...]:
    expected = (
        f"a list of operators' IPv4 CIDRs, each at most a /{_MIN_PUBLIC_PREFIX} and never 0.0.0.0/0 "
        "(an empty list disables the public endpoint)"
    )
    return cluster_access.cidr_list(section, "publicAccessCidrs", expected, lambda _network: _MIN_PUBLIC_PREFIX)


def _addon_versions(section: _Section) -> dict[str, str]:
    expected = f"an object of add-on name ({', '.join(EKS_ADDONS)}) to version like v1.20.4-eksbuild.1"
    found, value = section._get("addonVersions", {}, False, expected)
    if not found:
        return {}
    if not isinstance(value, Mapping) or not all(
        key in EKS_ADDONS and isinstance(version, str) and _ADDON_VERSION.match(version)
        for key, version in value.items()
    ):
        section.problem("addonVersions", value, expected)
        return {}
    return dict(value)


def _node_group(section: _Section) -> NodeGroupConfig:
    d = NodeGroupConfig()
    section.read.add("nodeGroup")
    nodes = _Section(f"{section.name}.nodeGroup", section.raw.get("nodeGroup"), section.problems)
    instance_types = nodes.string_list(
        "instanceTypes", pattern=_INSTANCE_TYPE, expected="EC2 instance types like m6i.xlarge", min_items=1
    )
    min_size = nodes.integer("minSize", d.min_size, low=1, high=100)
    desired = nodes.integer("desiredSize", max(d.desired_size, min_size), low=1, high=100)
    max_size = nodes.integer("maxSize", max(d.max_size, desired), low=1, high=100)
    if not min_size <= desired <= max_size:
        nodes.problem("desiredSize", desired, f"from minSize ({min_size}) to maxSize ({max_size})")
    config = NodeGroupConfig(
        instance_types=instance_types or d.instance_types,
        capacity_type=cast(Any, nodes.choice("capacityType", d.capacity_type, ("ON_DEMAND", "SPOT"))),
        ami_type=nodes.string(
            "amiType", d.ami_type, pattern=_AMI_TYPE, expected="an EKS AMI type like AL2023_x86_64_STANDARD"
        ),
        desired_size=desired,
        min_size=min_size,
        max_size=max_size,
        disk_size_gib=nodes.integer("diskSizeGib", d.disk_size_gib, low=20, high=2000),
    )
    nodes.reject_unknown()
    return config


def _cluster_to_create(section: _Section, name: str, region: str) -> ClusterConfig:
    d = ClusterConfig(mode="create", name=name)
    return ClusterConfig(
        mode="create",
        name=name,
        region=region,
        kubernetes_version=section.string(
            "kubernetesVersion",
            d.kubernetes_version,
            pattern=_K8S_VERSION,
            expected="a Kubernetes minor version EKS offers, as a string like '1.36'",
        ),
        public_access_cidrs=_public_access_cidrs(section),
        admin_role_arns=section.string_list(
            "adminRoleArns",
            pattern=_PRINCIPAL_ARN,
            expected="IAM role or user ARNs given cluster-admin through EKS access entries (include the role "
            "that runs pulumi)",
            min_items=1,
            required=True,
        ),
        deletion_protection=section.boolean("deletionProtection", d.deletion_protection),
        log_retention_days=_log_retention(section, "logRetentionDays", d.log_retention_days),
        node_group=_node_group(section),
        addon_versions=_addon_versions(section),
        hosted_zone_id=section.string(
            "hostedZoneId",
            required=True,
            pattern=_HOSTED_ZONE_ID,
            expected="the Route 53 public hosted zone id (Z…) holding the tracking host",
        ),
        acme_email=section.string("acmeEmail", "", pattern=_EMAIL, expected="an e-mail address for Let's Encrypt"),
        acme_server=section.string(
            "acmeServer", LETS_ENCRYPT, pattern=_HTTPS_URL, expected="an ACME directory URL (https://…)"
        ),
        deployer_cidrs=cluster_access.deployer_cidrs(section),
        deployer_security_group_ids=cluster_access.deployer_security_group_ids(section),
        preview_role_arns=cluster_access.role_arns(
            section, "previewRoleArns", "of pull-request previews (read-only access entry, no Secrets)"
        ),
        drift_role_arns=cluster_access.role_arns(
            section, "driftRoleArns", "of drift checks (read-only access entry, Secrets included)"
        ),
    )


def _service_account(section: _Section) -> Callable[[str, Mapping[str, Any]], ServiceAccountRef | None]:
    def parse(key: str, item: Mapping[str, Any]) -> ServiceAccountRef | None:
        namespace, name = item.get("namespace"), item.get("name")
        ok = True
        for field, value in (("namespace", namespace), ("name", name)):
            if not isinstance(value, str) or not _K8S_NAME.match(value):
                section.problem(
                    f"{key}.{field}",
                    value if value is not None else MISSING,
                    "a Kubernetes name (lowercase letters, digits, '-')",
                )
                ok = False
        extra = set(item) - {"namespace", "name"}
        if extra:
            section.problem(f"{key}", dict(item), "only the keys namespace and name")
            ok = False
        return ServiceAccountRef(str(namespace), str(name)) if ok else None

    return parse


def _principal(section: _Section) -> Callable[[str, Mapping[str, Any]], ExtraPrincipal | None]:
    def parse(key: str, item: Mapping[str, Any]) -> ExtraPrincipal | None:
        kind, identifier = item.get("type"), item.get("identifier")
        if kind == "Service" and isinstance(identifier, str) and _SERVICE_PRINCIPAL.match(identifier):
            source_arn = security_keys.service_source_arn(section, key, identifier, item)
            return ExtraPrincipal("Service", identifier, source_arn) if source_arn else None
        if kind == "AWS" and isinstance(identifier, str) and _ROLE_ARN.match(identifier) and "sourceArn" not in item:
            return ExtraPrincipal("AWS", identifier)
        section.problem(
            key,
            dict(item),
            "{type: Service, identifier: <service>.amazonaws.com, sourceArn: <ARN pattern>} or "
            "{type: AWS, identifier: <role/user ARN or 12-digit account>}; never '*'",
        )
        return None

    return parse


def _training(section: _Section) -> TrainingConfig:
    d = TrainingConfig()
    accounts = section.objects("serviceAccounts", d.service_accounts, _service_account(section))
    if section.present and "serviceAccounts" in section.raw and not accounts:
        section.problem("serviceAccounts", section.raw.get("serviceAccounts"), "at least one {namespace, name}")
    return TrainingConfig(
        service_accounts=accounts,
        extra_principals=section.objects("extraPrincipals", d.extra_principals, _principal(section)),
    )


def _ingress(section: _Section) -> IngressConfig:
    d = IngressConfig()
    class_name = section.string("className", d.class_name, choices=("nginx", "alb"))
    issuer = section.string("certManagerIssuer", "", pattern=_K8S_NAME, expected="a cert-manager ClusterIssuer name")
    certificate = section.string(
        "acmCertificateArn",
        "",
        pattern=_ACM_ARN,
        expected="an ACM certificate ARN (arn:aws:acm:<region>:<acct>:certificate/<id>)",
    )
    if class_name == "nginx" and not issuer:
        section.problem("certManagerIssuer", MISSING, "a cert-manager ClusterIssuer name when className is 'nginx'")
    # acmCertificateArn with alb depends on the cluster mode: see _check_cluster_mode.
    return IngressConfig(
        class_name=cast(Any, class_name),
        cert_manager_issuer=issuer,
        acm_certificate_arn=certificate,
        scheme=cast(Any, section.string("scheme", d.scheme, choices=("internal", "internet-facing"))),
        controller_namespace=section.string(
            "controllerNamespace", d.controller_namespace, pattern=_K8S_NAME, expected="a Kubernetes namespace name"
        ),
    )


def _server(section: _Section) -> ServerConfig:
    d = ServerConfig()
    section.read.add("ingress")
    ingress = _Section(f"{section.name}.ingress", section.raw.get("ingress"), section.problems)
    replicas = section.integer("replicas", d.replicas, low=1, high=50)
    max_replicas = section.integer("maxReplicas", max(replicas, d.max_replicas), low=1, high=50)
    if max_replicas < replicas:
        section.problem("maxReplicas", max_replicas, f"at least replicas ({replicas})")
    config = ServerConfig(
        namespace=section.string("namespace", d.namespace, pattern=_K8S_NAME, expected="a Kubernetes namespace name"),
        service_account=section.string(
            "serviceAccount", d.service_account, pattern=_K8S_NAME, expected="a Kubernetes service account name"
        ),
        image=section.string(
            "image",
            required=True,
            pattern=_IMAGE_BY_DIGEST,
            expected="the tracking-server image by digest, <registry>/<repo>[:tag]@sha256:<64 hex> "
            "(CI builds it from images/tracking-server/Dockerfile)",
        ),
        host=section.string(
            "host", required=True, pattern=_DNS_NAME, expected="a lowercase DNS name like mlflow.example.com"
        ),
        ingress=_ingress(ingress),
        replicas=replicas,
        max_replicas=max_replicas,
        workers=section.integer("workers", d.workers, low=1, high=16),
        in_flight_per_worker=section.integer("inFlightPerWorker", d.in_flight_per_worker, low=1, high=64),
        auth_cache_ttl_seconds=section.integer("authCacheTtlSeconds", d.auth_cache_ttl_seconds, low=0, high=3600),
        peak_requests_per_second=section.integer(
            "peakRequestsPerSecond", d.peak_requests_per_second, low=0, high=1_000_000
        ),
        peak_metrics_per_second=section.integer(
            "peakMetricsPerSecond", d.peak_metrics_per_second, low=0, high=100_000_000
        ),
        cpu=section.string("cpu", d.cpu, pattern=_CPU, expected="a CPU quantity like 500m or 2"),
        memory=section.string("memory", d.memory, pattern=_MEMORY, expected="a memory quantity like 512Mi or 2Gi"),
        tmp_size_gib=section.integer("tmpSizeGib", d.tmp_size_gib, low=1, high=500),
        monitoring_namespace=section.string(
            "monitoringNamespace", d.monitoring_namespace, pattern=_K8S_NAME, expected="a Kubernetes namespace name"
        ),
        vpc_cidr=section.string("vpcCidr", d.vpc_cidr, pattern=_CIDR, expected="an IPv4 CIDR like 10.0.0.0/16"),
    )
    ingress.reject_unknown()
    return config


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_CRON_FIELD = r"(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?(,(\*|\d{1,2}(-\d{1,2})?)(/\d{1,2})?)*"
_CRON = re.compile(rf"^{_CRON_FIELD}( {_CRON_FIELD}){{4}}$")
_MIN_GC_AGE_SECONDS = 86_400
"""Below a day, a run deleted by mistake could be gone before anyone notices."""


def _monitoring(section: _Section) -> MonitoringConfig:
    d = MonitoringConfig()
    expected = "an object of Kubernetes label keys to values, e.g. {app.kubernetes.io/name: prometheus}"
    found, labels = section._get("scraperPodLabels", d.scraper_pod_labels, False, expected)
    if found and (
        not isinstance(labels, Mapping)
        or not labels
        or not all(
            isinstance(k, str) and _LABEL_KEY.match(k) and isinstance(v, str) and _LABEL_VALUE.match(v)
            for k, v in labels.items()
        )
    ):
        section.problem("scraperPodLabels", labels, expected)
        labels = d.scraper_pod_labels
    return MonitoringConfig(
        prometheus_operator=section.boolean("prometheusOperator", d.prometheus_operator),
        scraper_pod_labels=dict(cast(Mapping[str, str], labels)),
        scrape_interval_seconds=section.integer("scrapeIntervalSeconds", d.scrape_interval_seconds, low=10, high=300),
        alarm_emails=section.string_list(
            "alarmEmails", pattern=_EMAIL, expected="e-mail addresses for the alarm topic", min_items=0
        ),
        service_monitor_labels=cluster_addons.service_monitor_labels(section),
    )


def _garbage_collection(section: _Section) -> GarbageCollectionConfig:
    d = GarbageCollectionConfig()
    schedule = section.string(
        "schedule", d.schedule, pattern=_CRON, expected="a five-field cron expression like '17 3 * * *' (UTC)"
    )
    older_than = section.string("olderThan", d.older_than, expected="an age like 30d or 7d12h")
    try:
        if age_seconds(older_than) < _MIN_GC_AGE_SECONDS:
            section.problem("olderThan", older_than, "an age of at least 1d (e.g. 30d)")
            older_than = d.older_than
    except ValueError:
        section.problem("olderThan", older_than, "an age like 30d or 7d12h (days, hours, minutes, seconds)")
        older_than = d.older_than
    return GarbageCollectionConfig(schedule=schedule, older_than=older_than)


def _rotation(section: _Section) -> RotationConfig:
    d = RotationConfig()
    return RotationConfig(
        admin_password=section.integer("adminPassword", d.admin_password, low=0, high=9999),
        database_password=section.integer("databasePassword", d.database_password, low=0, high=9999),
        flask_secret_key=section.integer("flaskSecretKey", d.flask_secret_key, low=0, high=9999),
    )


def _check_capacity(config: StackConfig, problems: list[ConfigProblem]) -> None:
    """Pools and admission limits must fit the database's rendered max_connections."""
    if not config.database.memory_bytes:
        return  # the instance class was already reported
    max_connections = max_connections_for(
        PostgresTuning(memory_bytes=config.database.memory_bytes, max_connections=config.database.max_connections)
    )
    server = config.server
    try:
        plan_pools(CapacityInputs(server.max_replicas, server.workers, server.in_flight_per_worker, max_connections))
    except PoolSizingError as error:
        problems.append(
            ConfigProblem(f"{PROJECT}:server.maxReplicas", server.max_replicas, f"a size that fits: {error}")
        )
    needed = replicas_for_declared_peak(server)
    if needed is not None and needed.replicas_needed > server.max_replicas:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:server.maxReplicas",
                server.max_replicas,
                f"at least {needed.replicas_needed} to carry the declared peak "
                f"({server.peak_requests_per_second} requests/s, {server.peak_metrics_per_second} metrics/s) at "
                f"{needed.requests_per_s_per_replica:.0f} requests/s and {needed.metrics_per_s_per_replica:,.0f} "
                f"metrics/s per replica of cpu {server.cpu} (docs/capacity.md), or more cpu per replica",
            )
        )


def replicas_for_declared_peak(server: ServerConfig) -> CapacityEstimate | None:
    """The capacity estimate for the stack's declared peak, or None if it declares none."""
    if not (server.peak_requests_per_second or server.peak_metrics_per_second):
        return None
    return estimate(
        Demand(server.peak_requests_per_second, server.peak_metrics_per_second),
        ReplicaShape(cpu_cores(server.cpu), server.workers),
    )


def _check_cluster_mode(config: StackConfig, values: Mapping[str, object], problems: list[ConfigProblem]) -> None:
    """Settings of other sections that depend on whether the cluster is created or reused."""
    ingress = config.server.ingress
    raw_server = values.get("server")
    raw_ingress = raw_server.get("ingress") if isinstance(raw_server, Mapping) else None
    given_certificate = isinstance(raw_ingress, Mapping) and raw_ingress.get("acmCertificateArn") is not None
    if config.cluster.mode == "reuse":
        if ingress.class_name == "alb" and not given_certificate:
            problems.append(
                ConfigProblem(
                    f"{PROJECT}:server.ingress.acmCertificateArn",
                    MISSING,
                    "an ACM certificate ARN when className is 'alb' and the cluster is reused",
                )
            )
        return
    if given_certificate:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:server.ingress.acmCertificateArn",
                raw_ingress.get("acmCertificateArn") if isinstance(raw_ingress, Mapping) else None,
                f"no value with {PROJECT}:cluster.mode 'create' (the program issues the certificate, DNS-validated "
                f"in {PROJECT}:cluster.hostedZoneId)",
            )
        )
    if ingress.class_name == "nginx" and not config.cluster.acme_email:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:cluster.acmeEmail",
                MISSING,
                "an e-mail address for the Let's Encrypt account of the cert-manager ClusterIssuer, when "
                "server.ingress.className is 'nginx' and the cluster is created",
            )
        )
    if config.server.vpc_cidr != config.network.cidr_block:
        problems.append(
            ConfigProblem(
                f"{PROJECT}:server.vpcCidr",
                config.server.vpc_cidr,
                f"the created VPC's CIDR, {PROJECT}:network.cidrBlock ({config.network.cidr_block}): "
                "NetworkPolicies admit the ALB and reach the database through it",
            )
        )


def _tags(raw: object, problems: list[ConfigProblem]) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and _TAG_KEY.match(k) and isinstance(v, str) and len(v) <= 256 for k, v in raw.items()
    ):
        problems.append(
            ConfigProblem(f"{PROJECT}:tags", raw, "an object of string tag keys (≤128 chars) to string values (≤256)")
        )
        return {}
    return dict(raw)


def load_stack_config(
    values: Mapping[str, object], *, other_namespaces: Mapping[str, object] | None = None
) -> StackConfig:
    """Build the typed config from raw values keyed by section (``database``, ``network``, …).

    ``values`` may also hold keys of other namespaces' style (already stripped); any key of
    our namespace that is not a known section is reported, so a typo cannot silently fall
    back to a default. ``other_namespaces`` are the stack's keys outside ours, by full name
    (``aws:region``): given by ``pulumi preview`` and ``stackconfig check`` alike, they are
    checked by :func:`stackconfig.namespaces.namespace_problems` (unknown namespaces, the
    region rule).
    """
    problems: list[ConfigProblem] = []
    for key in values:
        if key not in SECTIONS:
            hint = did_you_mean(key, SECTIONS)
            problems.append(
                ConfigProblem(f"{PROJECT}:{key}", values[key], f"no such key (known keys: {', '.join(SECTIONS)}){hint}")
            )
    sections = {
        name: _Section(name, values.get(name), problems, required=name == "cluster")
        for name in SECTIONS
        if name not in ("tags", "kubernetes", "teams")
    }
    cluster = _cluster(sections["cluster"])
    mode = cluster.mode if sections["cluster"].raw.get("mode") in ("create", "reuse") else None
    config = StackConfig(
        cluster=cluster,
        network=_network(sections["network"], mode),
        database=_database(sections["database"]),
        artifacts=_artifacts(sections["artifacts"]),
        training=_training(sections["training"]),
        server=_server(sections["server"]),
        rotation=_rotation(sections["rotation"]),
        tags=_tags(values.get("tags"), problems),
        monitoring=_monitoring(sections["monitoring"]),
        garbage_collection=_garbage_collection(sections["garbageCollection"]),
        kubernetes=cluster_access.kubernetes_switch(values.get("kubernetes"), problems),
        kms=security_keys.kms(sections["kms"]),
        teams=parse_teams(values.get("teams"), problems),
    )
    if mode is not None:
        _check_cluster_mode(config, values, problems)
        cluster_access.check_cluster_access(config, problems)
        cluster_addons.check(config, problems)
    _check_replication(config, problems)
    for section in sections.values():
        section.reject_unknown()
    if other_namespaces is not None:
        problems += namespace_problems(config, other_namespaces)
    if not problems:
        _check_capacity(config, problems)
        cluster_addons.check_node_capacity(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def load_stack_file(path: Path) -> dict[str, object]:
    """Our namespace's values from a ``Pulumi.<stack>.yaml``, keyed by section.

    ``secure:`` values (Pulumi secrets) are returned as the placeholder ``"<secret>"``: the
    schema never holds secrets, so they only matter to tests that feed provider config.
    """
    document = yaml.safe_load(path.read_text()) or {}
    config = document.get("config") or {}
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in config.items() if key.startswith(prefix)}

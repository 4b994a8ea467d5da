"""Parse and validate raw stack config values into :class:`StackConfig`.

Every problem is collected with its fully qualified key (``mlflow-platform:database.instanceClass``),
the value given and what is allowed, and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import yaml

from rendering.instance_classes import UnknownInstanceClassError, instance_memory_bytes
from rendering.pools import CapacityInputs, PoolSizingError, plan_pools
from rendering.postgres import PostgresTuning, max_connections_for
from rendering.units import GIB

from .errors import MISSING, ConfigError, ConfigProblem
from .schema import (
    ArtifactsConfig,
    ClusterConfig,
    DatabaseConfig,
    ExtraPrincipal,
    IngressConfig,
    NetworkConfig,
    ServerConfig,
    ServiceAccountRef,
    StackConfig,
    TrainingConfig,
)

PROJECT = "mlflow-platform"
SECTIONS = ("network", "cluster", "database", "artifacts", "training", "server", "tags")

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

    def reject_unknown(self) -> None:
        for field in self.raw:
            if field not in self.read:
                known = ", ".join(sorted(self.read))
                self.problem(field, self.raw[field], f"no such key (known keys: {known})")


def _network(section: _Section) -> NetworkConfig:
    return NetworkConfig(
        vpc_id=section.string("vpcId", required=True, pattern=_VPC_ID, expected="a VPC id like vpc-0123456789abcdef0"),
        private_subnet_ids=section.string_list(
            "privateSubnetIds",
            pattern=_SUBNET_ID,
            expected="subnet ids (subnet-…) in different AZs",
            min_items=2,
            required=True,
        ),
        database_client_security_group_ids=section.string_list(
            "databaseClientSecurityGroupIds",
            pattern=_SG_ID,
            expected="security group ids (sg-…)",
            min_items=1,
            required=True,
        ),
    )


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
    )


def _cluster(section: _Section) -> ClusterConfig:
    return ClusterConfig(
        name=section.string("name", required=True, pattern=_EKS_NAME, expected="the EKS cluster name"),
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
        region=section.string("region", "us-east-1", pattern=_REGION, expected="an AWS region like us-east-1"),
        oidc_provider_arn=section.string(
            "oidcProviderArn",
            "arn:aws:iam::000000000000:oidc-provider/invalid",
            required=True,
            pattern=_OIDC_ARN,
            expected="the cluster's IAM OIDC provider ARN, "
            "arn:aws:iam::<account>:oidc-provider/oidc.eks.<region>.amazonaws.com/id/<ID>",
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
            return ExtraPrincipal("Service", identifier)
        if kind == "AWS" and isinstance(identifier, str) and _ROLE_ARN.match(identifier):
            return ExtraPrincipal("AWS", identifier)
        section.problem(
            key,
            dict(item),
            "{type: Service, identifier: <service>.amazonaws.com} or "
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
    if class_name == "alb" and not certificate:
        section.problem("acmCertificateArn", MISSING, "an ACM certificate ARN when className is 'alb'")
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


def load_stack_config(values: Mapping[str, object]) -> StackConfig:
    """Build the typed config from raw values keyed by section (``database``, ``network``, …).

    ``values`` may also hold keys of other namespaces' style (already stripped); any key of
    our namespace that is not a known section is reported, so a typo cannot silently fall
    back to a default.
    """
    problems: list[ConfigProblem] = []
    for key in values:
        if key not in SECTIONS:
            problems.append(
                ConfigProblem(f"{PROJECT}:{key}", values[key], f"no such key (known keys: {', '.join(SECTIONS)})")
            )
    sections = {
        name: _Section(name, values.get(name), problems, required=name in ("network", "cluster"))
        for name in SECTIONS
        if name != "tags"
    }
    config = StackConfig(
        network=_network(sections["network"]),
        cluster=_cluster(sections["cluster"]),
        database=_database(sections["database"]),
        artifacts=_artifacts(sections["artifacts"]),
        training=_training(sections["training"]),
        server=_server(sections["server"]),
        tags=_tags(values.get("tags"), problems),
    )
    for section in sections.values():
        section.reject_unknown()
    if not problems:
        _check_capacity(config, problems)
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

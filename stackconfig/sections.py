"""One reader per section: the declared keys (``Section.simple``) plus the rules that a single key's
declaration cannot say, each a named step (a default derived from another key, a check between two
keys of the section, a structured value). Rules between sections are in ``stackconfig.checks``."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

from rendering.gc import age_seconds
from rendering.instance_classes import UnknownInstanceClassError, instance_memory_bytes
from rendering.units import GIB

from . import cluster_access, cluster_addons, security_keys
from . import patterns as p
from .declare import ClusterMode, declared
from .errors import MISSING
from .namespaces import PROJECT
from .reader import Section
from .schema import (
    DEFAULT_SCRAPER_POD_LABELS,
    EKS_ADDONS,
    ArtifactsConfig,
    ClusterConfig,
    DatabaseConfig,
    ExtraPrincipal,
    GarbageCollectionConfig,
    IngressConfig,
    KmsConfig,
    MonitoringConfig,
    NetworkConfig,
    NodeGroupConfig,
    RotationConfig,
    ServerConfig,
    ServiceAccountRef,
    TrainingConfig,
)

_RESERVED_PG_USERS = {"postgres", "admin", "rdsadmin", "root", "mlflow"}
_MIN_GC_AGE_SECONDS = 86_400
"""Below a day, a run deleted by mistake could be gone before anyone notices."""


def mode_keys(cls: type[Any], mode: ClusterMode) -> tuple[str, ...]:
    """The keys of ``cls`` that belong only to cluster mode ``mode`` (refused in the other)."""
    return tuple(item.name for item in declared(cls) if item.key.mode == mode)


def network(section: Section, mode: ClusterMode | None) -> NetworkConfig:
    if mode is None:  # the mode itself is wrong (already reported): nothing else can be judged
        section.read.update(section.raw)
        return NetworkConfig()
    if mode == "create":
        section.forbid(
            mode_keys(NetworkConfig, "reuse"),
            f"no value with {PROJECT}:cluster.mode 'create' (the program builds the VPC, and the database "
            "admits only the cluster's security group)",
        )
        values = section.simple(NetworkConfig, "create")
        _check_vpc_cidr(section, values)
        _check_zone_count(section, values)
        return NetworkConfig(**values)
    section.forbid(
        mode_keys(NetworkConfig, "create"), f"no value with {PROJECT}:cluster.mode 'reuse' (these shape a created VPC)"
    )
    values = section.simple(NetworkConfig, "reuse")
    values["load_balancer_subnets"] = cluster_addons.load_balancer_subnets(section, values["private_subnet_ids"])
    return NetworkConfig(**values)


def _check_vpc_cidr(section: Section, values: dict[str, Any]) -> None:
    """The created VPC must be a private network the subnet layout fits in."""
    cidr = values["cidr_block"]
    try:
        network = ipaddress.IPv4Network(cidr, strict=True)
        if not 16 <= network.prefixlen <= 20 or not network.is_private:
            raise ValueError(cidr)
    except ValueError:
        section.problem(
            "cidrBlock", cidr, "a private IPv4 network (RFC 1918) from /16 to /20, without host bits, e.g. 10.0.0.0/16"
        )
        values["cidr_block"] = NetworkConfig().cidr_block


def _check_zone_count(section: Section, values: dict[str, Any]) -> None:
    zones, count = values["availability_zones"], values["availability_zone_count"]
    if zones and len(zones) != count:
        section.problem(
            "availabilityZones", list(zones), f"exactly availabilityZoneCount ({count}) zone names, or none"
        )


def database(section: Section) -> DatabaseConfig:
    values = section.simple(DatabaseConfig)
    values["memory_bytes"] = _memory_bytes(section, values["instance_class"])
    if values["max_allocated_storage_gib"] <= values["allocated_storage_gib"]:
        section.problem(
            "maxAllocatedStorageGib",
            values["max_allocated_storage_gib"],
            f"more than allocatedStorageGib ({values['allocated_storage_gib']}) so storage autoscaling can grow",
        )
    if values["master_username"] in _RESERVED_PG_USERS:
        section.problem(
            "masterUsername",
            values["master_username"],
            f"a name other than {sorted(_RESERVED_PG_USERS)} (reserved or used by the application role)",
        )
    return DatabaseConfig(**values)


def _memory_bytes(section: Section, instance_class: str) -> int:
    """``memoryGib`` when given, else the instance class's memory (an unknown class needs it)."""
    memory_gib = section.optional(DatabaseConfig, "memory_bytes")
    if memory_gib is not None:
        return memory_gib * GIB
    try:
        return instance_memory_bytes(instance_class)
    except UnknownInstanceClassError:
        section.problem(
            "instanceClass",
            instance_class,
            "a known RDS class (db.t3/t4g micro–2xlarge, db.m5–m8g/db.r5–r8g large–24xlarge), "
            f"or set {PROJECT}:database.memoryGib to tune for an unlisted class",
        )
        return 0


def artifacts(section: Section) -> ArtifactsConfig:
    return ArtifactsConfig(**section.simple(ArtifactsConfig))


def cluster(section: Section) -> ClusterConfig:
    common = section.simple(ClusterConfig)
    mode: ClusterMode | None = common["mode"] or None
    if mode is None:
        section.read.update(section.raw)
        return ClusterConfig(**{**common, "mode": "reuse"})
    other = "reuse" if mode == "create" else "create"
    if mode == "create":
        section.forbid(
            mode_keys(ClusterConfig, other),
            f"no value with {PROJECT}:cluster.mode 'create' (the program reads them from the cluster it creates)",
        )
        return ClusterConfig(
            **common,
            **section.simple(ClusterConfig, "create"),
            public_access_cidrs=_public_access_cidrs(section),
            node_group=_node_group(section),
            addon_versions=_addon_versions(section),
            deployer_cidrs=cluster_access.deployer_cidrs(section),
        )
    section.forbid(
        mode_keys(ClusterConfig, other),
        f"no value with {PROJECT}:cluster.mode 'reuse' (an existing cluster, its add-ons and DNS are taken as given)",
    )
    return ClusterConfig(**common, **section.simple(ClusterConfig, "reuse"))


def _public_access_cidrs(section: Section) -> tuple[str, ...]:
    expected = (
        f"a list of operators' IPv4 CIDRs, each at most a /{cluster_access.MIN_PUBLIC_PREFIX} and never 0.0.0.0/0 "
        "(an empty list disables the public endpoint)"
    )
    return cluster_access.cidr_list(
        section, "publicAccessCidrs", expected, lambda _network: cluster_access.MIN_PUBLIC_PREFIX
    )


def _addon_versions(section: Section) -> dict[str, str]:
    expected = f"an object of add-on name ({', '.join(EKS_ADDONS)}) to version like v1.20.4-eksbuild.1"
    found, value = section._get("addonVersions", {}, False, expected)
    if not found:
        return {}
    if not isinstance(value, Mapping) or not all(
        key in EKS_ADDONS and isinstance(version, str) and p.ADDON_VERSION.match(version)
        for key, version in value.items()
    ):
        section.problem("addonVersions", value, expected)
        return {}
    return dict(value)


def _node_group(section: Section) -> NodeGroupConfig:
    """Sizes default from each other: desired at least min, max at least desired."""
    d = NodeGroupConfig()
    section.read.add("nodeGroup")
    nodes = Section(f"{section.name}.nodeGroup", section.raw.get("nodeGroup"), section.problems)
    values = nodes.simple(NodeGroupConfig)
    min_size = values["min_size"]
    desired = nodes.declared(NodeGroupConfig, "desired_size", max(d.desired_size, min_size))
    max_size = nodes.declared(NodeGroupConfig, "max_size", max(d.max_size, desired))
    if not min_size <= desired <= max_size:
        nodes.problem("desiredSize", desired, f"from minSize ({min_size}) to maxSize ({max_size})")
    nodes.reject_unknown()
    return NodeGroupConfig(**{**values, "desired_size": desired, "max_size": max_size})


def training(section: Section) -> TrainingConfig:
    d = TrainingConfig()
    accounts = section.objects("serviceAccounts", d.service_accounts, _service_account(section))
    if section.present and "serviceAccounts" in section.raw and not accounts:
        section.problem("serviceAccounts", section.raw.get("serviceAccounts"), "at least one {namespace, name}")
    return TrainingConfig(
        service_accounts=accounts,
        extra_principals=section.objects("extraPrincipals", d.extra_principals, _principal(section)),
    )


def _service_account(section: Section) -> Callable[[str, Mapping[str, Any]], ServiceAccountRef | None]:
    def parse(key: str, item: Mapping[str, Any]) -> ServiceAccountRef | None:
        namespace, name = item.get("namespace"), item.get("name")
        ok = True
        for field, value in (("namespace", namespace), ("name", name)):
            if not isinstance(value, str) or not p.K8S_NAME.match(value):
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


def _principal(section: Section) -> Callable[[str, Mapping[str, Any]], ExtraPrincipal | None]:
    def parse(key: str, item: Mapping[str, Any]) -> ExtraPrincipal | None:
        kind, identifier = item.get("type"), item.get("identifier")
        if kind == "Service" and isinstance(identifier, str) and p.SERVICE_PRINCIPAL.match(identifier):
            source_arn = security_keys.service_source_arn(section, key, identifier, item)
            return ExtraPrincipal("Service", identifier, source_arn) if source_arn else None
        if kind == "AWS" and isinstance(identifier, str) and p.ROLE_ARN.match(identifier) and "sourceArn" not in item:
            return ExtraPrincipal("AWS", identifier)
        section.problem(
            key,
            dict(item),
            "{type: Service, identifier: <service>.amazonaws.com, sourceArn: <ARN pattern>} or "
            "{type: AWS, identifier: <role/user ARN or 12-digit account>}; never '*'",
        )
        return None

    return parse


def _ingress(section: Section) -> IngressConfig:
    values = section.simple(IngressConfig)
    if values["class_name"] == "nginx" and not values["cert_manager_issuer"]:
        section.problem("certManagerIssuer", MISSING, "a cert-manager ClusterIssuer name when className is 'nginx'")
    # acmCertificateArn with alb depends on the cluster mode: see checks.cluster_mode.
    return IngressConfig(**values)


def server(section: Section) -> ServerConfig:
    """``maxReplicas`` defaults to ``replicas`` (at least the declared default) and may not be below it."""
    d = ServerConfig()
    section.read.add("ingress")
    ingress = Section(f"{section.name}.ingress", section.raw.get("ingress"), section.problems)
    values = section.simple(ServerConfig)
    replicas = values["replicas"]
    max_replicas = section.declared(ServerConfig, "max_replicas", max(replicas, d.max_replicas))
    if max_replicas < replicas:
        section.problem("maxReplicas", max_replicas, f"at least replicas ({replicas})")
    config = ServerConfig(**values, ingress=_ingress(ingress), max_replicas=max_replicas)
    ingress.reject_unknown()
    return config


def monitoring(section: Section) -> MonitoringConfig:
    expected = "an object of Kubernetes label keys to values, e.g. {app.kubernetes.io/name: prometheus}"
    found, labels = section._get("scraperPodLabels", DEFAULT_SCRAPER_POD_LABELS, False, expected)
    if found and not _labels(labels):
        section.problem("scraperPodLabels", labels, expected)
        labels = DEFAULT_SCRAPER_POD_LABELS
    assert isinstance(labels, Mapping)
    return MonitoringConfig(
        **section.simple(MonitoringConfig),
        scraper_pod_labels={str(k): str(v) for k, v in labels.items()},
        service_monitor_labels=cluster_addons.service_monitor_labels(section),
    )


def _labels(value: object) -> bool:
    """A non-empty object of Kubernetes label keys to label values."""
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(
            isinstance(k, str) and p.LABEL_KEY.match(k) and isinstance(v, str) and p.LABEL_VALUE.match(v)
            for k, v in value.items()
        )
    )


def garbage_collection(section: Section) -> GarbageCollectionConfig:
    """``olderThan`` is an age of at least a day."""
    values = section.simple(GarbageCollectionConfig)
    older_than, default = values["older_than"], GarbageCollectionConfig().older_than
    try:
        if age_seconds(older_than) < _MIN_GC_AGE_SECONDS:
            section.problem("olderThan", older_than, "an age of at least 1d (e.g. 30d)")
            values["older_than"] = default
    except ValueError:
        section.problem("olderThan", older_than, "an age like 30d or 7d12h (days, hours, minutes, seconds)")
        values["older_than"] = default
    return GarbageCollectionConfig(**values)


def rotation(section: Section) -> RotationConfig:
    return RotationConfig(**section.simple(RotationConfig))


def kms(section: Section) -> KmsConfig:
    return KmsConfig(**section.simple(KmsConfig))

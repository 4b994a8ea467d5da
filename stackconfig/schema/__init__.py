"""The stack configuration schema: every stack key declared once, on its field.

A field's annotation is the key's type, its default the key's default (the secure,
production-leaning choice; ``Pulumi.dev.yaml`` relaxes what a throwaway stack does not need) and
its ``metadata=key(…)`` the rest (``stackconfig.declare``): range or pattern, description, cluster
mode. ``stackconfig.reader`` reads simple keys from it and ``scripts/reference_docs.py`` writes
``docs/configuration.md`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rendering.mlflow_server import ArtifactAccessMode
from rendering.nlb import LoadBalancerScheme
from rendering.ownership import TeamOwnership

from .. import patterns as p
from ..declare import ClusterMode, key
from .cluster import (
    EKS_ADDONS,
    LETS_ENCRYPT,
    CapacityType,
    ClusterConfig,
    LoadBalancerSubnet,
    NatGateways,
    NetworkConfig,
    NodeGroupConfig,
)
from .data import ArtifactsConfig, BucketEncryption, DatabaseConfig
from .server import (
    DEFAULT_SCRAPER_POD_LABELS,
    ExtraPrincipal,
    GarbageCollectionConfig,
    IngressClass,
    IngressConfig,
    MonitoringConfig,
    ServerConfig,
    ServiceAccountRef,
    TrainingConfig,
)

__all__ = [  # one definition each; ArtifactAccessMode and LoadBalancerScheme are rendering's
    "DEFAULT_SCRAPER_POD_LABELS",
    "EKS_ADDONS",
    "LETS_ENCRYPT",
    "ArtifactAccessMode",
    "ArtifactsConfig",
    "BucketEncryption",
    "CapacityType",
    "ClusterConfig",
    "ClusterMode",
    "DatabaseConfig",
    "ExtraPrincipal",
    "GarbageCollectionConfig",
    "IngressClass",
    "IngressConfig",
    "KmsConfig",
    "LoadBalancerScheme",
    "LoadBalancerSubnet",
    "MonitoringConfig",
    "NatGateways",
    "NetworkConfig",
    "NodeGroupConfig",
    "RotationConfig",
    "ServerConfig",
    "ServiceAccountRef",
    "StackConfig",
    "TrainingConfig",
]

_GENERATION = "Generation of the credential: raising it rotates it (docs/rotation.md)."


@dataclass(frozen=True)
class RotationConfig:
    """Generation of each generated credential: raising one in the stack file rotates it.

    0 is the credential first generated; every change regenerates it (a Pulumi ``random``
    resource keyed on the generation) and ``docs/rotation.md`` says what each one rolls.
    """

    admin_password: int = field(default=0, metadata=key(f"MLflow's `admin` user. {_GENERATION}", low=0, high=9999))
    database_password: int = field(
        default=0,
        metadata=key(
            f"The application role's password (PgBouncer and the server), not the RDS master's. {_GENERATION}",
            low=0,
            high=9999,
        ),
    )
    flask_secret_key: int = field(
        default=0, metadata=key(f"The server's Flask secret key (CSRF). {_GENERATION}", low=0, high=9999)
    )


@dataclass(frozen=True)
class KmsConfig:
    """Who administers the stack's customer KMS keys (artifacts, database, EKS Secrets, logs)."""

    administrator_arns: tuple[str, ...] = field(
        default=(),
        metadata=key(
            "IAM roles/users that manage (never use) the keys; empty: the principal running `pulumi up`. The "
            "deploying principal is always added when it is not listed (with a warning): KMS refuses a key "
            "policy that would lock out the principal setting it (docs/keys-and-logs.md).",
            pattern=p.PRINCIPAL_ARN,
            expected="IAM role or user ARNs that administer (never use) the stack's KMS keys",
            min_items=1,
        ),
    )


_SECTION = "The section's keys are below."


@dataclass(frozen=True)
class StackConfig:
    """The whole ``mlflow-platform`` namespace of a stack file, one field per section."""

    cluster: ClusterConfig = field(metadata=key(f"The EKS cluster. {_SECTION}", required=True, explicit=True))
    network: NetworkConfig = field(default_factory=NetworkConfig, metadata=key(f"The VPC. {_SECTION}", explicit=True))
    database: DatabaseConfig = field(
        default_factory=DatabaseConfig, metadata=key(f"RDS PostgreSQL. {_SECTION}", explicit=True)
    )
    artifacts: ArtifactsConfig = field(
        default_factory=ArtifactsConfig, metadata=key(f"The artifact bucket. {_SECTION}", explicit=True)
    )
    training: TrainingConfig = field(
        default_factory=TrainingConfig, metadata=key(f"The training role's trust. {_SECTION}", explicit=True)
    )
    server: ServerConfig = field(
        default_factory=ServerConfig, metadata=key(f"The tracking server. {_SECTION}", explicit=True)
    )
    rotation: RotationConfig = field(
        default_factory=RotationConfig, metadata=key(f"Credential generations. {_SECTION}", explicit=True)
    )
    tags: dict[str, str] = field(
        default_factory=dict,
        metadata=key(
            "Extra tags on every resource (besides `project` and `stack`).",
            explicit=True,
            allowed="an object of string tag keys (≤ 128 characters) to string values (≤ 256)",
        ),
    )
    monitoring: MonitoringConfig = field(
        default_factory=MonitoringConfig, metadata=key(f"Metrics and alarms. {_SECTION}", explicit=True)
    )
    garbage_collection: GarbageCollectionConfig = field(
        default_factory=GarbageCollectionConfig, metadata=key(f"The `mlflow gc` CronJob. {_SECTION}", explicit=True)
    )
    kubernetes: bool = field(
        default=True,
        metadata=key(
            "False only for the first phase of a first deployment (`pulumi up --config "
            "mlflow-platform:kubernetes=false`): AWS resources only, before the deployer can reach the new "
            "cluster's API. On a deployed stack it would delete the tracking server; the stack files never set "
            'it (docs/cluster.md, "First deployment").',
            explicit=True,
            allowed="`true` or `false`",
        ),
    )
    kms: KmsConfig = field(default_factory=KmsConfig, metadata=key(f"The KMS keys. {_SECTION}", explicit=True))
    teams: tuple[TeamOwnership, ...] = field(
        default=(),
        metadata=key(
            "Team ownership the server enforces (stackconfig/teams.py): non-admins create experiments and models "
            "only under their EDIT/MANAGE teams' names; changes need no restart (docs/team-ownership.md). Empty: "
            "no teams, the server app refuses every non-admin create.",
            explicit=True,
            allowed="`<team>: {modelPrefixes, projects: {<project>: [<type>…]}, members: {<user>: "
            "READ|USE|EDIT|MANAGE}}`",
            shown_default="`{}` (no teams)",
            shown_type="object",
        ),
    )

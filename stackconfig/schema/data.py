"""Declarations of the ``database`` and ``artifacts`` sections (``stackconfig.schema``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rendering.mlflow_server import ArtifactAccessMode
from rendering.names import MIGRATOR_ROLE, TRACKING_DATABASE
from rendering.postgres import (
    DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT_MS,
    DEFAULT_LOG_MIN_DURATION_STATEMENT_MS,
    MAX_MAX_CONNECTIONS,
    MIN_MAX_CONNECTIONS,
)
from rendering.rds_parameters import FAMILY_MAJORS

from .. import patterns as p
from ..declare import key, log_retention

BucketEncryption = Literal["kms", "s3"]


@dataclass(frozen=True)
class DatabaseConfig:
    """The RDS PostgreSQL instance and the parameters its group is tuned with."""

    instance_class: str = field(
        default="db.t4g.medium",
        metadata=key(
            "RDS instance class; the parameter group is tuned from its memory.",
            expected="an RDS class like db.t4g.medium",
            allowed="a known RDS class (db.t3/t4g micro–2xlarge, db.m5–m8g/db.r5–r8g large–24xlarge), or any "
            "class with `memoryGib`",
        ),
    )
    memory_bytes: int = field(
        default=0,
        metadata=key(
            "Memory the tuning assumes, in GiB, instead of the instance class's (required for a class not in "
            "rendering/instance_classes.py).",
            name="memoryGib",
            low=1,
            high=4096,
            explicit=True,
            shown_default="from `instanceClass`",
        ),
    )
    engine_version: str = field(
        default="16",
        metadata=key(
            "PostgreSQL major version; minor versions follow auto minor upgrades and never show as drift.",
            pattern=p.PG_MAJOR_VERSION,
            expected=f"a PostgreSQL major version from {FAMILY_MAJORS[0]} to {FAMILY_MAJORS[-1]} as a string "
            "(e.g. '16'); minor versions follow auto minor upgrades",
            allowed=f'`"{FAMILY_MAJORS[0]}"`–`"{FAMILY_MAJORS[-1]}"` (a string)',
        ),
    )
    allocated_storage_gib: int = field(default=20, metadata=key("Initial gp3 storage.", low=20, high=65536))
    max_allocated_storage_gib: int = field(
        default=100,
        metadata=key(
            "Storage autoscaling ceiling (an autoscaled size is not drift); more than `allocatedStorageGib`.",
            low=20,
            high=65536,
        ),
    )
    multi_az: bool = field(default=True, metadata=key("A standby in another AZ with automatic failover."))
    backup_retention_days: int = field(default=14, metadata=key("Days of automated backups.", low=1, high=35))
    deletion_protection: bool = field(default=True, metadata=key("RDS deletion protection."))
    final_snapshot: bool = field(default=True, metadata=key("Take a final snapshot when the instance is deleted."))
    performance_insights_retention_days: int = field(
        default=7,
        metadata=key(
            "Performance Insights retention (7 is the free tier).",
            low=7,
            high=731,
            values=p.PI_RETENTION_DAYS,
            values_hint="7, 731, or a multiple of 31 up to 713",
        ),
    )
    monitoring_interval_seconds: int = field(
        default=60,
        metadata=key("Enhanced monitoring interval; 0: off.", low=0, high=60, values=p.MONITORING_INTERVALS),
    )
    max_connections: int | None = field(
        default=None,
        metadata=key(
            "Overrides the rendered `max_connections` (default: 25 per GiB of memory), which the pools of "
            "every replica must fit under (docs/capacity.md).",
            low=MIN_MAX_CONNECTIONS,
            high=MAX_MAX_CONNECTIONS,
            shown_default="25 per GiB of memory",
        ),
    )
    log_min_duration_statement_ms: int = field(
        default=DEFAULT_LOG_MIN_DURATION_STATEMENT_MS,
        metadata=key("Statements slower than this are logged; -1: off.", low=-1, high=3_600_000),
    )
    idle_in_transaction_session_timeout_ms: int = field(
        default=DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT_MS,
        metadata=key(
            "A client that dies mid-transaction (a killed training job) loses its locks after this.",
            low=1000,
            high=86_400_000,
        ),
    )
    database_name: str = field(
        default=TRACKING_DATABASE,
        metadata=key("The tracking database.", pattern=p.PG_IDENTIFIER, expected="a lowercase PostgreSQL identifier"),
    )
    master_username: str = field(
        default=MIGRATOR_ROLE,
        metadata=key(
            "The RDS master user (the migrator); its password is generated and kept as a stack secret.",
            pattern=p.PG_IDENTIFIER,
            expected="a lowercase PostgreSQL identifier (letters, digits, _), not a reserved name",
            allowed="a lowercase PostgreSQL identifier other than `postgres`, `admin`, `rdsadmin`, `root`, `mlflow`",
        ),
    )
    log_retention_days: int = field(
        default=90,
        metadata=log_retention(
            "Retention of the log groups the instance exports to (`/aws/rds/instance/<identifier>/postgresql`, "
            "`…/upgrade`): the stack creates them with the logs key, so they do not default to RDS's "
            "never-expiring ones (docs/keys-and-logs.md)."
        ),
    )

    @property
    def engine_major(self) -> int:
        return int(self.engine_version.split(".")[0])


@dataclass(frozen=True)
class ArtifactsConfig:
    """The S3 artifact bucket and how the server and training jobs reach it."""

    access_mode: ArtifactAccessMode = field(
        default="direct",
        metadata=key(
            "`direct`: training jobs read/write S3 with their own role, the server runs with "
            "`--default-artifact-root`. `proxied`: the server streams artifacts (`--artifacts-destination`) "
            "and only its role touches S3."
        ),
    )
    encryption: BucketEncryption = field(
        default="kms", metadata=key("`kms`: a customer key with rotation; `s3`: SSE-S3.")
    )
    access_logging: bool = field(default=True, metadata=key("Server access logging to a separate hardened log bucket."))
    prefix: str = field(
        default="mlflow",
        metadata=key(
            "Key prefix of all artifacts; IAM is scoped to it.",
            pattern=p.S3_PREFIX,
            expected="an S3 key prefix of lowercase segments separated by '/', without leading or trailing '/'",
        ),
    )
    noncurrent_version_expiration_days: int = field(
        default=90, metadata=key("Noncurrent object versions expire after this.", low=1, high=3650)
    )
    abort_incomplete_multipart_upload_days: int = field(
        default=7, metadata=key("Incomplete multipart uploads are aborted after this.", low=1, high=365)
    )
    access_log_retention_days: int = field(
        default=365, metadata=key("Expiry of the access-log bucket's objects.", low=1, high=3650)
    )
    force_destroy: bool = field(default=False, metadata=key("Allow deleting a non-empty bucket (never in prod)."))
    replication_region: str = field(
        default="",
        metadata=key(
            "Disaster recovery: replicate every object version and delete marker to a bucket in this other "
            "region, with its own rotating KMS key, the same hardening and a replication role limited to "
            "replication (docs/backup-restore.md); empty: no replica.",
            pattern=p.REGION,
            expected="an AWS region like us-west-2 (another region than cluster.region), or unset for no replica",
        ),
    )

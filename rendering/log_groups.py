"""Names of the CloudWatch log groups the stack owns, and the RDS instance identifier they need.

One function per fact, used by the component that creates the group and by the logs key's
policy (which names exactly these groups), so the two cannot drift apart.

AWS services write to fixed names: EKS to ``/aws/eks/<cluster>/cluster`` (EKS user guide,
"Send control plane logs to CloudWatch Logs") and RDS to ``/aws/rds/instance/<identifier>/<log>``
(RDS user guide, "Publishing PostgreSQL logs to Amazon CloudWatch Logs": "Amazon RDS creates a log
group … /aws/rds/instance/my_instance/postgresql", and an existing group of that name is used).
Creating them first is what gives them a retention and a key; it needs a fixed RDS identifier.
"""

from __future__ import annotations

import re

RDS_LOG_EXPORTS: tuple[str, ...] = ("postgresql", "upgrade")
"""What the instance exports to CloudWatch Logs (``enabled_cloudwatch_logs_exports``)."""
_RDS_IDENTIFIER_MAX = 63


def rds_instance_identifier(name: str) -> str:
    """The RDS instance identifier for the database component ``name`` (e.g. ``mlflow-prod-db``).

    RDS identifiers: 1-63 letters, digits and hyphens, starting with a letter, no two consecutive
    hyphens, not ending with one (RDS API reference, ``CreateDBInstance``,
    ``DBInstanceIdentifier``); RDS stores them in lower case."""
    identifier = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower()))
    identifier = identifier[:_RDS_IDENTIFIER_MAX].strip("-")
    if not identifier or not identifier[0].isalpha():
        raise ValueError(f"{name!r} gives no valid RDS instance identifier (it must start with a letter)")
    return identifier


def rds_log_group(identifier: str, log: str) -> str:
    return f"/aws/rds/instance/{identifier}/{log}"


def rds_log_groups(identifier: str) -> tuple[str, ...]:
    return tuple(rds_log_group(identifier, log) for log in RDS_LOG_EXPORTS)


def eks_log_group(cluster_name: str) -> str:
    return f"/aws/eks/{cluster_name}/cluster"


def flow_log_group(network_name: str) -> str:
    """The VPC's flow-log group (our name: flow logs write wherever they are pointed)."""
    return f"/aws/vpc/{network_name}/flow-logs"

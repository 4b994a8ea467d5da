"""Who may assume a role the stack creates for an AWS service: one trust document for the EKS
control plane, the EKS nodes, RDS Enhanced Monitoring, VPC flow logs and S3 replication.

Why one function: the confused-deputy guard is part of the trust. Where the service sends them,
``aws:SourceAccount`` (this account only) and ``aws:SourceArn`` (this resource only) are pinned
(IAM User Guide, "The confused deputy problem": "We recommend using the aws:SourceArn and
aws:SourceAccount global condition context keys in resource policies"). Roles of Kubernetes
service accounts are ``components.irsa``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi


def service_trust_policy(
    service: str,
    actions: str | Sequence[str] = "sts:AssumeRole",
    *,
    source_account: pulumi.Input[str] | None = None,
    source_arn: pulumi.Input[str] | None = None,
) -> pulumi.Output[str]:
    """``service`` (``eks.amazonaws.com``, …) may assume the role with ``actions`` (one action
    as a string, several as a list, as written in the document), only for ``source_account``
    (StringEquals) and only on behalf of ``source_arn`` (ArnLike) when given."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": actions if isinstance(actions, str) else list(actions),
    }
    condition: dict[str, Any] = {}
    if source_account is not None:
        condition["StringEquals"] = {"aws:SourceAccount": source_account}
    if source_arn is not None:
        condition["ArnLike"] = {"aws:SourceArn": source_arn}
    if condition:
        statement["Condition"] = condition
    return pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [statement]})

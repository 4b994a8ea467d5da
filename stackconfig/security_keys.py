"""Parsing of the trust and key settings (``kms`` section, service principals' ``sourceArn``).

Kept out of ``load.py`` (already long); ``load.py`` calls these with its ``_Section`` reader, so
problems are reported the same way: one line per key, with the value and what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import MISSING
from .schema import KmsConfig

if TYPE_CHECKING:
    from .load import _Section

_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_SOURCE_ARN = re.compile(r"^arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):[a-z0-9-]+:\d{12}:(?P<resource>[\w*+=,.@/:-]+)$")
SOURCE_ARN_RESOURCES = {"sagemaker": "training-job/"}
"""Services whose trust must be narrowed to one resource type: SageMaker assumes the training role
for training jobs, so the pattern must name training jobs (SageMaker developer guide,
"Cross-service confused deputy prevention", SageMaker Training Jobs)."""


def service_source_arn(section: _Section, key: str, identifier: str, item: Mapping[str, Any]) -> str | None:
    """The ``sourceArn`` of a ``{type: Service}`` principal: an ARN pattern of that service in
    one region and account, never just ``*``. None (and a problem reported) when it is wrong."""
    service = identifier.removesuffix(".amazonaws.com")
    resource = SOURCE_ARN_RESOURCES.get(service, "")
    expected = (
        f"an ARN pattern of {identifier}'s resources that may assume the role, "
        f"arn:aws:{service}:<region>:<account>:{resource or '<resource>'}<name or pattern>"
    )
    value = item.get("sourceArn")
    if value is None:
        section.problem(f"{key}.sourceArn", MISSING, expected)
        return None
    match = _SOURCE_ARN.match(value) if isinstance(value, str) else None
    rest = match["resource"].removeprefix(resource) if match and match["resource"].startswith(resource) else ""
    # A bare "*" would admit every resource of the service in the account: no better than before.
    if match is None or match["service"] != service or not rest or (rest == "*" and not resource):
        section.problem(f"{key}.sourceArn", value, expected)
        return None
    return value


def kms(section: _Section) -> KmsConfig:
    return KmsConfig(
        administrator_arns=section.string_list(
            "administratorArns",
            pattern=_PRINCIPAL_ARN,
            expected="IAM role or user ARNs that administer (never use) the stack's KMS keys",
            min_items=1,
        )
    )

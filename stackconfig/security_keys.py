"""Parsing of service principals' ``sourceArn`` (``training.extraPrincipals``).

``stackconfig.sections`` calls it with its ``Section`` reader, so problems are reported the same
way: one line per key, with the value and what is expected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import MISSING
from .reader import Section

_SOURCE_ARN = re.compile(r"^arn:aws[a-z-]*:(?P<service>[a-z0-9-]+):[a-z0-9-]+:\d{12}:(?P<resource>[\w*+=,.@/:-]+)$")
SOURCE_ARN_RESOURCES = {"sagemaker": "training-job/"}
"""Services whose trust must be narrowed to one resource type: SageMaker assumes the training role
for training jobs, so the pattern must name training jobs (SageMaker developer guide,
"Cross-service confused deputy prevention", SageMaker Training Jobs)."""


def service_source_arn(section: Section, key: str, identifier: str, item: Mapping[str, Any]) -> str | None:
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

"""Helpers every service's rules use: which stack is production, and reading the SDK's property proxies.

Props arrive as the SDK's Mapping/Sequence proxies that raise ``UnknownValueError`` on a value
unknown during preview (see ``policy.rules``); these helpers walk them without treating
"unknown" as "absent", except ``known``, which stack rules use so one unknown does not abort
the whole stack check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError  # raised when a rule reads a value unknown in preview

DEFAULT_PROD_STACKS: tuple[str, ...] = ("prod",)

PROD_STACKS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string"},
    "default": list(DEFAULT_PROD_STACKS),
    "description": "Stack names treated as production (matched against the stack part of each URN).",
}


def stack_name(urn: str) -> str:
    """``urn:pulumi:<stack>::<project>::<type chain>::<name>`` → ``<stack>``."""
    head = urn.split("::", 1)[0]
    return head.rsplit(":", 1)[-1]


def type_chain(urn: str) -> list[str]:
    """The parent types and the resource's own type, outermost first (``A$B$C`` in the URN)."""
    parts = urn.split("::")
    return parts[2].split("$") if len(parts) >= 4 else []


def is_prod(urn: str, config: Mapping[str, Any]) -> bool:
    stacks = config.get("prodStacks") or DEFAULT_PROD_STACKS
    return stack_name(urn) in set(stacks)


def is_mapping(value: object) -> bool:
    return isinstance(value, Mapping)


def is_list(value: object) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def get_path(value: Any, *path: str) -> Any:
    """Walk nested mappings; ``None`` when any step is missing (unknowns still raise)."""
    for key in path:
        if not is_mapping(value) or key not in value:
            return None
        value = value[key]
    return value


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping (plain or the SDK's proxy), else an empty one."""
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if is_list(value):
        return list(value)
    return [value]


def truthy(value: Any) -> bool:
    """Booleans, and the strings some providers accept for them."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def load_policy_document(raw: Any) -> Mapping[str, Any] | None:
    """IAM/S3 policy documents arrive as JSON strings (``Output.json_dumps``); accept dicts too."""
    if is_mapping(raw):
        return as_mapping(raw)
    if isinstance(raw, str):
        try:
            document = json.loads(raw)
        except json.JSONDecodeError:
            return None
        return document if isinstance(document, dict) else None
    return None


def policy_statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [s for s in as_list(document.get("Statement")) if is_mapping(s)]


def known(props: Mapping[str, Any], key: str) -> Any:
    """A prop's value, or ``None`` when it is absent or not known yet (stack rules must not abort)."""
    try:
        return props.get(key)
    except UnknownValueError:
        return None

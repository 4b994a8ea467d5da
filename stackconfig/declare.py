"""How a stack key is declared: once, on its dataclass field in ``stackconfig.schema``.

Why: a key used to be spelled three ways (``tmp_size_gib`` in the schema, ``"tmpSizeGib"`` in the
loader, ``server.tmpSizeGib`` in the README) with its range in the loader and copies of it in four
docs. Now the field holds everything: its type (the annotation), its default (the field's), and in
its metadata the range or pattern, a description and the cluster mode it belongs to. The loader
(``stackconfig.reader``) reads simple keys from it, and ``scripts/reference_docs.py`` writes
``docs/configuration.md`` from it (as helm-docs does from ``values.yaml``'s ``# --`` comments).

    backup_retention_days: int = field(default=14, metadata=key("Days of automated backups.", low=1, high=35))
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

ClusterMode = Literal["create", "reuse"]
"""``create``: the program builds the VPC, the EKS cluster, its add-ons and the ingress path.
``reuse``: it deploys onto an existing VPC and cluster whose facts come from config."""

METADATA = "stack_key"


@dataclass(frozen=True)
class Key:
    """One stack key's declaration (everything but its type and default, which the field holds)."""

    doc: str
    """What the key does, for the generated reference: why a user would change it."""
    name: str = ""
    """As users write it; empty: the field's name in camelCase (``tmp_size_gib`` → ``tmpSizeGib``)."""
    low: int | None = None
    high: int | None = None
    values: tuple[int, ...] = ()
    """Integers: the only values allowed within ``low``–``high`` (e.g. CloudWatch retentions)."""
    values_hint: str = ""
    """Integers with ``values``: how the error and the docs say them; empty: ``one of (…)``."""
    pattern: re.Pattern[str] | None = None
    expected: str = ""
    """Strings and lists: what the error says is expected (a list's items, in the plural)."""
    required: bool = False
    min_items: int = 0
    mode: ClusterMode | None = None
    """The only cluster mode the key belongs to; set in the other mode it is an error."""
    explicit: bool = False
    """Read by a named function of the loader (a structured value, or a default or rule that
    depends on another key); ``allowed`` then says what it accepts."""
    allowed: str = ""
    shown_default: str = ""
    """The default as the docs show it, when the field's is not what a user gets (derived ones)."""
    shown_type: str = ""
    """The YAML type as the docs show it, when the field's type is not what a user writes."""


def key(
    doc: str,
    *,
    name: str = "",
    low: int | None = None,
    high: int | None = None,
    values: tuple[int, ...] = (),
    values_hint: str = "",
    pattern: re.Pattern[str] | None = None,
    expected: str = "",
    required: bool = False,
    min_items: int = 0,
    mode: ClusterMode | None = None,
    explicit: bool = False,
    allowed: str = "",
    shown_default: str = "",
    shown_type: str = "",
) -> dict[str, Key]:
    """The ``metadata=`` of a dataclass field that is a stack key."""
    return {
        METADATA: Key(
            doc=doc,
            name=name,
            low=low,
            high=high,
            values=values,
            values_hint=values_hint,
            pattern=pattern,
            expected=expected,
            required=required,
            min_items=min_items,
            mode=mode,
            explicit=explicit,
            allowed=allowed,
            shown_default=shown_default,
            shown_type=shown_type,
        )
    }


def log_retention(doc: str, *, mode: ClusterMode | None = None) -> dict[str, Key]:
    """A CloudWatch Logs retention key: only the retentions CloudWatch accepts."""
    from .patterns import LOG_RETENTION_DAYS

    return key(
        doc,
        low=1,
        high=3653,
        values=LOG_RETENTION_DAYS,
        values_hint=f"a CloudWatch Logs retention: one of {LOG_RETENTION_DAYS}",
        mode=mode,
    )


def camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.capitalize() for part in rest)


@dataclass(frozen=True)
class Declared:
    """A field that is a stack key, with its resolved name and type."""

    field: dataclasses.Field[Any]
    key: Key
    hint: Any

    @property
    def name(self) -> str:
        return self.key.name or camel(self.field.name)

    @property
    def default(self) -> object:
        if self.field.default is not dataclasses.MISSING:
            return self.field.default
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return dataclasses.MISSING


def declared(cls: type[Any]) -> Iterator[Declared]:
    """The stack keys of a section's dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        meta = item.metadata.get(METADATA)
        if meta is not None:
            yield Declared(item, meta, hints[item.name])


def declaration(cls: type[Any], field_name: str) -> Declared:
    for item in declared(cls):
        if item.field.name == field_name:
            return item
    raise KeyError(f"{cls.__name__}.{field_name} is not a declared stack key")


def literal_choices(hint: Any) -> tuple[str, ...]:
    """The values of a ``Literal[...]`` type: the choices a key of that type accepts."""
    if typing.get_origin(hint) is not Literal:
        raise TypeError(f"{hint!r} is not a Literal type")
    return tuple(str(value) for value in typing.get_args(hint))


def is_literal(hint: Any) -> bool:
    return typing.get_origin(hint) is Literal

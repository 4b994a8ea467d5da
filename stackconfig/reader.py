"""Reads one config section (a YAML object) and records problems instead of raising.

Simple keys are read from their declaration (``stackconfig.declare``): the field's type picks the
reader (integer, boolean, string, ``Literal`` choice, list of strings), the declaration gives the
range, pattern and wording of the error. Keys declared ``explicit`` are read by named functions
in ``stackconfig.load`` and its helpers, with the same primitives.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from .declare import Declared, declaration, declared, is_literal, literal_choices
from .errors import MISSING, ConfigProblem
from .namespaces import PROJECT, did_you_mean

T = TypeVar("T")
L = TypeVar("L", bound=str)


class Section:
    """One section's raw values, the keys read so far (for the unknown-key check) and the shared
    problem list."""

    def __init__(self, name: str, raw: object, problems: list[ConfigProblem], *, required: bool = False):
        self.name = name
        self.problems = problems
        self.present = raw is not None
        if raw is None:
            if required:
                problems.append(ConfigProblem(f"{PROJECT}:{name}", MISSING, "an object (see docs/configuration.md)"))
            raw = {}
        if not isinstance(raw, Mapping):
            problems.append(ConfigProblem(f"{PROJECT}:{name}", raw, "an object (see docs/configuration.md)"))
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

    def literal(self, field: str, default: L, kind: Any, *, required: bool = False) -> L:
        """A string that must be one of the values of the ``Literal`` type ``kind``: the choices
        are the type's, never a second hand-written tuple."""
        choices = literal_choices(kind)
        # The value is one of the type's own values (or the default): the cast only states it.
        return cast(L, self.string(field, default, required=required, choices=choices))

    def integer(
        self,
        field: str,
        default: int,
        *,
        low: int,
        high: int,
        required: bool = False,
        values: tuple[int, ...] = (),
        values_hint: str = "",
    ) -> int:
        expected = f"an integer from {low} to {high}"
        found, value = self._get(field, default, required, expected)
        if not found:
            return default
        # bool is an int in Python; `true` for a size is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.problem(field, value, expected)
            return default
        if values and value not in values:
            self.problem(field, value, values_hint or f"one of {values}")
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
        self,
        field: str,
        *,
        pattern: re.Pattern[str],
        expected: str,
        min_items: int,
        required: bool = False,
        default: tuple[str, ...] = (),
    ) -> tuple[str, ...]:
        full_expected = f"a list of at least {min_items} {expected}"
        found, value = self._get(field, default, required, full_expected)
        if not found:
            return default
        if not isinstance(value, list) or len(value) < min_items:
            self.problem(field, value, full_expected)
            return default
        bad = [item for item in value if not isinstance(item, str) or not pattern.match(item)]
        if bad:
            self.problem(field, value, f"{full_expected} (bad: {bad!r})")
            return default
        if len(set(value)) != len(value):
            self.problem(field, value, f"{full_expected} without duplicates")
            return default
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

    def forbid(self, fields: tuple[str, ...], expected: str) -> None:
        """Keys that belong to the other cluster mode: reported if set, so a stack file cannot
        hold settings that silently do nothing."""
        for field in fields:
            self.read.add(field)
            if field in self.raw and self.raw[field] is not None:
                self.problem(field, self.raw[field], expected)

    def reject_unknown(self) -> None:
        for field in self.raw:
            if field not in self.read:
                known = ", ".join(sorted(self.read))
                hint = did_you_mean(field, self.read)
                self.problem(field, self.raw[field], f"no such key (known keys: {known}){hint}")

    # Declared keys -------------------------------------------------------------------------

    def declared(self, cls: type[Any], field_name: str, default: object = None) -> Any:
        """One declared key of ``cls``, read as its declaration says; ``default`` replaces the
        field's own (a default derived from another key)."""
        return self._read(declaration(cls, field_name), default)

    def optional(self, cls: type[Any], field_name: str) -> int | None:
        """A declared integer key whose absence means "derive it" (None), e.g. ``memoryGib``."""
        decl = declaration(cls, field_name).key
        assert decl.low is not None and decl.high is not None, field_name
        return self.optional_integer(declaration(cls, field_name).name, low=decl.low, high=decl.high)

    def simple(self, cls: type[Any], mode: str | None = None) -> dict[str, Any]:
        """Every declared, non-explicit key of ``cls`` that belongs to ``mode`` (None: the keys of
        both modes), as keyword arguments for ``cls``."""
        return {
            item.field.name: self._read(item, None)
            for item in declared(cls)
            if not item.key.explicit and item.key.mode == mode
        }

    def _read(self, item: Declared, default: object) -> Any:
        decl, hint, name = item.key, item.hint, item.name
        value = item.default if default is None else default
        if value is dataclasses.MISSING:  # a field without default: the key is required
            value = None
        if hint is bool:
            return self.boolean(name, cast(bool, value))
        if hint is int:
            assert decl.low is not None and decl.high is not None, name
            return self.integer(
                name,
                cast(int, value),
                low=decl.low,
                high=decl.high,
                required=decl.required,
                values=decl.values,
                values_hint=decl.values_hint,
            )
        if _is_optional_int(hint):
            assert decl.low is not None and decl.high is not None, name
            return self.optional_integer(name, low=decl.low, high=decl.high)
        if is_literal(hint):
            return self.literal(name, cast(str, value or ""), hint, required=decl.required)
        if hint is str:
            return self.string(
                name,
                cast(str, value or ""),
                required=decl.required,
                pattern=decl.pattern,
                expected=decl.expected or "a string",
            )
        if typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, Ellipsis):
            assert decl.pattern is not None, name
            return self.string_list(
                name,
                pattern=decl.pattern,
                expected=decl.expected,
                min_items=decl.min_items,
                required=decl.required,
                default=cast(tuple[str, ...], value or ()),
            )
        raise TypeError(f"{name}: a {hint!r} key needs an explicit reader (declare it explicit=True)")


def _is_optional_int(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return origin in (typing.Union, types.UnionType) and set(typing.get_args(hint)) == {int, type(None)}

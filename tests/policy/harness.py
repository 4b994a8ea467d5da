"""Feeds policies the way the Pulumi engine does, without the engine.

Props go through the SDK's own ``deserialize_properties`` (secret envelopes unwrapped) and
``unknown_checking_proxy`` (Mapping/Sequence proxies that raise on unknowns), exactly as
``pulumi_policy``'s analyzer servicer prepares them, so a rule that works here works in
``pulumi preview --policy-pack policy``. Captured runs come from ``tests/pulumi_harness.run_program``
(the real program under mocks); they are cached per stack because the program is deterministic.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from stackconfig import PROJECT
from tests.pulumi_harness import run_program, stack_file_config

COMPONENT_PREFIX = "mlflow:index:"
MOCK_ID_SUFFIX = "-id"
MOCK_PHYSICAL_SUFFIX = "-7f3a2b"
"""``RecordingMocks`` answers ``<name>-id`` for ids and ``<name>-7f3a2b`` for physical names; an input
holding one of them is the engine's property dependency on that resource."""


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def engine_props(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    props: Mapping[str, Any] = unknown_checking_proxy(deserialize_properties(copy.deepcopy(dict(raw))))
    return props


def urn_for(typ: str, name: str, stack: str = "prod", parents: Sequence[str] = ()) -> str:
    chain = "$".join([*parents, typ])
    return f"urn:pulumi:{stack}::{PROJECT}::{chain}::{name}"


@dataclass
class Captured:
    """One resource as the engine would present it to a policy."""

    typ: str
    name: str
    urn: str
    raw: dict[str, Any]
    deps: dict[str, list[str]] = field(default_factory=dict)
    """Property name → names of the resources it depends on (rebuilt from mock ids)."""

    def mutated(self, change: Callable[[dict[str, Any]], object]) -> Captured:
        raw = copy.deepcopy(self.raw)
        change(raw)
        return Captured(self.typ, self.name, self.urn, raw, dict(self.deps))


def violations(
    policy: ResourceValidationPolicy,
    typ: str,
    props: Mapping[str, Any],
    *,
    urn: str | None = None,
    name: str = "resource",
    config: Mapping[str, Any] | None = None,
) -> list[str]:
    messages: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        messages.append(message)

    args = ResourceValidationArgs(
        typ, engine_props(props), urn or urn_for(typ, name), name, _options(), None, dict(config or {})
    )
    policy.validate(args, report)
    return messages


def resource_violations(
    policy: ResourceValidationPolicy, resource: Captured, config: Mapping[str, Any] | None = None
) -> list[str]:
    return violations(policy, resource.typ, resource.raw, urn=resource.urn, name=resource.name, config=config)


def stack_violations(
    policy: StackValidationPolicy, resources: Sequence[Captured], config: Mapping[str, Any] | None = None
) -> list[tuple[str, str | None]]:
    """Runs a stack policy with property dependencies resolved to resource objects, as the engine does."""
    built = {
        r.name: PolicyResource(r.typ, engine_props(r.raw), r.urn, r.name, _options(), None, None, [], {})
        for r in resources
    }
    for r in resources:
        built[r.name].property_dependencies = {
            prop: [built[n] for n in names if n in built] for prop, names in r.deps.items()
        }
    found: list[tuple[str, str | None]] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append((message, urn))

    policy.validate(StackValidationArgs(list(built.values()), dict(config or {})), report)
    return found


@functools.cache
def _capture(stack: str) -> tuple[Captured, ...]:
    mocks, _, _ = run_program(stack, stack_file_config(stack))
    urns = {urn.rsplit("::", 1)[-1]: urn for urn in mocks.urns}
    ids = {f"{r.name}{suffix}": r.name for r in mocks.resources for suffix in (MOCK_ID_SUFFIX, MOCK_PHYSICAL_SUFFIX)}
    captured = []
    for record in mocks.resources:
        deps = {
            prop: [ids[value]] for prop, value in record.raw_inputs.items() if isinstance(value, str) and value in ids
        }
        captured.append(Captured(record.typ, record.name, urns[record.name], dict(record.raw_inputs), deps))
    return tuple(captured)


def capture(stack: str) -> list[Captured]:
    """Every resource the real program registers for ``Pulumi.<stack>.yaml`` (components excluded)."""
    return [c for c in _capture(stack) if not c.typ.startswith(COMPONENT_PREFIX)]


def one(resources: Sequence[Captured], typ: str, name_contains: str = "") -> Captured:
    matches = [r for r in resources if r.typ == typ and name_contains in r.name]
    assert len(matches) == 1, f"expected one {typ} named *{name_contains}*, got {[m.name for m in matches]}"
    return matches[0]

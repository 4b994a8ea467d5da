"""Rule registration: defining a rule is registering it, so no rule can be written and left out of the pack.

``@resource_rule(...)``/``@stack_rule(...)`` turn a validate function into its CrossGuard policy
(always ``MANDATORY``) and record it under the module that defines it. ``policy.rules`` builds
the pack's lists from these records for the service modules it names, and tests/policy checks
that every module of the package is named there and that each service's rules have a failing
case. Before this, the pack's lists were written by hand next to the rules (``RESOURCE_POLICIES``
in the old ``policy/rules.py``), and a new rule missing from them would simply never run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
    StackValidationArgs,
    StackValidationPolicy,
)

MANDATORY = EnforcementLevel.MANDATORY

ResourceCheck = Callable[[ResourceValidationArgs, ReportViolation], None]
StackCheck = Callable[[StackValidationArgs, ReportViolation], None]
Policy = ResourceValidationPolicy | StackValidationPolicy
P = TypeVar("P", ResourceValidationPolicy, StackValidationPolicy)

_REGISTERED: dict[str, list[Policy]] = {}
"""Module name (``policy.rules.s3``) → its policies, in definition order."""


def _registered(policy: P, validate: Callable[..., None]) -> P:
    _REGISTERED.setdefault(validate.__module__, []).append(policy)
    return policy


def _facts(name: str, description: str, severity: Severity, config_schema: PolicyConfigSchema | None) -> dict[str, Any]:
    """What every rule declares, plus the enforcement level every rule of this pack has."""
    return {
        "name": name,
        "description": description,
        "enforcement_level": MANDATORY,
        "severity": severity,
        "config_schema": config_schema,
    }


def resource_rule(
    *, name: str, description: str, severity: Severity, config_schema: PolicyConfigSchema | None = None
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Registers the decorated function as a mandatory per-resource policy, and returns that policy."""
    facts = _facts(name, description, severity, config_schema)
    return lambda validate: _registered(ResourceValidationPolicy(validate=validate, **facts), validate)


def stack_rule(
    *, name: str, description: str, severity: Severity, config_schema: PolicyConfigSchema | None = None
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Registers the decorated function as a mandatory whole-stack policy, and returns that policy."""
    facts = _facts(name, description, severity, config_schema)
    return lambda validate: _registered(StackValidationPolicy(validate=validate, **facts), validate)


def registered(module: ModuleType) -> list[Policy]:
    """The policies ``module`` defined, in definition order."""
    return list(_REGISTERED.get(module.__name__, []))


def registered_modules() -> list[str]:
    """Every module that registered at least one policy (tests: all of them must be in the pack)."""
    return sorted(_REGISTERED)


def pack(services: Sequence[ModuleType]) -> tuple[list[ResourceValidationPolicy], list[StackValidationPolicy]]:
    """The resource and the stack policies of ``services``, in the services' order."""
    policies = [policy for module in services for policy in registered(module)]
    resource = [p for p in policies if isinstance(p, ResourceValidationPolicy)]
    stack = [p for p in policies if isinstance(p, StackValidationPolicy)]
    return resource, stack

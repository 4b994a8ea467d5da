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

_REGISTERED: dict[str, list[Policy]] = {}
"""Module name (``policy.rules.s3``) → its policies, in definition order."""


def _register(module: str, policy: Policy) -> None:
    _REGISTERED.setdefault(module, []).append(policy)


def resource_rule(
    *, name: str, description: str, severity: Severity, config_schema: PolicyConfigSchema | None = None
) -> Callable[[ResourceCheck], ResourceValidationPolicy]:
    """Registers the decorated function as a mandatory per-resource policy, and returns that policy."""

    def register(validate: ResourceCheck) -> ResourceValidationPolicy:
        policy = ResourceValidationPolicy(
            name=name,
            description=description,
            enforcement_level=MANDATORY,
            severity=severity,
            config_schema=config_schema,
            validate=validate,
        )
        _register(validate.__module__, policy)
        return policy

    return register


def stack_rule(
    *, name: str, description: str, severity: Severity, config_schema: PolicyConfigSchema | None = None
) -> Callable[[StackCheck], StackValidationPolicy]:
    """Registers the decorated function as a mandatory whole-stack policy, and returns that policy."""

    def register(validate: StackCheck) -> StackValidationPolicy:
        policy = StackValidationPolicy(
            name=name,
            description=description,
            enforcement_level=MANDATORY,
            severity=severity,
            config_schema=config_schema,
            validate=validate,
        )
        _register(validate.__module__, policy)
        return policy

    return register


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

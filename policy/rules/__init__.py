"""The platform's security invariants as CrossGuard policies (importable; no ``PolicyPack`` here).

Why a policy pack when the components already set all of this: the components are one way to
build the stack, the policies are the contract. They run in ``pulumi preview``/``pulumi up``
(``--policy-pack policy``) against whatever the program registers, so a refactor, a new
component or a hand-edited resource cannot silently drop a property the platform depends on.

How the rules see resources: ``args.props`` are the resource's *inputs* with wire (camelCase)
names, wrapped by the SDK so that reading a value unknown during preview raises
``UnknownValueError``; the engine reports that as "can't run policy during preview" (advisory) and
the rule runs again with real values during ``pulumi up``. Rules therefore read only what they
need and never treat "unknown" as "fine". Numbers arrive as floats (``2.0``).

Which stacks are production: the stack name is taken from the resource URN
(``urn:pulumi:<stack>::<project>::…``) and compared with the policy's ``prodStacks`` config value
(default ``["prod"]``); set it with ``--policy-pack-config`` (see docs/ci.md).

Layout: one module per service (``s3``, ``rds``, ``iam``, ``eks``, ``kubernetes``, ``sns``), the
helpers they share in ``common`` and the ``@resource_rule``/``@stack_rule`` decorators in
``registry``. A rule is registered by being defined; the pack below is the registered rules of
the modules in ``SERVICES`` (in this order: the order the analyzer lists them), and
tests/policy fails when a module of this package registers rules but is missing from it.

Check ids in the descriptions: AWS FSBP / checkov / CIS, from shared/reference.
"""

from __future__ import annotations

from pulumi_policy import ResourceValidationPolicy, StackValidationPolicy

from policy.rules import eks, iam, kubernetes, rds, s3, sns
from policy.rules.common import is_prod
from policy.rules.registry import MANDATORY, pack

SERVICES = (sns, s3, rds, iam, eks, kubernetes)

RESOURCE_POLICIES, STACK_POLICIES = pack(SERVICES)
ALL_POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [*RESOURCE_POLICIES, *STACK_POLICIES]

__all__ = ["ALL_POLICIES", "MANDATORY", "RESOURCE_POLICIES", "SERVICES", "STACK_POLICIES", "is_prod"]

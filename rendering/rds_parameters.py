"""What RDS needs to know about each parameter we render, per parameter-group family: whether it
is static or dynamic, and its engine default. The parameter group is rendered from these facts
(``rds_parameter_group``), so the apply method and the omissions are data, each with its source.

Why it matters:

* RDS refuses ``ApplyMethod=immediate`` for a static parameter ("cannot use immediate apply
  method for static parameter"); ``pending-reboot`` is accepted for both kinds.
* terraform-provider-aws (the bridged provider behind ``aws.rds.ParameterGroup``) keys each
  parameter of the set by name, value *and* apply method (``parameterHash`` in
  ``internal/service/rds/parameter_group.go``) and reads the apply method back from
  ``DescribeDBParameters`` (``flattenParameters`` in ``internal/service/rds/flex.go``). A
  parameter left at its engine default keeps the source ``engine-default`` and is read back with
  AWS's method, not ours: a permanent diff. So a parameter whose rendered value *is* the family's
  default is left out of the group, unless a check or the local mapping relies on it being
  declared (``kept_because``).

Sources:

* apply type of the community parameters: ``pg_settings.context`` (``postmaster`` = static: a
  restart applies it; ``sighup``/``user``/``superuser`` = dynamic), as printed by
  ``postgres --describe-config`` (PostgreSQL 15, Debian) and documented per parameter in
  https://www.postgresql.org/docs/16/runtime-config.html; the context of these parameters is the
  same in 14-18. RDS reports the same split as ``ApplyType`` (``describe-engine-default-parameters``).
* ``checkpoint_completion_target`` defaults to 0.9 from PostgreSQL 14 on (PostgreSQL 14 release
  notes: "Change checkpoint_completion_target default to 0.9"); RDS keeps the community value.
* ``rds.force_ssl``: "The rds.force_ssl parameter default value is 1 (on) for RDS for PostgreSQL
  version 15 and later. For all other RDS for PostgreSQL major versions 14 and older, the default
  value of this parameter is 0 (off)." (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/
  PostgreSQL.Concepts.General.SSL.html). Dynamic from 15 on. For 14 the same page (older
  revision) says turning it on needs a reboot unless ``ssl`` is already on, and the review that
  filed issue 17 saw older families refuse ``immediate``: we treat it as static there, which is
  safe either way (``pending-reboot`` is valid for a dynamic parameter too).

A parameter whose engine default is not recorded here (``None``) is always declared: we only
omit what we know to be the default. That covers the memory-derived ones on purpose: RDS's
defaults for shared_buffers, effective_cache_size, maintenance_work_mem and max_connections are
formulas of ``DBInstanceClassMemory``, which a rendered number never equals, and the workload
settings (random_page_cost, logging, timeouts, password_encryption) are declared because their
value is the point; recording an unverified RDS default for them could only drop a setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .postgres import PgParameter

ApplyType = Literal["static", "dynamic"]
ApplyMethod = Literal["immediate", "pending-reboot"]

FAMILY_MAJORS = tuple(range(14, 20))
"""PostgreSQL majors ``database.engineVersion`` allows (``postgres14`` … ``postgres19``)."""

APPLY_METHOD: dict[ApplyType, ApplyMethod] = {"static": "pending-reboot", "dynamic": "immediate"}


@dataclass(frozen=True)
class ParameterFacts:
    """One parameter's apply type and engine default, per family major (from its first major on)."""

    apply_type: ApplyType
    apply_type_before: Mapping[int, ApplyType] = field(default_factory=dict)
    """Exceptions: ``{last major: type}`` for families up to and including that major."""
    engine_default: Mapping[int, str] | None = None
    """``{first major: default}``; the entry with the largest first major ≤ the family applies."""
    kept_because: str = ""
    """Why the parameter is declared even at its default (a check or a local mapping reads it)."""

    def apply_type_for(self, major: int) -> ApplyType:
        for last, kind in sorted(self.apply_type_before.items()):
            if major <= last:
                return kind
        return self.apply_type

    def default_for(self, major: int) -> str | None:
        if self.engine_default is None:
            return None
        starts = [first for first in self.engine_default if first <= major]
        return self.engine_default[max(starts)] if starts else None


RDS_PARAMETER_FACTS: dict[str, ParameterFacts] = {
    # postmaster context: static.
    "shared_buffers": ParameterFacts("static"),
    "wal_buffers": ParameterFacts("static"),
    "max_connections": ParameterFacts("static"),
    # sighup / user / superuser context: dynamic.
    "effective_cache_size": ParameterFacts("dynamic"),
    "work_mem": ParameterFacts("dynamic"),
    "maintenance_work_mem": ParameterFacts("dynamic"),
    "checkpoint_completion_target": ParameterFacts("dynamic", engine_default={14: "0.9"}),
    "max_wal_size": ParameterFacts("dynamic"),
    "random_page_cost": ParameterFacts("dynamic"),
    "idle_in_transaction_session_timeout": ParameterFacts("dynamic"),
    "log_min_duration_statement": ParameterFacts("dynamic"),
    "log_statement": ParameterFacts("dynamic"),
    "password_encryption": ParameterFacts("dynamic"),
    "rds.force_ssl": ParameterFacts(
        "dynamic",
        apply_type_before={14: "static"},
        engine_default={14: "0", 15: "1"},
        kept_because=(
            "checkov CKV2_AWS_69 and policy/rules/rds.py rds_force_ssl read it from the group, and the "
            "local target maps it to ssl=on + hostssl (rendering.postgres.RDS_ONLY_LOCAL_MAPPINGS)"
        ),
    ),
}


@dataclass(frozen=True)
class RdsParameter:
    """One entry of ``aws.rds.ParameterGroup.parameters``."""

    name: str
    value: str
    apply_method: ApplyMethod


class UnknownParameterError(KeyError):
    """A rendered parameter has no facts: its apply type must be recorded before it ships."""


def rds_parameter_group(parameters: tuple[PgParameter, ...], engine_major: int) -> tuple[RdsParameter, ...]:
    """The parameter group's entries for ``postgres<engine_major>``: each parameter with the apply
    method of its type in that family, without those at the family's default (unless kept)."""
    group: list[RdsParameter] = []
    for parameter in parameters:
        facts = RDS_PARAMETER_FACTS.get(parameter.name)
        if facts is None:
            raise UnknownParameterError(f"{parameter.name}: no apply type recorded in RDS_PARAMETER_FACTS")
        if parameter.value == facts.default_for(engine_major) and not facts.kept_because:
            continue
        group.append(RdsParameter(parameter.name, parameter.value, APPLY_METHOD[facts.apply_type_for(engine_major)]))
    return tuple(group)

"""The RDS parameter group is rendered from per-family facts: static parameters apply at the next
reboot, engine defaults are left out (no permanent diff), rds.force_ssl stays declared."""

from __future__ import annotations

import pytest

from rendering.postgres import PgParameter, PostgresTuning, render_postgres_parameters
from rendering.rds_parameters import (
    FAMILY_MAJORS,
    RDS_PARAMETER_FACTS,
    UnknownParameterError,
    rds_parameter_group,
)
from rendering.units import GIB


def group(major: int, memory: int = 8 * GIB) -> dict[str, tuple[str, str]]:
    rendered = render_postgres_parameters(PostgresTuning(memory_bytes=memory))
    return {p.name: (p.value, p.apply_method) for p in rds_parameter_group(rendered, major)}


@pytest.mark.parametrize("major", FAMILY_MAJORS)
def test_static_parameters_apply_at_reboot_in_every_family(major: int):
    methods = {name: method for name, (_, method) in group(major).items()}
    assert {name for name, method in methods.items() if method == "pending-reboot"} >= {
        "shared_buffers",
        "wal_buffers",
        "max_connections",
    }
    assert methods["work_mem"] == "immediate"
    assert methods["log_min_duration_statement"] == "immediate"


def test_force_ssl_is_static_on_14_and_dynamic_from_15():
    assert group(14)["rds.force_ssl"] == ("1", "pending-reboot")
    for major in FAMILY_MAJORS[1:]:
        assert group(major)["rds.force_ssl"] == ("1", "immediate")


@pytest.mark.parametrize("major", FAMILY_MAJORS)
def test_engine_defaults_are_left_out_except_what_a_check_reads(major: int):
    """checkpoint_completion_target=0.9 is the default of every family we allow: declaring it would
    be read back with AWS's apply method (a permanent diff). rds.force_ssl=1 is the default from 15
    on, but CKV2_AWS_69, the policy pack and the local ssl=on mapping read it: it stays."""
    rendered = group(major)
    assert "checkpoint_completion_target" not in rendered
    assert "rds.force_ssl" in rendered
    assert RDS_PARAMETER_FACTS["rds.force_ssl"].kept_because


def test_every_rendered_parameter_has_facts_at_every_size():
    for memory in (1 * GIB, 8 * GIB, 256 * GIB):
        for parameter in render_postgres_parameters(PostgresTuning(memory_bytes=memory)):
            assert parameter.name in RDS_PARAMETER_FACTS


def test_a_parameter_without_facts_is_an_error():
    with pytest.raises(UnknownParameterError, match="autovacuum_naptime"):
        rds_parameter_group((PgParameter("autovacuum_naptime", "30"),), 16)


def test_a_non_default_value_of_a_defaulted_parameter_is_declared():
    assert rds_parameter_group((PgParameter("checkpoint_completion_target", "0.7"),), 16)[0].value == "0.7"

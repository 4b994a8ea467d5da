"""The tuning function, checked against the guide's 8 GiB example and RDS's units."""

from __future__ import annotations

import pytest

from rendering.instance_classes import UnknownInstanceClassError, instance_memory_bytes
from rendering.postgres import (
    PAGE_BYTES,
    RDS_ONLY_LOCAL_MAPPINGS,
    PostgresTuning,
    local_postgres_settings,
    render_postgres_parameters,
)
from rendering.units import GIB, KIB, MIB


def params(memory: int, **kwargs: int) -> dict[str, tuple[str]]:
    rendered = render_postgres_parameters(PostgresTuning(memory_bytes=memory, **kwargs))
    return {p.name: (p.value,) for p in rendered}


def test_8_gib_reproduces_the_guides_values_in_rds_units():
    p = params(8 * GIB)
    # shared_buffers, effective_cache_size and wal_buffers are in 8 kB pages on RDS.
    assert int(p["shared_buffers"][0]) * PAGE_BYTES == 2 * GIB
    assert int(p["effective_cache_size"][0]) * PAGE_BYTES == 6 * GIB
    assert int(p["wal_buffers"][0]) * PAGE_BYTES == 64 * MIB
    # work_mem and maintenance_work_mem are in kB, max_wal_size in MB.
    assert int(p["work_mem"][0]) * KIB == 64 * MIB
    assert int(p["maintenance_work_mem"][0]) * KIB == 512 * MIB
    assert int(p["max_wal_size"][0]) * MIB == 4 * GIB
    assert p["checkpoint_completion_target"][0] == "0.9"
    assert p["max_connections"][0] == "200"
    # The literal strings the parameter group receives.
    assert p["shared_buffers"][0] == "262144"
    assert p["effective_cache_size"][0] == "786432"
    assert p["wal_buffers"][0] == "8192"
    assert p["work_mem"][0] == "65536"
    assert p["maintenance_work_mem"][0] == "524288"
    assert p["max_wal_size"][0] == "4096"


def test_workload_settings_for_mlflow():
    p = params(8 * GIB)
    assert p["random_page_cost"][0] == "1.1"
    assert p["idle_in_transaction_session_timeout"][0] == "60000"
    assert p["log_min_duration_statement"][0] == "500"
    assert p["rds.force_ssl"][0] == "1"
    assert p["password_encryption"][0] == "scram-sha-256"


def test_scales_with_memory_and_respects_caps():
    small, large = params(1 * GIB), params(256 * GIB)
    assert int(small["shared_buffers"][0]) * PAGE_BYTES == 256 * MIB
    assert int(small["max_connections"][0]) == 25
    assert int(large["maintenance_work_mem"][0]) * KIB == 2 * GIB  # capped
    assert int(large["wal_buffers"][0]) * PAGE_BYTES == 64 * MIB  # capped
    assert int(large["max_wal_size"][0]) * MIB == 16 * GIB  # capped
    assert int(large["work_mem"][0]) * KIB == 256 * MIB  # capped


def test_max_connections_override_wins():
    assert params(8 * GIB, max_connections=450)["max_connections"][0] == "450"


def test_too_little_memory_is_refused():
    with pytest.raises(ValueError, match="512 MiB"):
        render_postgres_parameters(PostgresTuning(memory_bytes=256 * MIB))


@pytest.mark.parametrize(
    ("instance_class", "gib"),
    [("db.t4g.micro", 1), ("db.t4g.medium", 4), ("db.m6g.large", 8), ("db.r6g.large", 16), ("db.r7g.2xlarge", 64)],
)
def test_instance_class_memory(instance_class: str, gib: int):
    assert instance_memory_bytes(instance_class) == gib * GIB


@pytest.mark.parametrize("instance_class", ["db.x9.large", "db.r6g.micro", "r6g.large", "db.t4g.24xlarge", ""])
def test_unknown_instance_class_is_an_error(instance_class: str):
    with pytest.raises(UnknownInstanceClassError):
        instance_memory_bytes(instance_class)


def test_local_settings_map_every_rds_only_parameter():
    rendered = render_postgres_parameters(PostgresTuning(memory_bytes=1 * GIB))
    local = local_postgres_settings(rendered)
    assert not any(name.startswith("rds.") for name in local)
    assert local["ssl"] == "on"
    assert {p.name for p in rendered if p.rds_only} <= set(RDS_ONLY_LOCAL_MAPPINGS)
    # Everything else is passed through unchanged.
    for parameter in rendered:
        if not parameter.rds_only:
            assert local[parameter.name] == parameter.value

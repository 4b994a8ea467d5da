"""RDS rules: mutations of the database resources as the real program registers them."""

from __future__ import annotations

from typing import Any

import pytest

from policy.rules import rds
from tests.policy.harness import Captured, capture, one, resource_violations, stack_violations

INSTANCE = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"

POLICIES_WITH_FAILING_CASES = {
    rds.rds_storage_encrypted.name,
    rds.rds_not_publicly_accessible.name,
    rds.rds_backup_retention.name,
    rds.rds_deletion_protection_in_prod.name,
    rds.rds_force_ssl.name,
    rds.rds_parameter_group_attached.name,
}


def instance(stack: str) -> Captured:
    return one(capture(stack), INSTANCE, "db-instance")


def with_props(resource: Captured, **props: Any) -> Captured:
    def change(raw: dict[str, Any]) -> None:
        for key, value in props.items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value

    return resource.mutated(change)


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("value", [False, None])
def test_storage_must_be_encrypted(stack: str, value: bool | None) -> None:
    assert resource_violations(rds.rds_storage_encrypted, instance(stack)) == []
    (message,) = resource_violations(rds.rds_storage_encrypted, with_props(instance(stack), storageEncrypted=value))
    assert "storageEncrypted" in message


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize("value", [True, "true"])
def test_instance_must_not_be_public(stack: str, value: object) -> None:
    assert resource_violations(rds.rds_not_publicly_accessible, instance(stack)) == []
    assert resource_violations(rds.rds_not_publicly_accessible, with_props(instance(stack), publiclyAccessible=value))


def test_unset_public_access_is_the_private_default() -> None:
    assert (
        resource_violations(rds.rds_not_publicly_accessible, with_props(instance("dev"), publiclyAccessible=None)) == []
    )


@pytest.mark.parametrize(
    ("stack", "days", "fails"),
    [
        ("dev", 1.0, False),  # dev's stack file: one day is the floor
        ("dev", 0.0, True),
        ("dev", None, True),  # the provider's default is 0: no backups
        ("prod", 14.0, False),  # prod's stack file
        ("prod", 7.0, False),
        ("prod", 6.0, True),
        ("prod", 1.0, True),
    ],
)
def test_backup_retention_floor_depends_on_the_stack(stack: str, days: float | None, fails: bool) -> None:
    found = resource_violations(rds.rds_backup_retention, with_props(instance(stack), backupRetentionPeriod=days))
    assert bool(found) is fails, found


def test_backup_retention_floors_are_configurable() -> None:
    dev = instance("dev")
    assert resource_violations(rds.rds_backup_retention, dev, config={"minimumDays": 3})
    prod_named_dev = resource_violations(rds.rds_backup_retention, dev, config={"prodStacks": ["dev"]})
    assert prod_named_dev == ["backupRetentionPeriod is 1 day(s); a production stack needs at least 7."]


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"deletionProtection": False}, "deletionProtection"),
        ({"deletionProtection": None}, "deletionProtection"),
        ({"skipFinalSnapshot": True}, "skipFinalSnapshot"),
        ({"skipFinalSnapshot": None}, "skipFinalSnapshot"),
    ],
)
def test_prod_instance_needs_deletion_protection_and_a_final_snapshot(props: dict[str, Any], expected: str) -> None:
    assert resource_violations(rds.rds_deletion_protection_in_prod, instance("prod")) == []
    (message,) = resource_violations(rds.rds_deletion_protection_in_prod, with_props(instance("prod"), **props))
    assert expected in message


def test_dev_instance_may_be_deleted() -> None:
    dev = instance("dev")
    assert dev.raw["deletionProtection"] is False and dev.raw["skipFinalSnapshot"] is True
    assert resource_violations(rds.rds_deletion_protection_in_prod, dev) == []


def _set_force_ssl(value: str | None) -> Any:
    def change(raw: dict[str, Any]) -> None:
        raw["parameters"] = [p for p in raw["parameters"] if p["name"] != "rds.force_ssl"]
        if value is not None:
            raw["parameters"].append({"name": "rds.force_ssl", "value": value, "applyMethod": "immediate"})

    return change


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize(("value", "expected"), [("0", "must be 1"), (None, "not set")])
def test_parameter_group_must_force_ssl(stack: str, value: str | None, expected: str) -> None:
    params = one(capture(stack), PARAMS, "db-params")
    assert resource_violations(rds.rds_force_ssl, params) == []
    (message,) = resource_violations(rds.rds_force_ssl, params.mutated(_set_force_ssl(value)))
    assert expected in message


def test_force_ssl_applies_to_postgres_families_only() -> None:
    params = one(capture("dev"), PARAMS, "db-params").mutated(_set_force_ssl(None))
    mysql = params.mutated(lambda raw: raw.update(family="mysql8.0"))
    assert resource_violations(rds.rds_force_ssl, mysql) == []


def test_instance_must_use_the_stacks_parameter_group() -> None:
    resources = capture("prod")
    assert stack_violations(rds.rds_parameter_group_attached, resources) == []
    db = instance("prod")
    default_group = Captured(db.typ, db.name, db.urn, {**db.raw, "parameterGroupName": "default.postgres16"}, {})
    found = stack_violations(rds.rds_parameter_group_attached, [default_group if r is db else r for r in resources])
    ((message, urn),) = found
    assert "parameter group" in message and urn == db.urn


def test_parameter_group_link_by_name_without_a_dependency() -> None:
    db = instance("prod")
    params = one(capture("prod"), PARAMS, "db-params")
    named_params = Captured(params.typ, params.name, params.urn, {**params.raw, "name": "mlflow-pg"}, {})
    named_db = Captured(db.typ, db.name, db.urn, {**db.raw, "parameterGroupName": "mlflow-pg"}, {})
    assert stack_violations(rds.rds_parameter_group_attached, [named_params, named_db]) == []

"""Static analysis as Terraform would see it: the AWS resources of both stack files as the
Terraform plan of a first apply (tests/terraform_plan.py), scanned by checkov's terraform_plan
framework offline. Clean except for checkov-exceptions.txt; a new failing check fails here."""

from __future__ import annotations

import collections
import copy
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pulumi_harness import Recorded, captured_program
from tests.terraform_plan import (
    TERRAFORM_TYPES,
    Finding,
    UnmappedTypeError,
    address_name,
    exceptions,
    plan_for,
    run_checkov,
    unexpected,
)

STACKS = ("dev", "prod")
BUDGET_SECONDS = 90


def records(stack: str) -> list[Recorded]:
    return list(captured_program(stack)[0].resources)


@functools.cache
def scan() -> tuple[tuple[Finding, ...], float]:
    """Both stacks in one checkov run (its start-up is most of the time)."""
    plans = {stack: plan_for(records(stack)) for stack in STACKS}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as directory:
        findings = run_checkov(plans, Path(directory))
    return tuple(findings), time.monotonic() - started


@pytest.mark.parametrize("stack", STACKS)
def test_the_plan_is_clean_except_for_the_accepted_exceptions(stack: str):
    findings, _ = scan()
    assert unexpected(stack, findings, exceptions()) == []


def test_every_exception_still_matches_a_failing_check():
    """A stale exception would silently accept the next failure of that check: remove it."""
    findings, _ = scan()
    failing = [(stack, f) for stack in STACKS for f in findings if not f.passed and f.file.startswith(f"{stack}.")]
    stale = [
        f"{e.stack} {e.check_id} {e.address}"
        for e in exceptions()
        if not any(e.covers(stack, finding) for stack, finding in failing)
    ]
    assert stale == []


def test_the_scan_of_both_stacks_fits_the_budget():
    _, seconds = scan()
    assert seconds <= BUDGET_SECONDS


@pytest.mark.parametrize("stack", STACKS)
def test_every_recorded_aws_resource_is_in_the_plan(stack: str):
    """Counted per type: nothing is dropped on the way to the plan, and every type is mapped."""
    recorded = [r for r in records(stack) if r.typ.startswith("aws:")]
    plan = plan_for(records(stack))
    planned = collections.Counter(r["type"] for r in plan["planned_values"]["root_module"]["resources"])
    expected = collections.Counter(TERRAFORM_TYPES[r.typ] for r in recorded)
    assert {t: planned[t] for t in expected} == expected
    assert sum(expected.values()) == len(recorded) >= 60


@pytest.mark.parametrize("stack", STACKS)
def test_checkov_judges_every_planned_resource_of_a_type_it_checks(stack: str):
    """If checkov checks a type at all, it saw every resource of that type in the plan."""
    findings, _ = scan()
    judged = {f.address for f in findings if f.file.startswith(f"{stack}.")}
    plan = plan_for(records(stack))
    by_type: dict[str, set[str]] = collections.defaultdict(set)
    for resource in plan["planned_values"]["root_module"]["resources"]:
        by_type[resource["type"]].add(resource["address"])
    checked_types = {address.split(".")[0] for address in judged}
    missing = {t: sorted(addresses - judged) for t, addresses in by_type.items() if t in checked_types}
    assert {t: m for t, m in missing.items() if m} == {}
    assert {"aws_s3_bucket", "aws_db_instance", "aws_eks_cluster", "aws_iam_role", "aws_kms_key"} <= checked_types


def test_an_unmapped_aws_type_is_an_error():
    stray = Recorded("aws:ec2/instance:Instance", "stray", {}, {}, None)
    with pytest.raises(UnmappedTypeError, match="aws:ec2/instance:Instance"):
        plan_for([stray])


def test_the_plan_carries_references_between_resources():
    plan = plan_for(records("prod"))
    expressions = {r["address"]: r["expressions"] for r in plan["configuration"]["root_module"]["resources"]}
    block = expressions["aws_s3_bucket_public_access_block.mlflow_prod_artifacts_public_access_block"]
    assert block["bucket"]["references"][-1] == "aws_s3_bucket.mlflow_prod_artifacts_bucket"
    instance = expressions["aws_db_instance.mlflow_prod_db_instance"]
    assert instance["parameter_group_name"]["references"][-1] == "aws_db_parameter_group.mlflow_prod_db_params"
    sse = expressions["aws_s3_bucket_server_side_encryption_configuration.mlflow_prod_artifacts_sse"]
    assert sse["rule"][0]["apply_server_side_encryption_by_default"][0]["kms_master_key_id"]["references"][-1] == (
        "aws_kms_key.mlflow_prod_artifacts_key"
    )
    # The reference replaces the value, as for any id unknown before apply.
    planned = {r["address"]: r["values"] for r in plan["planned_values"]["root_module"]["resources"]}
    assert "bucket" not in planned["aws_s3_bucket_public_access_block.mlflow_prod_artifacts_public_access_block"]


def test_pluralised_blocks_get_terraform_names():
    planned = {
        r["address"]: r["values"] for r in plan_for(records("prod"))["planned_values"]["root_module"]["resources"]
    }
    group = planned["aws_db_parameter_group.mlflow_prod_db_params"]
    assert "parameters" not in group and {p["name"] for p in group["parameter"]} >= {"rds.force_ssl"}
    lifecycle = planned["aws_s3_bucket_lifecycle_configuration.mlflow_prod_artifacts_lifecycle"]
    assert lifecycle["rule"][0]["filter"] == [{"prefix": ""}]


def _without_public_access_block(found: list[Recorded]) -> list[Recorded]:
    return [
        r
        for r in found
        if not (r.typ.endswith("BucketPublicAccessBlock") and r.name.endswith("artifacts-public-access-block"))
    ]


def _publicly_accessible_database(found: list[Recorded]) -> list[Recorded]:
    for record in found:
        if record.typ == "aws:rds/instance:Instance":
            record.inputs["publiclyAccessible"] = True
    return found


MUTATIONS: dict[str, tuple[Callable[[list[Recorded]], list[Recorded]], str]] = {
    "prod-without-public-access-block": (
        _without_public_access_block,
        "CKV2_AWS_6 aws_s3_bucket.mlflow_prod_artifacts_bucket",
    ),
    "prod-public-database": (_publicly_accessible_database, "CKV_AWS_17 aws_db_instance.mlflow_prod_db_instance"),
}


@functools.cache
def mutated_scan() -> tuple[Finding, ...]:
    """Each mutation of prod's resources as its own plan, all in one checkov run."""
    plans = {label: plan_for(change(copy.deepcopy(records("prod")))) for label, (change, _) in MUTATIONS.items()}
    with tempfile.TemporaryDirectory() as directory:
        return tuple(run_checkov(plans, Path(directory)))


@pytest.mark.parametrize("label", MUTATIONS)
def test_a_mutation_fails_the_scan(label: str):
    """The scan can fail: a new failing check is reported as unexpected (and fails the build)."""
    _, failure = MUTATIONS[label]
    assert unexpected("prod", mutated_scan(), exceptions(), label) == [failure]


def test_an_exception_needs_a_reason_and_matches_by_stack_check_and_address():
    with pytest.raises(ValueError, match=r"checkov-exceptions\.txt:1"):
        exceptions("dev CKV_AWS_157 aws_db_instance.x")
    (accepted,) = exceptions("dev CKV_AWS_157 aws_db_instance.*_db_instance  dev is single-AZ")
    finding = Finding("CKV_AWS_157", "aws_db_instance.mlflow_dev_db_instance", "dev.tfplan.json", False)
    assert accepted.covers("dev", finding)
    assert not accepted.covers("prod", finding)
    assert address_name("mlflow-dev-db-instance") == "mlflow_dev_db_instance"
    assert unexpected("dev", [finding], []) == ["CKV_AWS_157 aws_db_instance.mlflow_dev_db_instance"]

"""Every resource's URN is unchanged or carries an alias.

A URN is the resource's identity in the stack's state: a child moved to another component or
renamed gets a new URN, and ``pulumi up`` deletes the old object and creates a new one — for a
database, a bucket or a KMS key that is data loss — unless the new resource lists the old URN in
``aliases`` (Pulumi docs, "Resource option: aliases"). The committed ``tests/cloud/urns/`` are
the URNs of the last reviewed program; an intended change is committed with
``.venv/bin/python -m tests.program_snapshot --update-urns`` so that the review shows it.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pytest

from tests.program_snapshot import VARIANTS, snapshot, urn_changes, urn_file
from tests.pulumi_harness import run_mocked


@pytest.mark.parametrize(("stack", "mode"), VARIANTS, ids=[f"{s}-{m}" for s, m in VARIANTS])
def test_urns_are_the_committed_ones_or_aliased(stack: str, mode: str) -> None:
    committed = set(urn_file(stack, mode).read_text().split())
    current = snapshot(stack, mode)
    changes = urn_changes(committed, set(current["urns"]), current["aliases"])
    assert not changes, (
        "URNs changed; alias moved resources, or commit an intended change with "
        "`.venv/bin/python -m tests.program_snapshot --update-urns`:\n" + "\n".join(changes)
    )


def _moved_bucket(aliases: list[pulumi.Alias]) -> tuple[set[str], dict[str, list[str]]]:
    """A bucket that used to be a child of the stack, now moved under a component."""

    def build() -> dict[str, object]:
        component = pulumi.ComponentResource("mlflow:index:Example", "example")
        aws.s3.Bucket("artifacts", opts=pulumi.ResourceOptions(parent=component, aliases=aliases))
        return {}

    mocks, _, _ = run_mocked(build)
    return set(mocks.engine_urns), mocks.aliases


def test_a_moved_resource_without_an_alias_is_reported_as_deleted() -> None:
    before = {"urn:pulumi:test::mlflow-platform::aws:s3/bucket:Bucket::artifacts"}
    current, aliases = _moved_bucket([])
    assert "urn:pulumi:test::mlflow-platform::mlflow:index:Example$aws:s3/bucket:Bucket::artifacts" in current
    changes = urn_changes(before, current, aliases)
    assert f"deleted (no alias names it): {next(iter(before))}" in changes


def test_an_alias_to_the_old_parent_keeps_the_resource() -> None:
    before = {"urn:pulumi:test::mlflow-platform::aws:s3/bucket:Bucket::artifacts"}
    current, aliases = _moved_bucket([pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)])
    assert not [c for c in urn_changes(before, current, aliases) if c.startswith("deleted")]


def test_engine_urns_keep_the_whole_parent_chain() -> None:
    """The SDK's mock URN keeps only the parent's type; the engine keeps the chain, so a
    component moved under another grandparent must show up."""

    def build() -> dict[str, object]:
        outer = pulumi.ComponentResource("mlflow:index:Outer", "outer")
        inner = pulumi.ComponentResource("mlflow:index:Inner", "inner", opts=pulumi.ResourceOptions(parent=outer))
        aws.s3.Bucket("leaf", opts=pulumi.ResourceOptions(parent=inner))
        return {}

    mocks, _, _ = run_mocked(build)
    assert (
        "urn:pulumi:test::mlflow-platform::mlflow:index:Outer$mlflow:index:Inner$aws:s3/bucket:Bucket::leaf"
        in mocks.engine_urns
    )

"""The policy pack as Pulumi runs it: ``policy/__main__.py`` in its own process, spoken to over the
analyzer gRPC protocol the CLI uses. This covers what the in-process tests cannot: the pack
starts, registers every rule as mandatory, deserialises real protobuf properties, turns values
unknown during preview into an advisory "can't run during preview", and resolves property
dependencies for stack rules.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policy import rules
from tests.policy.harness import Captured, capture, one
from tests.pulumi_harness import ROOT

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # Exactly how pulumi-analyzer-policy-python starts a pack: `python -m pulumi.policy <engine> <dir>`.
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:0", str(ROOT / "policy")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().decode().strip()
        if not port.isdigit():
            errors = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"the pack did not start: {port!r}\n{errors}")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=10)


def struct(props: Mapping[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(dict(props))
    return message


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource: Captured) -> list[tuple[str, int, str]]:
    request = analyzer_pb2.AnalyzeRequest(
        type=resource.typ, properties=struct(resource.raw), urn=resource.urn, name=resource.name
    )
    response = stub.Analyze(request)
    return [(d.policyName, d.enforcementLevel, d.message) for d in response.diagnostics]


def analyze_stack(stub: analyzer_pb2_grpc.AnalyzerStub, resources: Sequence[Captured]) -> list[tuple[str, str]]:
    urns = {r.name: r.urn for r in resources}
    request = analyzer_pb2.AnalyzeStackRequest(
        resources=[
            analyzer_pb2.AnalyzerResource(
                type=r.typ,
                properties=struct(r.raw),
                urn=r.urn,
                name=r.name,
                propertyDependencies={
                    prop: analyzer_pb2.AnalyzerPropertyDependencies(urns=[urns[n] for n in names if n in urns])
                    for prop, names in r.deps.items()
                },
            )
            for r in resources
        ]
    )
    return [(d.policyName, d.urn) for d in stub.AnalyzeStack(request).diagnostics]


def test_the_pack_registers_every_rule_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "mlflow-platform-security"
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in rules.ALL_POLICIES)
    assert {p.enforcementLevel for p in info.policies} == {analyzer_pb2.MANDATORY}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_captured_resources_pass_through_the_protocol(analyzer: analyzer_pb2_grpc.AnalyzerStub, stack: str) -> None:
    resources = capture(stack)
    assert [d for r in resources for d in analyze(analyzer, r)] == []
    assert analyze_stack(analyzer, resources) == []


def test_a_violation_is_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    db = one(capture("prod"), "aws:rds/instance:Instance", "db-instance")
    found = analyze(analyzer, db.mutated(lambda raw: raw.update(publiclyAccessible=True)))
    assert [(name, level) for name, level, _ in found] == [("rds-not-publicly-accessible", analyzer_pb2.MANDATORY)]


def test_unknown_values_in_preview_are_advisory_not_a_pass(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    policy = one(capture("prod"), "aws:s3/bucketPolicy:BucketPolicy", "artifacts-policy")
    ((name, level, message),) = analyze(analyzer, policy.mutated(lambda raw: raw.update(policy=UNKNOWN_STRING_VALUE)))
    assert name == "s3-tls-only-bucket-policy"
    assert level == analyzer_pb2.ADVISORY
    assert "can't run policy" in message and "during preview" in message


def test_stack_rules_use_the_engines_property_dependencies(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    """Bucket names are unknown in a first preview; the link from companion to bucket is the dependency."""
    resources = [
        r.mutated(lambda raw: raw.update(bucket=UNKNOWN_STRING_VALUE)) if "bucket" in r.raw else r
        for r in capture("prod")
        if r.name != "mlflow-prod-artifacts-versioning"
    ]
    found = analyze_stack(analyzer, resources)
    assert found == [("s3-bucket-hardening-present", one(resources, "aws:s3/bucket:Bucket", "artifacts-bucket").urn)]

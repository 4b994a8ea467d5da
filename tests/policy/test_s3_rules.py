"""S3 rules: mutations of the artifact bucket's resources as the real program registers them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from policy.rules import s3
from tests.policy.harness import Captured, capture, one, resource_violations, stack_violations

BPA = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
POLICY = "aws:s3/bucketPolicy:BucketPolicy"
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
LOGGING = "aws:s3/bucketLogging:BucketLogging"

POLICIES_WITH_FAILING_CASES = {
    s3.s3_block_public_access.name,
    s3.s3_tls_only_policy.name,
    s3.s3_default_encryption.name,
    s3.s3_versioning.name,
    s3.s3_bucket_companions.name,
    s3.s3_access_logging_in_prod.name,
}


def edit_policy(change: Callable[[dict[str, Any]], object]) -> Callable[[dict[str, Any]], None]:
    def apply(raw: dict[str, Any]) -> None:
        document = json.loads(raw["policy"])
        change(document)
        raw["policy"] = json.dumps(document)

    return apply


@pytest.mark.parametrize("flag", s3.PUBLIC_ACCESS_FLAGS)
@pytest.mark.parametrize("value", [False, None])
def test_each_block_public_access_flag_is_required(flag: str, value: bool | None) -> None:
    bpa = one(capture("prod"), BPA, "artifacts-public-access-block")
    assert resource_violations(s3.s3_block_public_access, bpa) == []

    def change(raw: dict[str, Any]) -> None:
        if value is None:
            del raw[flag]
        else:
            raw[flag] = value

    (message,) = resource_violations(s3.s3_block_public_access, bpa.mutated(change))
    assert flag in message


def test_account_level_block_public_access_is_checked_too() -> None:
    props = {flag: True for flag in s3.PUBLIC_ACCESS_FLAGS}
    typ = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
    assert (
        resource_violations(s3.s3_block_public_access, Captured(typ, "acct", "urn:pulumi:prod::p::x::acct", props))
        == []
    )
    props["ignorePublicAcls"] = False
    assert resource_violations(s3.s3_block_public_access, Captured(typ, "acct", "urn:pulumi:prod::p::x::acct", props))


TLS_BREAKERS: dict[str, Callable[[dict[str, Any]], object]] = {
    "no condition": lambda d: d["Statement"][0].pop("Condition"),
    "allow instead of deny": lambda d: d["Statement"][0].update(Effect="Allow"),
    "objects not covered": lambda d: d["Statement"][0].update(Resource=d["Statement"][0]["Resource"][:1]),
    "bucket not covered": lambda d: d["Statement"][0].update(Resource=d["Statement"][0]["Resource"][1:]),
    "one principal only": lambda d: d["Statement"][0].update(Principal={"AWS": "arn:aws:iam::123456789012:root"}),
    "only GetObject denied": lambda d: d["Statement"][0].update(Action="s3:GetObject"),
    "secure transport true": lambda d: d["Statement"][0]["Condition"]["Bool"].update({"aws:SecureTransport": "true"}),
    "no statements": lambda d: d.update(Statement=[]),
}


@pytest.mark.parametrize("breaker", sorted(TLS_BREAKERS))
@pytest.mark.parametrize("bucket", ["artifacts-policy", "artifacts-logs-policy"])
def test_tls_only_policy_fails_when_weakened(bucket: str, breaker: str) -> None:
    policy = one(capture("prod"), POLICY, bucket)
    assert resource_violations(s3.s3_tls_only_policy, policy) == []
    assert resource_violations(s3.s3_tls_only_policy, policy.mutated(edit_policy(TLS_BREAKERS[breaker])))


def test_tls_only_policy_accepts_equivalent_forms() -> None:
    """Principal {"AWS": "*"}, Action "*" and a boolean false are the same deny."""

    def change(document: dict[str, Any]) -> None:
        statement = document["Statement"][0]
        statement.update(Principal={"AWS": ["*"]}, Action=["*"])
        statement["Condition"]["Bool"]["aws:SecureTransport"] = False

    policy = one(capture("prod"), POLICY, "artifacts-policy")
    assert resource_violations(s3.s3_tls_only_policy, policy.mutated(edit_policy(change))) == []


def test_tls_only_policy_that_is_not_json_fails() -> None:
    policy = one(capture("prod"), POLICY, "artifacts-policy")
    (message,) = resource_violations(s3.s3_tls_only_policy, policy.mutated(lambda raw: raw.update(policy="{oops")))
    assert "not a JSON policy document" in message


ENCRYPTION_BREAKERS: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "kms without a key": (
        lambda raw: raw["rules"][0]["applyServerSideEncryptionByDefault"].pop("kmsMasterKeyId"),
        "AWS-managed aws/s3 key",
    ),
    "no default rule": (lambda raw: raw["rules"][0].pop("applyServerSideEncryptionByDefault"), "No default"),
    "no rules": (lambda raw: raw.update(rules=[]), "No default"),
    "unknown algorithm": (
        lambda raw: raw["rules"][0]["applyServerSideEncryptionByDefault"].update(sseAlgorithm="none"),
        "Unsupported",
    ),
}


@pytest.mark.parametrize("breaker", sorted(ENCRYPTION_BREAKERS))
def test_default_encryption_fails_when_weakened(breaker: str) -> None:
    sse = one(capture("prod"), SSE, "artifacts-sse")
    assert resource_violations(s3.s3_default_encryption, sse) == []
    change, expected = ENCRYPTION_BREAKERS[breaker]
    (message,) = resource_violations(s3.s3_default_encryption, sse.mutated(change))
    assert expected in message


def test_sse_s3_is_accepted() -> None:
    """The access-log bucket uses SSE-S3 (S3 cannot deliver access logs to SSE-KMS buckets)."""
    log_sse = one(capture("prod"), SSE, "artifacts-logs-sse")
    assert log_sse.raw["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert resource_violations(s3.s3_default_encryption, log_sse) == []


@pytest.mark.parametrize("status", ["Suspended", "Disabled", None])
def test_versioning_must_be_enabled(status: str | None) -> None:
    versioning = one(capture("dev"), VERSIONING, "artifacts-versioning")
    assert resource_violations(s3.s3_versioning, versioning) == []
    broken = versioning.mutated(lambda raw: raw["versioningConfiguration"].update(status=status))
    (message,) = resource_violations(s3.s3_versioning, broken)
    assert "Enabled" in message


@pytest.mark.parametrize("stack", ["dev", "prod"])
@pytest.mark.parametrize(
    ("companion", "label"),
    [
        ("artifacts-public-access-block", "BucketPublicAccessBlock"),
        ("artifacts-sse", "BucketServerSideEncryptionConfiguration"),
        ("artifacts-versioning", "BucketVersioning"),
        ("artifacts-policy", "BucketPolicy"),
    ],
)
def test_a_bucket_missing_a_hardening_resource_fails(stack: str, companion: str, label: str) -> None:
    resources = [r for r in capture(stack) if r.name != f"mlflow-{stack}-{companion}"]
    assert len(resources) == len(capture(stack)) - 1
    ((message, urn),) = stack_violations(s3.s3_bucket_companions, resources)
    assert label in message
    assert urn is not None and urn.endswith(f"::mlflow-{stack}-artifacts-bucket")


def test_hardening_resources_link_by_name_when_no_dependency_is_recorded() -> None:
    """Imported or explicitly named buckets: the companion's ``bucket`` input is the bucket's name."""

    def named(resource: Captured, bucket: str) -> Captured:
        if resource.typ != "aws:s3/bucket:Bucket" and "bucket" not in resource.raw:
            return resource
        return Captured(resource.typ, resource.name, resource.urn, {**resource.raw, "bucket": bucket}, {})

    resources = [named(r, "art") for r in capture("dev")]
    assert stack_violations(s3.s3_bucket_companions, resources) == []
    elsewhere = [named(r, "other") if r.typ == VERSIONING else r for r in resources]
    ((message, _),) = stack_violations(s3.s3_bucket_companions, elsewhere)
    assert "BucketVersioning" in message


def test_prod_bucket_without_access_logging_fails() -> None:
    """Without the BucketLogging the log bucket is no log target either: both are reported."""
    resources = [r for r in capture("prod") if r.typ != LOGGING]
    found = stack_violations(s3.s3_access_logging_in_prod, resources)
    assert all("server access logging" in message for message, _ in found)
    assert sorted(str(urn).rsplit("::", 1)[-1] for _, urn in found) == [
        "mlflow-prod-artifacts-bucket",
        "mlflow-prod-artifacts-logs-bucket",
        "mlflow-prod-artifacts-replica-bucket",
        "mlflow-prod-artifacts-replica-logs-bucket",
    ]


def test_the_log_bucket_itself_needs_no_logging_but_the_artifact_bucket_does() -> None:
    """Point the logging at a different bucket: the artifact bucket loses it, the log bucket is not exempt."""
    logging = one(capture("prod"), LOGGING, "artifacts-logging")
    rewired = Captured(
        logging.typ, logging.name, logging.urn, logging.raw, {"bucket": ["mlflow-prod-artifacts-logs-bucket"]}
    )
    resources = [rewired if r.name == logging.name else r for r in capture("prod")]
    found = stack_violations(s3.s3_access_logging_in_prod, resources)
    assert [urn.rsplit("::", 1)[-1] for _, urn in found if urn] == ["mlflow-prod-artifacts-bucket"]


def test_access_logging_is_required_only_in_production_stacks() -> None:
    dev = capture("dev")
    assert not any(r.typ == LOGGING for r in dev)
    assert stack_violations(s3.s3_access_logging_in_prod, dev) == []
    # Which stacks are production is policy configuration (--policy-pack-config).
    found = stack_violations(s3.s3_access_logging_in_prod, dev, config={"prodStacks": ["dev"]})
    assert len(found) == 1

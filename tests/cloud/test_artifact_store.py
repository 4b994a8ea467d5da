"""ArtifactStore: every hardening property asserted on the inputs AWS would receive."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from components.artifact_store import ArtifactStore
from stackconfig.schema import ArtifactsConfig
from tests.pulumi_harness import RecordingMocks, run_mocked

COMPONENT = "mlflow:index:ArtifactStore"


def build(settings: ArtifactsConfig) -> tuple[RecordingMocks, dict[str, Any]]:
    def program() -> dict[str, Any]:
        store = ArtifactStore("art", {"settings": settings})
        return {
            "root": store.artifact_root,
            "bucket": store.bucket_name,
            "arn": store.bucket_arn,
            "key": store.kms_key_arn,
        }

    mocks, outputs, _ = run_mocked(program)
    return mocks, outputs


def test_uses_current_v7_resources_only():
    mocks, _ = build(ArtifactsConfig())
    types = {r.typ for r in mocks.resources}
    assert not [t for t in types if "V2" in t], types
    bucket = mocks.one("aws:s3/bucket:Bucket", "art-bucket")
    for inline in ("serverSideEncryptionConfiguration", "versioning", "lifecycleRules", "loggings", "policy", "acl"):
        assert inline not in bucket.inputs


@pytest.mark.parametrize("logging", [True, False])
def test_every_bucket_blocks_public_access_and_disables_acls(logging: bool):
    mocks, _ = build(ArtifactsConfig(access_logging=logging))
    buckets = mocks.of_type("aws:s3/bucket:Bucket")
    assert len(buckets) == (2 if logging else 1)
    blocks = mocks.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    ownership = mocks.of_type("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert sorted(b.inputs["bucket"] for b in blocks) == sorted(f"{b.name}-id" for b in buckets)
    for block in blocks:
        assert {
            k: block.inputs[k]
            for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        } == dict.fromkeys(("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True)
    assert sorted(o.inputs["bucket"] for o in ownership) == sorted(f"{b.name}-id" for b in buckets)
    assert all(o.inputs["rule"] == {"objectOwnership": "BucketOwnerEnforced"} for o in ownership)


def test_sse_kms_with_a_rotating_customer_key():
    mocks, outputs = build(ArtifactsConfig(encryption="kms"))
    key = mocks.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    sse = mocks.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "art-sse")
    rule = sse.inputs["rules"][0]
    assert rule["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": outputs["key"]}
    assert rule["bucketKeyEnabled"] is True
    assert sse.inputs["bucket"] == "art-bucket-id"


def test_sse_s3_is_selectable_and_creates_no_key():
    mocks, outputs = build(ArtifactsConfig(encryption="s3"))
    assert mocks.of_type("aws:kms/key:Key") == []
    sse = mocks.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "art-sse")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    assert outputs["key"] is None


def test_versioning_and_lifecycle():
    mocks, _ = build(ArtifactsConfig(noncurrent_version_expiration_days=30, abort_incomplete_multipart_upload_days=3))
    versioning = mocks.one("aws:s3/bucketVersioning:BucketVersioning", "art-versioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    rules = {
        r["id"]: r
        for r in mocks.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "art-lifecycle").inputs[
            "rules"
        ]
    }
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 3}
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"] == {"noncurrentDays": 30}
    assert all(r["status"] == "Enabled" for r in rules.values())


def test_bucket_policy_denies_non_tls_on_bucket_and_objects():
    mocks, outputs = build(ArtifactsConfig())
    import json

    policy = json.loads(mocks.one("aws:s3/bucketPolicy:BucketPolicy", "art-policy").inputs["policy"])
    deny = [s for s in policy["Statement"] if s["Effect"] == "Deny"]
    assert deny == [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [outputs["arn"], outputs["arn"] + "/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ]
    assert not [s for s in policy["Statement"] if s["Effect"] == "Allow"]


def test_access_logging_goes_to_a_locked_down_log_bucket():
    import json

    mocks, _ = build(ArtifactsConfig(access_logging=True))
    logging = mocks.one("aws:s3/bucketLogging:BucketLogging")
    assert logging.inputs["bucket"] == "art-bucket-id"
    assert logging.inputs["targetBucket"] == "art-logs-bucket-id"
    log_policy = json.loads(mocks.one("aws:s3/bucketPolicy:BucketPolicy", "art-logs-policy").inputs["policy"])
    statements = {s["Sid"]: s for s in log_policy["Statement"]}
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    allow = statements["AllowS3ServerAccessLogsFromArtifactBucket"]
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"}
    assert allow["Action"] == "s3:PutObject"
    assert allow["Condition"]["ArnLike"]["aws:SourceArn"].startswith("arn:aws:s3:::art-bucket")


def test_no_logging_resources_when_disabled():
    mocks, _ = build(ArtifactsConfig(access_logging=False))
    assert mocks.of_type("aws:s3/bucketLogging:BucketLogging") == []


def test_outputs_and_child_naming():
    mocks, outputs = build(ArtifactsConfig(prefix="teams/mlflow"))
    assert outputs["root"] == f"s3://{outputs['bucket']}/teams/mlflow"
    children = [r for r in mocks.resources if r.typ != COMPONENT]
    assert all(r.name.startswith("art-") for r in children)
    child_urns = [u for u in mocks.urns if not u.endswith(f"{COMPONENT}::art")]
    assert child_urns and all(f"{COMPONENT}$" in u for u in child_urns), child_urns


@pytest.mark.parametrize("bucket", ["art", "art-logs"])
def test_each_buckets_configuration_is_serialised(bucket: str):
    """S3 answers OperationAborted ("A conflicting conditional operation is currently in
    progress") to overlapping configuration calls on a new bucket: each waits for the previous
    one, and the policy comes after the public access block."""
    mocks, _ = build(ArtifactsConfig(access_logging=True))
    chain = [
        f"{bucket}-bucket",
        f"{bucket}-public-access-block",
        f"{bucket}-ownership",
        f"{bucket}-sse",
        f"{bucket}-versioning",
        f"{bucket}-lifecycle",
        f"{bucket}-policy",
    ]
    for earlier, later in itertools.pairwise(chain):
        assert earlier in mocks.dependencies[later], f"{later} does not wait for {earlier}"
    assert mocks.depends_on(f"{bucket}-policy", f"{bucket}-public-access-block")


def test_logging_waits_for_both_bucket_policies():
    mocks, _ = build(ArtifactsConfig(access_logging=True))
    assert {"art-policy", "art-logs-policy"} <= mocks.dependencies["art-logging"]


@pytest.mark.parametrize("logging", [True, False])
def test_lifecycle_rules_filter_on_an_empty_prefix_not_an_empty_block(logging: bool):
    """``filter {}`` draws the provider's Invalid Attribute Combination warning."""
    mocks, _ = build(ArtifactsConfig(access_logging=logging))
    for lifecycle in mocks.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        assert [rule["filter"] for rule in lifecycle.inputs["rules"]] == [{"prefix": ""}] * len(
            lifecycle.inputs["rules"]
        )


REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"


def build_replicated(settings: ArtifactsConfig) -> RecordingMocks:
    def program() -> dict[str, Any]:
        store = ArtifactStore("art", {"settings": settings, "region": "us-east-1"})
        return {"arn": store.bucket_arn}

    mocks, _, _ = run_mocked(program)
    return mocks


def test_no_replica_by_default():
    mocks, _ = build(ArtifactsConfig())
    assert mocks.of_type(REPLICATION) == []
    assert not [r for r in mocks.resources if "replica" in r.name]


def test_replication_to_another_region_with_its_own_key_and_hardening():
    mocks = build_replicated(ArtifactsConfig(replication_region="us-west-2"))
    provider = mocks.one("pulumi:providers:aws", "art-replica-region")
    assert provider.inputs["region"] == "us-west-2"
    replica_key = mocks.one("aws:kms/key:Key", "art-replica-key")
    assert replica_key.inputs["enableKeyRotation"] is True
    # Every replica resource is created through the other region's provider.
    replica = [r for r in mocks.resources if r.name.startswith("art-replica-") and r.name != "art-replica-region"]
    assert replica and all(r.provider and "art-replica-region" in r.provider for r in replica)
    assert mocks.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "art-replica-public").inputs[
        "restrictPublicBuckets"
    ]
    sse = mocks.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "art-replica-sse"
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": "arn:aws:kms:us-east-1:123456789012:key/art-replica-key-7f3a2b",
    }
    assert mocks.one("aws:s3/bucketVersioning:BucketVersioning", "art-replica-versioning").inputs[
        "versioningConfiguration"
    ] == {"status": "Enabled"}
    # The replica's configuration is serialised like the source's, and it is logged in its region.
    assert mocks.depends_on("art-replica-policy", "art-replica-public-access-block")
    assert mocks.one("aws:s3/bucketLogging:BucketLogging", "art-replica-logging").inputs["targetBucket"] == (
        "art-replica-logs-bucket-id"
    )

    (config,) = mocks.of_type(REPLICATION)
    assert config.inputs["bucket"] == "art-bucket-id"
    assert config.inputs["role"] == "arn:aws:iam::123456789012:role/art-replication-7f3a2b"
    (rule,) = config.inputs["rules"]
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    assert rule["deleteMarkerReplication"] == {"status": "Enabled"}
    assert rule["destination"]["bucket"] == "arn:aws:s3:::art-replica-bucket-7f3a2b"
    assert rule["destination"]["encryptionConfiguration"] == {
        "replicaKmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/art-replica-key-7f3a2b"
    }
    assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
    # S3 refuses replication until both buckets are versioned and the role can act.
    assert {"art-versioning", "art-replica-versioning", "art-replication"} <= mocks.dependencies["art-replication"]


def test_the_replication_role_does_only_what_replication_needs():
    import json

    mocks = build_replicated(ArtifactsConfig(replication_region="us-west-2"))
    trust = json.loads(mocks.one("aws:iam/role:Role", "art-replication").inputs["assumeRolePolicy"])
    (statement,) = trust["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"] == {
        "StringEquals": {"aws:SourceAccount": "123456789012"},
        "ArnLike": {"aws:SourceArn": "arn:aws:s3:::art-bucket-7f3a2b"},
    }
    policy = json.loads(mocks.one("aws:iam/rolePolicy:RolePolicy", "art-replication").inputs["policy"])
    granted = {s["Sid"]: (s["Action"], s["Resource"]) for s in policy["Statement"]}
    source, replica = "arn:aws:s3:::art-bucket-7f3a2b", "arn:aws:s3:::art-replica-bucket-7f3a2b"
    assert granted["ReadReplicationConfiguration"] == (["s3:GetReplicationConfiguration", "s3:ListBucket"], source)
    assert granted["WriteReplicas"] == (
        ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
        replica + "/*",
    )
    kms = {s["Sid"]: s["Condition"]["StringEquals"]["kms:ViaService"] for s in policy["Statement"] if "Condition" in s}
    assert kms == {
        "DecryptSourceObjects": "s3.us-east-1.amazonaws.com",
        "EncryptReplicas": "s3.us-west-2.amazonaws.com",
    }
    assert not [s for s in policy["Statement"] if "*" in s["Action"] or s["Resource"] == "*"]


def test_replication_with_sse_s3_needs_no_keys():
    mocks = build_replicated(ArtifactsConfig(replication_region="eu-west-1", encryption="s3", access_logging=False))
    assert mocks.of_type("aws:kms/key:Key") == []
    (rule,) = mocks.one(REPLICATION).inputs["rules"]
    assert "encryptionConfiguration" not in rule["destination"] and "sourceSelectionCriteria" not in rule
    assert mocks.of_type("aws:s3/bucketLogging:BucketLogging") == []

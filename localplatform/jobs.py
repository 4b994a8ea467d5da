"""One-shot jobs the supervisor runs besides the bootstrap (``run_bootstrap.py``).

``python -m localplatform.jobs bucket|db-check <file>``: each reads a JSON file written by
``LocalPlatform`` and prints progress without secrets.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _connect(dsn: str, attempts: int = 30) -> Any:
    import psycopg2

    for attempt in range(attempts):
        try:
            return psycopg2.connect(dsn, connect_timeout=5)
        except psycopg2.OperationalError as error:
            if attempt == attempts - 1:
                raise
            print(f"  waiting for the database ({str(error).strip().splitlines()[0]})", flush=True)
            time.sleep(1)
    raise AssertionError("unreachable")


def db_check(config_file: Path) -> int:
    """Connect as the application role the way the server will, and prove the hop behind
    it (PgBouncer → PostgreSQL, or the direct connection) is TLS."""
    config = json.loads(config_file.read_text())
    for dsn in config["dsns"]:
        connection = _connect(dsn, attempts=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                row = cursor.fetchone()
        finally:
            connection.close()
        if row is None or row[0] is not True:
            print(f"  the server connection for {dsn.split(' dbname=')[0]} is not TLS: {row}", flush=True)
            return 1
        print(f"  ok: {dsn.split(' sslmode=')[0]} -> server connection over {row[1]}", flush=True)
    return 0


def bucket(config_file: Path) -> int:
    """Create the artifact bucket (idempotently) with the hardened settings."""
    import boto3
    from botocore.exceptions import ClientError

    from stackconfig.schema import ArtifactsConfig

    from . import artifact_bucket as spec

    config = json.loads(config_file.read_text())
    settings = ArtifactsConfig(**config["artifacts"])
    name = config["bucket"]
    session = boto3.Session(region_name=config["region"])
    s3 = session.client("s3", endpoint_url=config["endpoint"])
    try:
        s3.head_bucket(Bucket=name)
        print(f"  bucket {name} exists", flush=True)
    except ClientError:
        s3.create_bucket(Bucket=name)
        print(f"  created bucket {name}", flush=True)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=spec.public_access_block())
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=spec.ownership_controls())
    kms_key_arn = None
    if settings.encryption == "kms":
        kms = session.client("kms", endpoint_url=config["endpoint"])
        alias = f"alias/{name}"
        try:
            kms_key_arn = kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
        except ClientError:
            key = kms.create_key(Description=f"{name}: MLflow artifact encryption (emulated)")
            kms_key_arn = key["KeyMetadata"]["Arn"]
            kms.create_alias(AliasName=alias, TargetKeyId=key["KeyMetadata"]["KeyId"])
            kms.enable_key_rotation(KeyId=key["KeyMetadata"]["KeyId"])
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=spec.encryption_configuration(kms_key_arn))
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=spec.lifecycle_configuration(settings))
    # Not applied: the TLS-only bucket policy (spec.tls_only_policy). moto 5 evaluates bucket
    # policies but ignores their Condition blocks (moto/iam/access_control.py), so
    # "Deny unless aws:SecureTransport" would deny every request. The emulator serves HTTPS only,
    # which gives clients the property the policy enforces on AWS.
    s3.delete_bucket_policy(Bucket=name)
    print(
        f"  bucket {name}: public access blocked, ACLs disabled, {settings.encryption} encryption, "
        "versioning, lifecycle; TLS-only policy not applied (moto ignores policy conditions; "
        "the endpoint is HTTPS-only)",
        flush=True,
    )
    return 0


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m localplatform.jobs bucket|db-check <file>")
        return 2
    job, path = argv[0], Path(argv[1])
    os.umask(0o077)
    if job == "bucket":
        return bucket(path)
    if job == "db-check":
        return db_check(path)
    print(f"unknown job {job}")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

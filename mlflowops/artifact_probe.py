"""Artifact-store permission probe (``scripts/check_artifact_store.py``): the guide's failure #1
("training completes but the model is not saved: AccessDenied") found before training starts.

With boto3 and the standard AWS environment (plus ``MLFLOW_S3_ENDPOINT_URL`` for S3-compatible
stores), optionally as an assumed role, it writes a uniquely named object under the artifact
root, reads it back, lists the prefix and deletes the object, and reports each as allowed or
denied. Put and get are what training jobs need: the exit status is 1 when either is not
allowed. Listing is limited to the prefix by the rendered policy; delete is not granted to
training roles (``mlflow gc`` runs as the server), so a denied delete is reported, not fatal —
the probe object is then left behind under ``<root>/_mlflow_probe/``.
"""

from __future__ import annotations

import argparse
import os
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import cli
from .timeutil import utc_now, utc_now_iso

PROBE_DIR = "_mlflow_probe"
DENIED_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
REQUIRED = ("put", "get")


@dataclass(frozen=True)
class Probe:
    operation: str
    outcome: str
    """``allowed``, ``denied`` or ``error``."""
    detail: str = ""


def parse_root(root: str) -> tuple[str, str]:
    match = re.match(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(?P<prefix>.*))?$", root)
    if match is None:
        bucket = root.removeprefix("s3://").split("/", 1)[0] if root.startswith("s3://") else None
        if bucket:
            raise cli.ConfigError(
                f"--artifact-root {root!r}: {bucket!r} is not an S3 bucket name "
                "(3-63 lowercase letters, digits, dots and hyphens)"
            )
        raise cli.ConfigError(f"--artifact-root must be s3://<bucket>[/<prefix>], got {root!r}")
    return match["bucket"], (match["prefix"] or "").strip("/")


def _attempt(operation: str, action: Callable[[], str]) -> Probe:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return Probe(operation, "allowed", action())
    except ClientError as error:
        err: Any = error.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code == "NoSuchKey":  # S3 answers 404 (not 403) only to a caller allowed to read the key
            return Probe(operation, "allowed", "authorized, but there was no object to read (the put failed)")
        outcome = "denied" if code in DENIED_CODES or status == "403" else "error"
        return Probe(operation, outcome, cli.one_line(f"{code or status}: {err.get('Message', '')}", 200))
    except (BotoCoreError, ValueError) as error:
        return Probe(operation, "error", cli.one_line(str(error), 200))


def session_for(role_arn: str | None, region: str | None) -> Any:
    """The default boto3 session, or one holding the credentials of ``role_arn``. A refused
    AssumeRole is itself a denial (exit 1), reported in one line."""
    import boto3
    from botocore.exceptions import ClientError

    session = boto3.Session(region_name=region)
    if role_arn is None:
        return session
    sts = session.client("sts")  # botocore honours AWS_ENDPOINT_URL_STS for a non-AWS STS
    name = f"mlflow-artifact-probe-{utc_now().strftime('%Y%m%dT%H%M%SZ')}"
    try:
        creds = sts.assume_role(RoleArn=role_arn, RoleSessionName=name, DurationSeconds=900)["Credentials"]
    except ClientError as error:
        err: Any = error.response.get("Error", {})
        reason = cli.one_line(f"cannot assume {role_arn}: {err.get('Code')}: {err.get('Message', '')}")
        raise cli.Refused(reason) from None
    return boto3.Session(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        region_name=region,
    )


def probe_key(prefix: str) -> tuple[str, str]:
    """The probe's folder and a key no one else uses."""
    folder = f"{prefix}/{PROBE_DIR}/" if prefix else f"{PROBE_DIR}/"
    return folder, f"{folder}{utc_now().strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex}.txt"


def probe(session: Any, bucket: str, prefix: str, endpoint_url: str | None) -> tuple[str, list[Probe]]:
    s3 = session.client("s3", endpoint_url=endpoint_url)
    folder, key = probe_key(prefix)
    body = f"mlflow artifact-store probe {utc_now_iso()}\n".encode()

    def put() -> str:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return f"wrote s3://{bucket}/{key}"

    def get() -> str:
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        if data != body:
            raise ValueError("read back different bytes")
        return "read it back"

    def list_() -> str:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=folder, MaxKeys=1000)
        keys = {item["Key"] for item in listed.get("Contents", [])}
        return "listed the prefix" + ("" if key in keys else " (probe object not listed)")

    def delete() -> str:
        s3.delete_object(Bucket=bucket, Key=key)
        return "deleted the probe object"

    return key, [_attempt("put", put), _attempt("get", get), _attempt("list", list_), _attempt("delete", delete)]


def build_parser() -> cli.Parser:
    parser = cli.new_parser(
        "check_artifact_store.py",
        "Probe put/get/list/delete under an S3 artifact root, optionally as an assumed IAM role.",
        epilog="credentials: the standard AWS environment (AWS_PROFILE, AWS_ACCESS_KEY_ID, IRSA, ...);\n"
        "exit status: 0 put and get allowed, 1 put or get not allowed (or AssumeRole refused), 2 usage, 3 error",
    )
    parser.add_argument("--artifact-root", required=True, help="s3://bucket/prefix, as in the experiment's location")
    parser.add_argument("--role-arn", default=None, help="assume this role first (what a training job runs as)")
    parser.add_argument(
        "--endpoint-url",
        default=None,
        help="S3 endpoint for S3-compatible stores (default: $MLFLOW_S3_ENDPOINT_URL, else AWS)",
    )
    parser.add_argument("--region", default=None, help="AWS region (default: the AWS environment's)")
    parser.add_argument(
        "--dry-run", action="store_true", help="show the probe object and operations; contact neither STS nor S3"
    )
    return parser


def run(args: argparse.Namespace) -> cli.Report:
    bucket, prefix = parse_root(args.artifact_root)
    endpoint = args.endpoint_url or os.environ.get("MLFLOW_S3_ENDPOINT_URL") or None
    if args.dry_run:
        _, key = probe_key(prefix)
        where = f" as {args.role_arn}" if args.role_arn else ""
        steps = [f"would put, get, list and delete s3://{bucket}/{key}{where} via {endpoint or 'AWS S3'}"]
        return cli.Report(steps, {"artifact_root": args.artifact_root, "probe_key": key, "dry_run": True})
    session = session_for(args.role_arn, args.region)
    key, results = probe(session, bucket, prefix, endpoint)
    data = {
        "artifact_root": args.artifact_root,
        "role_arn": args.role_arn,
        "endpoint_url": endpoint,
        "probe_key": key,
        "results": {r.operation: asdict(r) for r in results},
    }
    lines = [f"{r.operation:<6} {r.outcome:<7} {r.detail}".rstrip() for r in results]
    failed = [r for r in results if r.operation in REQUIRED and r.outcome != "allowed"]
    if failed:
        what = ", ".join(f"{r.operation} {r.outcome}" for r in failed)
        detail = failed[0].detail
        # Denied is an answer (exit 1); errors only (endpoint unreachable, no credentials) mean
        # the check could not be made (exit 3), like every other tool's unreachable server.
        code = cli.EXIT_ERROR if all(r.outcome == "error" for r in failed) else cli.EXIT_REFUSED
        return cli.Report(lines, data, code, f"{args.artifact_root}: {what} ({detail})")
    lines.append(f"{args.artifact_root}: put and get allowed")
    return cli.Report(lines, data)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_tool(build_parser(), run, argv)

"""Runs Pulumi code under mocks and records what each resource was given.

The mocks echo inputs and add only the provider-computed outputs our code reads (ids, ARNs,
addresses). Tests assert on ``RecordingMocks.resources`` — the exact inputs AWS would get —
never on values the mocks invented.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import MockCallArgs, MockResourceArgs
from pulumi.runtime.mocks import MockMonitor

from stackconfig import PROJECT

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_ID = "123456789012"
SECRET_SIG = "4dabf18193072939515e22adb298388d"


def unwrap(value: Any) -> Any:
    """Replace Pulumi's secret envelopes in mock inputs by their plain values."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return unwrap(value["value"])
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    return value


def is_secret_envelope(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    provider: str | None


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    urns: list[str] = field(default_factory=list)
    """URNs of everything registered; a child's URN encodes its parent's type."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(Recorded(args.typ, args.name, unwrap(args.inputs), dict(args.inputs), args.provider))
        outputs = dict(args.inputs)
        physical = f"{args.name}-7f3a2b"
        match args.typ:
            case "aws:s3/bucket:Bucket":
                outputs.update(bucket=physical, arn=f"arn:aws:s3:::{physical}")
            case "aws:kms/key:Key":
                outputs.update(arn=f"arn:aws:kms:us-east-1:{ACCOUNT_ID}:key/{physical}", keyId=physical)
            case "aws:iam/role:Role":
                outputs.update(arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{physical}", name=physical)
            case "aws:rds/instance:Instance":
                outputs.update(address=f"{physical}.abc.us-east-1.rds.amazonaws.com", port=5432)
            case "aws:rds/parameterGroup:ParameterGroup" | "aws:rds/subnetGroup:SubnetGroup":
                outputs.update(name=physical)
            case "random:index/randomPassword:RandomPassword":
                # Distinct per resource, of the requested length: tests can tell secrets apart.
                digest = hashlib.sha256(args.name.encode()).hexdigest()
                outputs.update(result=("Pw" + digest * 2)[: int(args.inputs.get("length", 32))])
            case "random:index/randomBytes:RandomBytes":
                raw = hashlib.sha256(args.name.encode()).digest()[: int(args.inputs["length"])]
                outputs.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> dict[str, Any]:
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci",
                "userId": "AIDA",
                "id": ACCOUNT_ID,
            }
        # An unmocked invoke silently returning {} would hide bugs (e.g. arn:aws:iam::None:...).
        raise NotImplementedError(f"unmocked invoke {args.token}")

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name_contains: str = "") -> Recorded:
        matches = [r for r in self.of_type(typ) if name_contains in r.name]
        assert len(matches) == 1, f"expected one {typ} named *{name_contains}*, got {[m.name for m in matches]}"
        return matches[0]


def run_mocked(
    build: Callable[[], Mapping[str, Any]],
    *,
    stack: str = "test",
    config: Mapping[str, str] | None = None,
) -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    """Run ``build`` (which creates resources and returns outputs) with fresh mocks; return the
    recorded resources, the resolved outputs, and which outputs are secret."""
    mocks = RecordingMocks()
    monitor = MockMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config or {}))
    resolved: dict[str, Any] = {}
    secrets: dict[str, bool] = {}

    @pulumi.runtime.test
    def body() -> pulumi.Output[None]:
        outputs = {key: pulumi.Output.from_input(value) for key, value in build().items()}

        async def collect() -> None:
            for key, output in outputs.items():
                secrets[key] = await output.is_secret()
                resolved[key] = await output.future()

        return pulumi.Output.from_input(collect())

    body()
    mocks.urns = sorted(monitor.get_registered_resources())
    return mocks, resolved, secrets


def stack_file_config(stack: str) -> dict[str, str]:
    """A ``Pulumi.<stack>.yaml`` as ``set_all_config`` wants it: namespaced keys, JSON values."""
    import yaml

    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    config: dict[str, str] = {}
    for key, value in (document.get("config") or {}).items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            value = "<secret>"
        config[key] = value if isinstance(value, str) else json.dumps(value)
    return config


def run_program(stack: str, config: Mapping[str, str]) -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    """Run the real program entry point (``infra/__main__.py``) fresh, as ``pulumi up`` would."""

    def build() -> Mapping[str, Any]:
        namespace = runpy.run_path(str(ROOT / "infra" / "__main__.py"))
        return namespace["outputs"]

    return run_mocked(build, stack=stack, config=config)


def by_type(mocks: RecordingMocks) -> Iterator[tuple[str, Recorded]]:
    for record in mocks.resources:
        yield record.typ, record

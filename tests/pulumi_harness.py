"""Runs Pulumi code under mocks and records what each resource was given.

The mocks echo inputs and add only the provider-computed outputs our code reads (ids, ARNs,
addresses). Tests assert on ``RecordingMocks.resources`` — the exact inputs AWS would get —
never on values the mocks invented.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
import runpy
import threading
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
REGION = "us-east-1"
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
ZONE_IDS = ("use1-az1", "use1-az2", "use1-az4")
OIDC_ID = "0123456789ABCDEF0123456789ABCDEF"
OIDC_ISSUER = f"https://oidc.eks.{REGION}.amazonaws.com/id/{OIDC_ID}"
CLUSTER_SECURITY_GROUP = "sg-0c1a5e7e55ec0123f"
CLUSTER_CA = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1PQ0s="
LOAD_BALANCER_HOSTNAME = "k8s-mlflow-mlflow-0a1b2c3d4e-1234567890.us-east-1.elb.amazonaws.com"
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


def _keepers(inputs: Mapping[str, Any]) -> str:
    """``random`` resources' keepers as text ("" without any, so those values never change)."""
    keepers = inputs.get("keepers")
    return json.dumps(keepers, sort_keys=True) if keepers else ""


def is_secret_envelope(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


@dataclass
class Recorded:
    typ: str
    name: str
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    provider: str | None
    outputs: dict[str, Any] = field(default_factory=dict)
    """What the mock answered (inputs plus the computed ids, ARNs and names)."""
    urn: str = ""
    """The URN the engine would give it (names repeat across types, URNs do not)."""


@dataclass
class RecordingMocks(pulumi.runtime.Mocks):
    resources: list[Recorded] = field(default_factory=list)
    dependencies: dict[str, set[str]] = field(default_factory=dict)
    """Resource name → names of every resource it waits for (``depends_on`` and inputs), as the
    engine receives them in ``RegisterResource``; filled by :class:`RecordingMonitor`."""
    invokes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """Every invoke the program made, with its arguments."""
    urns: list[str] = field(default_factory=list)
    """URNs of everything registered; a child's URN encodes its parent's type."""
    zones: dict[str, str] = field(default_factory=lambda: dict(zip(ZONES, ZONE_IDS, strict=True)))
    """What ``getAvailabilityZones`` answers: zone name → zone ID (this account's mapping)."""
    ignore_changes: dict[str, list[str]] = field(default_factory=dict)
    """Resource name -> its ``ignore_changes`` property paths."""
    aliases: dict[str, list[str]] = field(default_factory=dict)
    """Engine URN -> the alias URNs it declares (what keeps a moved resource from being replaced)."""
    registering: threading.local = field(default_factory=threading.local)
    """The engine URN of the registration in progress on this thread (set by the monitor)."""
    engine_dependencies: dict[str, list[str]] = field(default_factory=dict)
    """Engine URN -> the engine URNs it waits for (``depends_on`` and inputs)."""
    engine_ignore_changes: dict[str, list[str]] = field(default_factory=dict)
    """Engine URN -> its ``ignore_changes`` paths (only resources that have some)."""
    engine_urns: list[str] = field(default_factory=list)
    """The URN the Pulumi engine would give each registered resource, components included (see
    :class:`RecordingMonitor`)."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        urn = getattr(self.registering, "urn", "")
        record = Recorded(args.typ, args.name, unwrap(args.inputs), dict(args.inputs), args.provider, urn=urn)
        self.resources.append(record)
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
                outputs.update(address=f"{physical}.abc.us-east-1.rds.amazonaws.com", port=5432, identifier=physical)
            case "aws:rds/parameterGroup:ParameterGroup" | "aws:rds/subnetGroup:SubnetGroup":
                outputs.update(name=physical)
            case "random:index/randomPassword:RandomPassword":
                # Distinct per resource, of the requested length: tests can tell secrets apart.
                # New keepers are a new value, as the provider replaces the resource.
                digest = hashlib.sha256((args.name + _keepers(args.inputs)).encode()).hexdigest()
                outputs.update(result=("Pw" + digest * 2)[: int(args.inputs.get("length", 32))])
            case "aws:eks/cluster:Cluster":
                # What EKS computes: the API endpoint, its CA, the OIDC issuer, the cluster SG.
                outputs.update(
                    arn=f"arn:aws:eks:{REGION}:{ACCOUNT_ID}:cluster/{args.inputs.get('name', physical)}",
                    endpoint=f"https://{OIDC_ID}.gr7.{REGION}.eks.amazonaws.com",
                    certificateAuthority={"data": CLUSTER_CA},
                    identities=[{"oidcs": [{"issuer": OIDC_ISSUER}]}],
                    vpcConfig={**args.inputs.get("vpcConfig", {}), "clusterSecurityGroupId": CLUSTER_SECURITY_GROUP},
                )
            case "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
                host_path = str(args.inputs.get("url", "")).removeprefix("https://")
                outputs.update(arn=f"arn:aws:iam::{ACCOUNT_ID}:oidc-provider/{host_path}")
            case "aws:sns/topic:Topic":
                outputs.update(arn=f"arn:aws:sns:{REGION}:{ACCOUNT_ID}:{physical}")
            case "aws:iam/policy:Policy":
                outputs.update(arn=f"arn:aws:iam::{ACCOUNT_ID}:policy/{physical}")
            case "aws:cloudwatch/logGroup:LogGroup":
                log_group = args.inputs.get("name", physical)
                outputs.update(arn=f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{log_group}")
            case "aws:ec2/launchTemplate:LaunchTemplate":
                outputs.update(latestVersion=1)
            case "aws:acm/certificate:Certificate":
                domain = args.inputs["domainName"]
                outputs.update(
                    arn=f"arn:aws:acm:{REGION}:{ACCOUNT_ID}:certificate/0a1b2c3d-0000-4000-8000-{physical[-6:]:0>12}",
                    domainValidationOptions=[
                        {
                            "domainName": domain,
                            "resourceRecordName": f"_3b1f0c.{domain}.",
                            "resourceRecordType": "CNAME",
                            "resourceRecordValue": "_9a8b7c.acm-validations.aws.",
                        }
                    ],
                )
            case "aws:route53/record:Record":
                outputs.update(fqdn=str(args.inputs.get("name", "")).rstrip("."))
            case "kubernetes:networking.k8s.io/v1:Ingress":
                # Set by the ingress controller once the load balancer exists; the provider waits for it.
                outputs.update(status={"loadBalancer": {"ingress": [{"hostname": LOAD_BALANCER_HOSTNAME}]}})
            case "random:index/randomId:RandomId":
                raw = hashlib.sha256((args.name + _keepers(args.inputs)).encode()).digest()[
                    : int(args.inputs["byteLength"])
                ]
                outputs.update(hex=raw.hex(), b64Url=base64.urlsafe_b64encode(raw).decode().rstrip("="))
            case "random:index/randomBytes:RandomBytes":
                raw = hashlib.sha256((args.name + _keepers(args.inputs)).encode()).digest()[
                    : int(args.inputs["length"])
                ]
                outputs.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
        record.outputs = {**outputs, "id": f"{args.name}-id"}
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> dict[str, Any]:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/ci",
                "userId": "AIDA",
                "id": ACCOUNT_ID,
            }
        if args.token == "aws:iam/getSessionContext:getSessionContext":
            # The caller above is an IAM user: its session's issuer is itself.
            return {"arn": args.args["arn"], "issuerArn": args.args["arn"], "id": args.args["arn"]}
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            excluded = set(args.args.get("excludeZoneIds") or ())
            zones = {name: zone_id for name, zone_id in self.zones.items() if zone_id not in excluded}
            return {"names": list(zones), "zoneIds": list(zones.values()), "id": REGION}
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        # An unmocked invoke silently returning {} would hide bugs (e.g. arn:aws:iam::None:...).
        raise NotImplementedError(f"unmocked invoke {args.token}")

    def depends_on(self, name: str, other: str) -> bool:
        """Whether ``name`` waits for ``other``, directly or through other resources."""
        seen: set[str] = set()
        todo = [name]
        while todo:
            for dependency in self.dependencies.get(todo.pop(), set()) - seen:
                if dependency == other:
                    return True
                seen.add(dependency)
                todo.append(dependency)
        return False

    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.typ == typ]

    def one(self, typ: str, name_contains: str = "") -> Recorded:
        matches = [r for r in self.of_type(typ) if name_contains in r.name]
        assert len(matches) == 1, f"expected one {typ} named *{name_contains}*, got {[m.name for m in matches]}"
        return matches[0]


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


class RecordingMonitor(MockMonitor):
    """The SDK's mock monitor, also recording each registration's dependencies (by name), its
    ``ignore_changes``, and the URN the engine would give it.

    The SDK's mock URN keeps only the parent's own type; the engine's keeps the parent's whole
    qualified type chain (``a:b:C$d:e:F$aws:...``) and leaves out the root stack (``resource.NewURN``
    in pulumi/sdk/go/common/resource/urn.go). ``engine_urns`` follows the engine, so moving a
    component under another grandparent shows up as a new URN."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks
        self.engine_urn_of: dict[str, str] = {}
        """Mock URN -> engine URN (a dependency is registered before whatever waits for it)."""
        self.qualified_types: dict[str, str] = {}
        """Mock URN -> the engine's qualified type of that resource ("" for the root stack)."""

    def _qualified(self, parent_mock_urn: str, typ: str) -> str:
        parent = self.qualified_types.get(parent_mock_urn, "") if parent_mock_urn else ""
        return f"{parent}${typ}" if parent else typ

    def _engine_urn(self, qualified: str, name: str, stack: str = "", project: str = "") -> str:
        return f"urn:pulumi:{stack or pulumi.get_stack()}::{project or pulumi.get_project()}::{qualified}::{name}"

    def _alias_urn(self, alias: Any, request: Any) -> str:
        """An ``Alias`` resolved to the URN it names, as the engine resolves it: a spec's missing
        name, type and parent default to the resource's own."""
        if alias.WhichOneof("alias") == "urn":
            return alias.urn
        spec = alias.spec
        parent = "" if spec.noParent else (spec.parentUrn or request.parent)
        qualified = self._qualified(parent, spec.type or request.type)
        return self._engine_urn(qualified, spec.name or request.name, spec.stack, spec.project)

    def RegisterResource(self, request: Any) -> Any:
        # Registrations run on several threads; new_resource runs inside super() on this one.
        qualified = "" if request.type == ROOT_STACK_TYPE else self._qualified(request.parent, request.type)
        urn = self._engine_urn(qualified, request.name) if qualified else ""
        self.recording.registering.urn = urn
        response = super().RegisterResource(request)
        urns = set(request.dependencies)
        for dependency in request.propertyDependencies.values():
            urns.update(dependency.urns)
        self.recording.dependencies[request.name] = {urn.rsplit("::", 1)[-1] for urn in urns}
        self.recording.ignore_changes[request.name] = list(request.ignoreChanges)
        self.qualified_types[response.urn] = qualified
        if qualified:
            self.engine_urn_of[response.urn] = urn
            self.recording.engine_urns.append(urn)
            self.recording.engine_dependencies[urn] = sorted(self.engine_urn_of.get(u, u) for u in urns)
            if request.ignoreChanges:
                self.recording.engine_ignore_changes[urn] = sorted(request.ignoreChanges)
            aliases = [*request.aliasURNs, *(self._alias_urn(alias, request) for alias in request.aliases)]
            if aliases:
                self.recording.aliases[urn] = aliases
        return response


def run_mocked(
    build: Callable[[], Mapping[str, Any]],
    *,
    stack: str = "test",
    config: Mapping[str, str] | None = None,
    mocks: RecordingMocks | None = None,
) -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    """Run ``build`` (which creates resources and returns outputs) with fresh mocks (or the given
    ones, e.g. with another zone mapping); return the recorded resources, the resolved outputs,
    and which outputs are secret."""
    mocks = mocks if mocks is not None else RecordingMocks()
    monitor = RecordingMonitor(mocks)
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


# Facts of an existing cluster and network, per stack, for running either stack file in
# ``cluster.mode: reuse`` (the stack files themselves create their cluster).
_OIDC_PROVIDER = "arn:aws:iam::{account}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/{cluster_id}"
REUSED: dict[str, dict[str, dict[str, Any]]] = {
    "dev": {
        "cluster": {
            "mode": "reuse",
            "name": "mlflow-dev",
            "region": REGION,
            "oidcProviderArn": _OIDC_PROVIDER.format(account="111111111111", cluster_id="DEV0123456789ABCDEF"),
            "endpoint": "https://DEV0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
            "certificateAuthorityData": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
        },
        "network": {
            "vpcId": "vpc-0a1b2c3d4e5f60718",
            "privateSubnetIds": ["subnet-0a1b2c3d4e5f60001", "subnet-0a1b2c3d4e5f60002"],
            "databaseClientSecurityGroupIds": ["sg-0a1b2c3d4e5f60099"],
            "loadBalancerSubnets": [
                {"id": "subnet-0a1b2c3d4e5f60101", "cidrBlock": "10.10.240.0/22"},
                {"id": "subnet-0a1b2c3d4e5f60102", "cidrBlock": "10.10.244.0/22"},
            ],
        },
        "server": {},
    },
    "prod": {
        "cluster": {
            "mode": "reuse",
            "name": "mlflow-prod",
            "region": REGION,
            "oidcProviderArn": _OIDC_PROVIDER.format(account="222222222222", cluster_id="PROD0123456789ABCDEF"),
            "endpoint": "https://PROD0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
            "certificateAuthorityData": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM=",
        },
        "network": {
            "vpcId": "vpc-0f1e2d3c4b5a69788",
            "privateSubnetIds": ["subnet-0f1e2d3c4b5a60001", "subnet-0f1e2d3c4b5a60002", "subnet-0f1e2d3c4b5a60003"],
            "databaseClientSecurityGroupIds": ["sg-0f1e2d3c4b5a60099", "sg-0f1e2d3c4b5a60098"],
            "loadBalancerSubnets": [
                {"id": "subnet-0f1e2d3c4b5a60101", "cidrBlock": "10.20.240.0/22"},
                {"id": "subnet-0f1e2d3c4b5a60102", "cidrBlock": "10.20.244.0/22"},
                {"id": "subnet-0f1e2d3c4b5a60103", "cidrBlock": "10.20.248.0/22"},
            ],
        },
        "server": {
            "ingress": {
                "acmCertificateArn": "arn:aws:acm:us-east-1:222222222222:"
                "certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789"
            }
        },
        # The existing cluster's Prometheus (prod sets prometheusOperator: true).
        "monitoring": {"serviceMonitorLabels": {"prometheus": "platform"}},
    },
}


def reused_values(stack: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Stack-file values (keyed by section, as ``load_stack_file`` gives them) switched to reuse mode."""
    result = json.loads(json.dumps(dict(values)))
    reused = REUSED[stack]
    result["cluster"] = dict(reused["cluster"])
    result["network"] = dict(reused["network"])
    server = result.setdefault("server", {})
    server.setdefault("ingress", {}).update(reused["server"].get("ingress", {}))
    if "monitoring" in reused:
        result["monitoring"] = {**result.get("monitoring", {}), **reused["monitoring"]}
    return result


def reused_config(stack: str) -> dict[str, str]:
    """``stack_file_config(stack)`` switched to ``cluster.mode: reuse``."""
    config = stack_file_config(stack)
    prefix = f"{PROJECT}:"
    sections = {key[len(prefix) :]: json.loads(value) for key, value in config.items() if key.startswith(prefix)}
    for key, value in reused_values(stack, sections).items():
        config[prefix + key] = json.dumps(value)
    return config


@functools.cache
def captured_program(stack: str, mode: str = "create") -> tuple[RecordingMocks, dict[str, Any], dict[str, bool]]:
    """One mocked run of the program per stack file and cluster mode, shared by the tests that
    only read it (the program is deterministic). Runs on its own event loop so that the calling
    test's loop stays untouched."""
    previous = asyncio.get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return run_program(stack, stack_file_config(stack) if mode == "create" else reused_config(stack))
    finally:
        asyncio.set_event_loop(previous)

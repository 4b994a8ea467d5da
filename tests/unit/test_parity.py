"""Parity: the EKS pod and the local target render pgbouncer.ini, the auth ini, the server
command/env and the bootstrap plan with the same function, and differ only where a
``TargetParameters`` field (hosts, ports, endpoints, TLS files, sizes, version) differs."""

from __future__ import annotations

import dataclasses
import json
import re

from rendering.eks_pod import pod_target
from rendering.mlflow_server import S3Client, allowed_hosts
from rendering.pgbouncer import DEBIAN_BOOKWORM_VERSION, VERSION_NOTES
from rendering.server_side import PlatformSecrets, PlatformSettings, ServerSide, TargetParameters, render_server_side
from stackconfig.schema import ServerConfig

SETTINGS = PlatformSettings(access_mode="proxied", in_flight_per_worker=4, auth_cache_ttl_seconds=60)
SECRETS = PlatformSecrets(
    app_role_password="AppRolePassword0123456789",
    app_role_salt=b"0123456789abcdef",
    migrator_password="MigratorPassword0123456789",
    flask_secret_key="f" * 64,
    admin_password="AdminPassword0123456789",
)
SERVER = ServerConfig(image="x@sha256:" + "0" * 64, host="mlflow.example.com", replicas=1, max_replicas=1, workers=2)


def eks() -> TargetParameters:
    return pod_target(
        host=SERVER.host,
        workers=SERVER.workers,
        max_replicas=SERVER.max_replicas,
        database_host="db.abc.us-east-1.rds.amazonaws.com",
        database_port=5432,
        max_connections=200,
        artifact_root="s3://prod-artifacts/mlflow",
        region="us-east-1",
        namespace="mlflow",
    )


def local() -> TargetParameters:
    """Shaped like ``localplatform.target.target_parameters`` on this machine; loopback
    addresses are made distinct so each value maps back to exactly one parameter."""
    return TargetParameters(
        database_host="127.0.0.11",
        database_port=41001,
        database_ca_file="/state/svc/tls/ca.pem",
        pgbouncer_port=41002,
        pgbouncer_version=DEBIAN_BOOKWORM_VERSION,
        pgbouncer_auth_file="/state/svc/pgbouncer/userlist.txt",
        server_bind_host="127.0.0.12",
        server_port=41003,
        public_host_names=("localhost", "127.0.0.13"),
        public_ports=(41004, 41003),
        auth_config_path="/state/svc/mlflow/auth.ini",
        server_pgpassfile="/state/svc/mlflow/server.pgpass",
        migrator_pgpassfile="/state/svc/mlflow/migrator.pgpass",
        artifact_root="s3://mlflow-artifacts/mlflow",
        s3=S3Client(endpoint_url="https://127.0.0.1:41005", ca_bundle="/state/tls/ca.pem", region="us-east-1"),
        mlflow_command=("/venv/bin/python", "-m", "mlflow"),
        python_command=("/venv/bin/python",),
        workers=2,
        max_replicas=1,
        database_max_connections=200,
        prometheus_dir="/state/mlflow/prometheus",
        teams_file="/state/svc/mlflow/teams.json",
    )


def _without_command(argv: list[str], target: TargetParameters) -> list[str]:
    """Commands are parameters of several words; compare them as one token."""
    for name, command in (("mlflow_command", target.mlflow_command), ("python_command", target.python_command)):
        if tuple(argv[: len(command)]) == command:
            return [f"<{name}>", *argv[len(command) :]]
    raise AssertionError(f"{argv[:3]} starts with neither command of the target")


def _texts(side: ServerSide, target: TargetParameters) -> dict[str, str]:
    argv = _without_command(list(side.launch.argv), target)
    hosts = argv.index("--allowed-hosts") + 1
    assert argv[hosts] == ",".join(allowed_hosts(target.public_host_names, target.public_ports))
    argv[hosts] = "<allowed hosts>"
    # PgBouncer may listen where another parameter's value is (the pod binds 0.0.0.0 for both
    # MLflow and PgBouncer), so its line is matched to its own parameter here.
    listen = f"listen_addr = {target.pgbouncer_listen_host}"
    assert listen in side.pgbouncer_ini.splitlines()
    return {
        "pgbouncer.ini": side.pgbouncer_ini.replace(listen, "listen_addr = <pgbouncer_listen_host>"),
        "auth.ini": side.auth_ini,
        "argv": "\n".join(argv),
        "env": json.dumps(side.launch.env, sort_keys=True, indent=0),
        "secret_env": json.dumps(side.launch.secret_env, sort_keys=True, indent=0),
        "bootstrap": json.dumps(
            {
                **json.loads(side.bootstrap_document),
                "migrations": [
                    {**command, "argv": _without_command(command["argv"], target)}
                    for command in json.loads(side.bootstrap_document)["migrations"]
                ],
            },
            indent=2,
            sort_keys=True,
        ),
        "server.pgpass": side.server_pgpass,
        "teams.json": side.teams_document,
    }


SAME_IN_BOTH = {"workers", "max_replicas", "database_max_connections", "pooled"}
"""Sizes are parameters too, but equal here so the derived pool sizes can be compared."""


def _placeholders(target: TargetParameters) -> list[tuple[str, str]]:
    """(value, placeholder) for every scalar in the target, longest values first. Host names
    are checked through the allowed-hosts argument instead (``mlflow`` is also a database)."""
    pairs: list[tuple[str, str]] = []
    for field in dataclasses.fields(target):
        if field.name in SAME_IN_BOTH | {
            "public_host_names",
            "mlflow_command",
            "python_command",
            "pgbouncer_listen_host",
        }:
            continue
        value = getattr(target, field.name)
        if isinstance(value, S3Client):
            items = [(f"s3.{k}", v) for k, v in dataclasses.asdict(value).items() if v is not None]
        elif isinstance(value, tuple) and value and isinstance(value[0], str):
            items = [(f"{field.name}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, tuple):
            items = [(field.name, ".".join(map(str, value)))]
        else:
            items = [(field.name, value)]
        for name, v in items:
            pairs.append((str(v), f"<{name}>"))
            # The same value escaped as a regex inside JSON (the model-version source allowlist).
            escaped = json.dumps(re.escape(str(v)))[1:-1]
            if escaped != str(v):
                pairs.append((escaped, f"<{name}>"))
    return sorted(pairs, key=lambda pair: -len(pair[0]))


def _normalise(text: str, target: TargetParameters) -> str:
    for value, placeholder in _placeholders(target):
        text = re.sub(rf"(?<![\w.]){re.escape(value)}(?![\w])", placeholder, text)
    return text


def test_both_targets_differ_only_in_target_parameters():
    targets = {"eks": eks(), "local": local()}
    rendered = {name: render_server_side(target, SETTINGS, SECRETS) for name, target in targets.items()}
    assert rendered["eks"].pools == rendered["local"].pools  # same sizes in, same sizes out
    texts = {name: _texts(side, targets[name]) for name, side in rendered.items()}
    for key in texts["eks"]:
        eks_lines = _normalise(texts["eks"][key], eks()).splitlines()
        local_lines = _normalise(texts["local"][key], local()).splitlines()
        eks_only = [line for line in eks_lines if line not in local_lines]
        local_only = [line for line in local_lines if line not in eks_lines]
        # The only rendering that depends on more than a parameter's value is the PgBouncer
        # version (documented in rendering.pgbouncer.VERSION_NOTES).
        assert all(line.split(" = ")[0] in VERSION_NOTES for line in eks_only), (key, eks_only)
        # Settings that exist only where a parameter is set (the S3 emulator's endpoint and CA).
        unset_in_eks = [f"<s3.{k}>" for k, v in dataclasses.asdict(eks().s3).items() if v is None]
        assert all(any(p in line for p in unset_in_eks) for line in local_only), (key, local_only)
        if key == "pgbouncer.ini":
            assert eks_only == ["max_prepared_statements = 200"]
        else:
            assert eks_only == [], (key, eks_only)


def test_the_same_security_settings_reach_both_targets():
    for target in (eks(), local()):
        side = render_server_side(target, SETTINGS, SECRETS)
        assert side.launch.env["MLFLOW_SERVER_ENABLE_GRAPHQL_AUTH"] == "true"
        assert side.launch.env["MLFLOW_ALLOW_HTTP_REDIRECTS"] == "false"
        argv = list(side.launch.argv)
        assert argv[argv.index("--app-name") + 1] == "mlflow-platform"
        assert "default_permission = NO_PERMISSIONS" in side.auth_ini
        assert "pool_mode = transaction" in side.pgbouncer_ini
        assert "server_tls_sslmode = verify-full" in side.pgbouncer_ini

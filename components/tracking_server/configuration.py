"""What the server pods read: the server Secret (credentials as files and the few environment
values MLflow reads only from its environment) and the ConfigMaps of PgBouncer, the admission
proxy and the team-ownership declaration. All rendered by ``render_server_side``."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from rendering.eks_pod import MLFLOW_PORT, POD_ALL_INTERFACES, PROXY_PORT
from rendering.ingress import IngressSettings
from rendering.ownership import TEAMS_FILE_NAME
from rendering.proxy import ProxySite, render_proxy_conf

from .common import (
    EXPORTER_DSN_KEY,
    PGBOUNCER_CONFIG_MAP,
    PROXY_CONFIG_MAP,
    SECRET_ENV,
    SERVER_LABELS,
    SERVER_SECRET,
    TEAMS_CONFIG_MAP,
    Rendered,
    public,
    secret,
)


@dataclass(frozen=True)
class ServerConfiguration:
    server_secret: k8s.core.v1.Secret
    pgbouncer_config: k8s.core.v1.ConfigMap
    teams_config: k8s.core.v1.ConfigMap
    proxy_config: k8s.core.v1.ConfigMap

    def all(self) -> list[pulumi.Resource]:
        """Everything the pods mount or read by name (Pulumi cannot infer those edges)."""
        return [self.server_secret, self.pgbouncer_config, self.proxy_config, self.teams_config]


def server_configuration(
    name: str, namespace: str, rendered: Rendered, request_handling: IngressSettings, opts: pulumi.ResourceOptions
) -> ServerConfiguration:
    server_secret = k8s.core.v1.Secret(
        f"{name}-server-secret",
        metadata={"name": SERVER_SECRET, "namespace": namespace, "labels": SERVER_LABELS},
        type="Opaque",
        string_data={
            "auth.ini": secret(rendered, lambda r: r.auth_ini),
            "server.pgpass": secret(rendered, lambda r: r.server_pgpass),
            "userlist.txt": secret(rendered, lambda r: r.pgbouncer_auth_file),
            **{key: secret(rendered, lambda r, k=key: r.launch.secret_env[k]) for key in SECRET_ENV},
            EXPORTER_DSN_KEY: secret(rendered, lambda r: r.pgbouncer_stats_dsn),
        },
        opts=opts,
    )
    pgbouncer_config = k8s.core.v1.ConfigMap(
        f"{name}-pgbouncer-config",
        metadata={"name": PGBOUNCER_CONFIG_MAP, "namespace": namespace, "labels": SERVER_LABELS},
        data={"pgbouncer.ini": public(rendered, lambda r: r.pgbouncer_ini)},
        opts=opts,
    )
    # Not part of the pods' config revision: the app re-reads it, so a change restarts nothing.
    teams_config = k8s.core.v1.ConfigMap(
        f"{name}-teams-config",
        metadata={"name": TEAMS_CONFIG_MAP, "namespace": namespace, "labels": SERVER_LABELS},
        data={TEAMS_FILE_NAME: public(rendered, lambda r: r.teams_document)},
        opts=opts,
    )
    in_flight_per_replica = rendered.apply(lambda r: r.pools.in_flight_per_replica)
    proxy_config = k8s.core.v1.ConfigMap(
        f"{name}-proxy-config",
        metadata={"name": PROXY_CONFIG_MAP, "namespace": namespace, "labels": SERVER_LABELS},
        data={
            "nginx.conf": pulumi.Output.unsecret(in_flight_per_replica).apply(
                lambda limit: render_proxy_conf(
                    request_handling,
                    ProxySite(
                        listen_host=POD_ALL_INTERFACES,
                        listen_port=PROXY_PORT,
                        upstream_host="127.0.0.1",
                        upstream_port=MLFLOW_PORT,
                        server_names=("_",),
                        pid_file="/tmp/nginx.pid",
                        temp_dir="/tmp",
                        max_in_flight=limit,
                    ),
                )
            )
        },
        opts=opts,
    )
    return ServerConfiguration(server_secret, pgbouncer_config, teams_config, proxy_config)

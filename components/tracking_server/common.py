"""What the tracking server's object modules share: the names by which its objects refer to each
other (a pod mounts a Secret or ConfigMap by name, a Service selects by label), and the two ways
of reading the rendered server side into an input.

Each name is written here once, so an object and its reference cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi

from components.pod_toolkit import SERVER_COMPONENT, workload_labels
from rendering.eks_pod import APP
from rendering.server_side import ServerSide

MIGRATION_COMPONENT = "db-migration"
ADMIN_PASSWORD_COMPONENT = "admin-password"  # noqa: S105 - a label value

SERVER_SECRET = f"{APP}-server"
PGBOUNCER_CONFIG_MAP = f"{APP}-pgbouncer"
PROXY_CONFIG_MAP = f"{APP}-admission-proxy"
TEAMS_CONFIG_MAP = f"{APP}-teams"
SECRET_ENV = ("MLFLOW_FLASK_SERVER_SECRET_KEY", "MLFLOW_AUTH_ADMIN_PASSWORD")
"""Keys of the server Secret that MLflow reads only from its environment."""
EXPORTER_DSN_KEY = "PGBOUNCER_EXPORTER_CONNECTION_STRING"

LABELS = workload_labels()
SERVER_LABELS = workload_labels(SERVER_COMPONENT)
MIGRATION_LABELS = workload_labels(MIGRATION_COMPONENT)
ADMIN_PASSWORD_LABELS = workload_labels(ADMIN_PASSWORD_COMPONENT)

Rendered = pulumi.Output[ServerSide]


def public(rendered: Rendered, pick: Callable[[ServerSide], Any]) -> pulumi.Output[Any]:
    """Rendered values that contain no secret, shown in previews as they are (the rendered
    output is secret as a whole because it is computed from the generated credentials)."""
    return pulumi.Output.unsecret(rendered.apply(pick))


def secret(rendered: Rendered, pick: Callable[[ServerSide], Any]) -> pulumi.Output[Any]:
    return pulumi.Output.secret(rendered.apply(pick))

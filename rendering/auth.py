"""The MLflow basic-auth configuration file (``MLFLOW_AUTH_CONFIG_PATH``).

Decisions, each with its reason:

* ``default_permission = NO_PERMISSIONS`` (MLflow ships ``READ``). The platform is shared by
  several teams; with ``READ`` every account can read every experiment, run, artifact and model
  of every team. With ``NO_PERMISSIONS`` access is granted explicitly: a user gets ``MANAGE`` on
  what they create, admins see everything, and teams share through permission grants. The cost
  is that a new user sees nothing until granted, which is the safe failure.
* ``database_uri`` on PostgreSQL via **psycopg2** (``postgresql+psycopg2://``): SQLAlchemy 2.1
  maps plain ``postgresql://`` to psycopg 3, whose prepared statements break behind PgBouncer in
  transaction mode. A SQLite auth DB would be per pod and break with more than one replica.
* ``auth_cache_ttl_seconds`` > 0: basic-auth checks a scrypt hash (~0.1 s CPU) on *every*
  request otherwise; measured ~12× throughput with the cache. The price is that a password
  change or deletion takes up to the TTL to reach the other workers. The platform's app
  (``mlflow_platform_server.fastpath``) caches users and grants for the same TTL: a grant,
  revoke or admin-flag change made through one worker also takes up to the TTL to reach the
  others (at once on the worker that made it).
* No ``admin_password`` key: the bootstrap password comes from ``MLFLOW_AUTH_ADMIN_PASSWORD``
  (a secret env var), so this file can be rendered without it.

The file is still classified as secret material (mode 0600 locally, a Kubernetes Secret in the
cloud): it names the auth database, its role and the admin account, and operators are used to
putting ``admin_password`` into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Permission = Literal["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]

DEFAULT_AUTHORIZATION_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"
MIN_ADMIN_PASSWORD_LENGTH = 12
"""MLflow >= 3.16.1 refuses shorter bootstrap passwords."""
LEGACY_DEFAULT_PASSWORD = "password1234"  # noqa: S105 - the publicly known value we refuse
"""Shipped by MLflow <= 3.16.0 (GHSA-gq3w-7jj3-x7gr); refused by the server and by us."""


@dataclass(frozen=True)
class AuthSettings:
    database_uri: str
    """SQLAlchemy URL of the auth DB, without password (libpq reads it from PGPASSFILE)."""
    admin_username: str = "admin"
    default_permission: Permission = "NO_PERMISSIONS"
    authorization_function: str = DEFAULT_AUTHORIZATION_FUNCTION
    auth_cache_ttl_seconds: int = 60
    auth_cache_max_size: int = 10_000
    grant_default_workspace_access: bool = False


def validate_admin_password(password: str) -> None:
    """Raise ValueError for a bootstrap password MLflow would refuse (or should)."""
    if len(password) < MIN_ADMIN_PASSWORD_LENGTH:
        raise ValueError(f"the MLflow admin password needs at least {MIN_ADMIN_PASSWORD_LENGTH} characters")
    if password == LEGACY_DEFAULT_PASSWORD:
        raise ValueError("the legacy default MLflow admin password is publicly known")


def _ini_value(value: str) -> str:
    """configparser interpolates ``%``; URL-encoded values (``%2F``) must be escaped."""
    if "\n" in value or "\r" in value:
        raise ValueError("auth settings must be single-line")
    return value.replace("%", "%%")


def render_auth_ini(settings: AuthSettings) -> str:
    if not settings.database_uri.startswith("postgresql+psycopg2://"):
        raise ValueError("the auth database_uri must use postgresql+psycopg2:// (see module docstring)")
    if settings.auth_cache_ttl_seconds < 0:
        raise ValueError("auth_cache_ttl_seconds must be >= 0")
    lines = [
        "# Rendered by rendering.auth; do not edit by hand. Secret material: keep 0600.",
        "[mlflow]",
        f"default_permission = {settings.default_permission}",
        f"database_uri = {_ini_value(settings.database_uri)}",
        f"admin_username = {_ini_value(settings.admin_username)}",
        f"authorization_function = {_ini_value(settings.authorization_function)}",
        f"grant_default_workspace_access = {'true' if settings.grant_default_workspace_access else 'false'}",
        f"auth_cache_ttl_seconds = {settings.auth_cache_ttl_seconds}",
        f"auth_cache_max_size = {settings.auth_cache_max_size}",
    ]
    return "\n".join(lines) + "\n"

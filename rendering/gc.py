"""The ``mlflow gc`` command for the EKS CronJob and the local target alike.

``mlflow gc`` permanently removes runs that have been in the ``deleted`` lifecycle stage longer
than ``--older-than`` — their metadata and their artifacts (``../shared/reference/
peers-and-mlflow-server.md`` §2 item 13, §3 "GC"). What the command needs depends on how
artifacts are stored:

* ``direct``: runs record ``s3://<root>/…`` locations and gc deletes them with its own S3
  credentials (list the prefix, delete objects: ``rendering.iam.garbage_collection_policy``).
  MLflow still insists on a tracking URI being set, so it is the backend store URI itself:
  gc then talks to the database only, never to the HTTP server.
* ``proxied``: runs record ``mlflow-artifacts:/…`` locations, which gc can only resolve through
  the tracking server (MLflow's own note on the command), so it needs the server's URL and
  credentials, and the server deletes the objects with its role.

MLflow 3.17.2 pages S3 listings when deleting (the 1,000-object cut of mlflow#14654 is fixed in
``S3ArtifactRepository.delete_artifacts``). gc does **not** check registered models: a model
version whose source is a deleted run loses its files (the ops cleanup tool guards that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .mlflow_server import ArtifactAccessMode, MlflowServerLaunch, S3Client, s3_client_env

_AGE = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}


def age_seconds(older_than: str) -> int:
    """Seconds in an ``--older-than`` age like ``30d`` or ``1d12h`` (integers only; MLflow also
    takes fractions, which a schedule never needs). ValueError for anything else or zero."""
    match = _AGE.match(older_than)
    if not older_than or match is None:
        raise ValueError(f"an age like 30d, 12h or 1d12h (days, hours, minutes, seconds), got {older_than!r}")
    seconds = sum(int(value) * _SECONDS[unit] for unit, value in match.groupdict().items() if value)
    if seconds <= 0:
        raise ValueError(f"the age must be more than zero, got {older_than!r}")
    return seconds


@dataclass(frozen=True)
class GcSettings:
    older_than: str
    backend_store_uri: str
    """``postgresql+psycopg2://`` without password (libpq reads ``PGPASSFILE``)."""
    access_mode: ArtifactAccessMode
    mlflow_command: tuple[str, ...] = ("mlflow",)
    pgpassfile: str | None = None
    tracking_uri: str | None = None
    """``proxied`` only: the tracking server gc resolves ``mlflow-artifacts:/`` through."""
    s3: S3Client = field(default_factory=S3Client)
    tracking_server_ca: str | None = None
    """``proxied`` over HTTPS with a private CA (the local target)."""

    def __post_init__(self) -> None:
        age_seconds(self.older_than)
        if not self.backend_store_uri.startswith("postgresql+psycopg2://"):
            raise ValueError("backend_store_uri must use postgresql+psycopg2://")
        if (self.access_mode == "proxied") != (self.tracking_uri is not None):
            raise ValueError("tracking_uri is needed in proxied mode, and only there")


@dataclass(frozen=True)
class GcSecrets:
    """``proxied`` only: the tracking-server user gc deletes artifacts as."""

    username: str
    password: str


GcLaunch = MlflowServerLaunch
"""A gc run has the server's launch shape (argv, plain env, secret env): one type for both."""


def render_gc(settings: GcSettings, secrets: GcSecrets | None = None) -> GcLaunch:
    tracking_uri = settings.tracking_uri if settings.access_mode == "proxied" else settings.backend_store_uri
    assert tracking_uri is not None  # __post_init__
    argv = (
        *settings.mlflow_command,
        "gc",
        "--older-than",
        settings.older_than,
        "--backend-store-uri",
        settings.backend_store_uri,
        "--tracking-uri",
        tracking_uri,
    )
    env: dict[str, str] = {}
    if settings.pgpassfile is not None:
        env["PGPASSFILE"] = settings.pgpassfile
    env.update(s3_client_env(settings.s3))
    if settings.tracking_server_ca is not None:
        env["MLFLOW_TRACKING_SERVER_CERT_PATH"] = settings.tracking_server_ca
    secret_env: dict[str, str] = {}
    if settings.access_mode == "proxied":
        if secrets is None:
            raise ValueError("proxied mode: gc deletes artifacts through the server and needs its credentials")
        secret_env = {"MLFLOW_TRACKING_USERNAME": secrets.username, "MLFLOW_TRACKING_PASSWORD": secrets.password}
    elif secrets is not None:
        raise ValueError("direct mode: gc never talks to the tracking server; give it no credentials")
    return GcLaunch(tuple(argv), env, secret_env)

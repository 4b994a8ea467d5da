"""Secrets the local platform generates once and keeps in ``<state>/secrets.json`` (0600).

Generated rather than fixed so that no two local platforms share credentials and nothing
guessable (like MLflow's old ``password1234``) can ever be used. Kept across restarts because
the databases, the admin account and ``mlflow.env`` depend on them.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import PlatformError
from .users import current_user, write_file

_ALPHABET = string.ascii_letters + string.digits


def _password(length: int = 24) -> str:
    """Letters and digits only: safe in URLs, ini files, pgpass files and shell env files."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class LocalSecrets:
    """What the local platform generates once and keeps in its state dir. Not the renderers' input:
    ``localplatform.target.render_local_server_side`` maps it to ``rendering.server_side.PlatformSecrets``
    (the secrets the server side is rendered with, on either target)."""

    admin_password: str
    """MLflow admin (basic-auth); >= 12 characters as MLflow requires."""
    flask_secret_key: str
    db_superuser_password: str
    """The local cluster's bootstrap superuser (the RDS master user's counterpart)."""
    db_app_password: str
    db_app_scram_salt: str
    """base64; the SCRAM verifier of the app role is derived from password + salt."""
    aws_access_key_id: str
    aws_secret_access_key: str
    pgbouncer_stats_password: str = ""
    """PgBouncer ``stats_users`` login of the pool-metrics exporter (added later: state dirs
    made before it get one generated on the next load)."""
    pgbouncer_stats_salt: str = ""

    @property
    def app_salt_bytes(self) -> bytes:
        return base64.b64decode(self.db_app_scram_salt)

    @property
    def stats_salt_bytes(self) -> bytes:
        return base64.b64decode(self.pgbouncer_stats_salt)


def generate() -> LocalSecrets:
    return LocalSecrets(
        admin_password=_password(24),
        flask_secret_key=secrets.token_hex(32),
        db_superuser_password=_password(32),
        db_app_password=_password(32),
        db_app_scram_salt=base64.b64encode(secrets.token_bytes(16)).decode(),
        aws_access_key_id="AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16)),
        aws_secret_access_key=_password(40),
        pgbouncer_stats_password=_password(32),
        pgbouncer_stats_salt=base64.b64encode(secrets.token_bytes(16)).decode(),
    )


def load_or_create(path: Path) -> LocalSecrets:
    if path.exists():
        try:
            data = json.loads(path.read_text())
            loaded = LocalSecrets(**data)
        except (ValueError, TypeError) as error:
            raise PlatformError(f"{path} is unreadable ({error}); remove the state dir to start over") from None
        if loaded.pgbouncer_stats_password:
            return loaded
        fresh = generate()
        loaded = LocalSecrets(
            **{
                **asdict(loaded),
                "pgbouncer_stats_password": fresh.pgbouncer_stats_password,
                "pgbouncer_stats_salt": fresh.pgbouncer_stats_salt,
            }
        )
        write_file(path, json.dumps(asdict(loaded), indent=2), current_user(), 0o600)
        return loaded
    created = generate()
    write_file(path, json.dumps(asdict(created), indent=2), current_user(), 0o600)
    return created

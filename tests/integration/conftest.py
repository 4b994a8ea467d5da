"""Fixtures for the integration tests: each module runs on its own local platform (own state
directory, own free loopback ports), reached only through nginx's TLS endpoint and verified
with the platform's generated CA.

Nothing here is skipped: a missing program (PostgreSQL, nginx, Chromium...) fails the test
with the platform's or the browser helper's message naming the package to install."""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from localplatform import LocalPlatform, PlatformOptions
from localplatform.state_dir import remove_relocated

HERE = Path(__file__).resolve().parent
PROJECT_ROOT = HERE.parent.parent
ARTIFACTS_DIR = PROJECT_ROOT / "test-artifacts"
CLIENT_ENV_PREFIXES = ("MLFLOW_", "AWS_")
CLIENT_ENV_KEYS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.local)  # they start the real services of the local platform


def module_platform(name: str, **options: object) -> Iterator[LocalPlatform]:
    """One platform for a test module: its own state dir and free loopback ports, started once,
    stopped (by pid) when the module is done; its logs are kept in ``test-artifacts/logs/``.

    The state dir is a fresh ``mkdtemp`` directory, deliberately *not* under pytest's
    ``/tmp/pytest-of-<user>``: every pytest session that starts on the machine resets that
    directory to 0700 and deletes all but its three newest ``pytest-N`` dirs, which took the
    service user's access away from (or deleted) a platform running in another session."""
    base = Path(tempfile.mkdtemp(prefix=f"mlflow-it-{name}-"))
    base.chmod(0o711)  # the service user (PostgreSQL, PgBouncer, nginx) may traverse, not list
    platform = LocalPlatform(PlatformOptions(state_dir=base / "state", **options))  # type: ignore[arg-type]
    kept = artifacts_dir() / "logs" / name
    try:
        try:
            platform.start()
        except Exception as error:
            error.add_note(f"the platform's logs are kept in {kept}")
            raise
        yield platform
    finally:
        try:
            platform.stop()
        finally:
            logs = base / "state" / "logs"
            if logs.is_dir():
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(logs, kept)
            remove_relocated(platform.layout)
            shutil.rmtree(base, ignore_errors=True)


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class Edge:
    """Plain HTTP(S) access to the platform's public endpoint, as any non-MLflow client sees it.

    ``trust_env`` is off so nothing from the process environment (``REQUESTS_CA_BUNDLE``,
    proxies, netrc) changes what is verified: every request names its trust anchor."""

    platform: LocalPlatform
    url: str
    ca_cert: Path
    admin: tuple[str, str]

    @classmethod
    def of(cls, platform: LocalPlatform) -> Edge:
        env = platform.client_env()
        return cls(
            platform,
            env["MLFLOW_TRACKING_URI"],
            Path(env["MLFLOW_TRACKING_SERVER_CERT_PATH"]),
            (env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]),
        )

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_cert)
        return session

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: tuple[str, str] | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
        allow_redirects: bool = False,
    ) -> requests.Response:
        all_headers = dict(headers or {})
        if auth is not None:
            all_headers["Authorization"] = basic_auth(*auth)
        with self.session() as session:
            return session.request(
                method,
                (base or self.url) + path,
                json=json,
                params=params,
                headers=all_headers,
                timeout=60,
                allow_redirects=allow_redirects,
            )

    def as_admin(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.request(method, path, auth=self.admin, **kwargs)


@contextmanager
def client_environment(platform: LocalPlatform) -> Iterator[dict[str, str]]:
    """This process's environment becomes what ``set -a; . mlflow.env`` gives a training
    script (MLflow and AWS settings from anywhere else removed); restored afterwards."""
    import mlflow
    import mlflow.tracking.fluent as fluent

    saved = dict(os.environ)
    for key in list(os.environ):
        if key.startswith(CLIENT_ENV_PREFIXES) or key in CLIENT_ENV_KEYS:
            del os.environ[key]
    env = platform.client_env()
    os.environ.update(env)
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "600"  # the guide's setting for large uploads
    try:
        yield env
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        fluent._active_experiment_id = None  # set by mlflow.set_experiment; belongs to this platform
        os.environ.clear()
        os.environ.update(saved)


def artifacts_dir() -> Path:
    """``test-artifacts/`` at the project root (gitignored): what a test run leaves to look at."""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    return ARTIFACTS_DIR

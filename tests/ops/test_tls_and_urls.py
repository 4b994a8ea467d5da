"""Issue 21 item 7 against the local platform's nginx: a missing CA, ``http://`` to the port that
redirects to HTTPS, and ``http://`` to the HTTPS port each end an ops tool at once, in one line
that names the fix — instead of MLflow retrying a certificate error for about 4 minutes, a 401
after the redirect dropped the credentials, or nginx's HTML page."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit, urlunsplit

import pytest

from localplatform import LocalPlatform
from mlflowops import bootstrap, cleanup, cli, promotion, validation

from .conftest import ROOT, Result, run_script

pytestmark = pytest.mark.timeout(600)

Main = Callable[[Sequence[str]], int]
TOOLS: list[tuple[Main, list[str]]] = [
    (promotion.main, ["--model-name", "m", "--version", "1", "--target-alias", "champion"]),
    (validation.main, ["--model-uri", "models:/m/1", "--require", "acc>=0.9"]),
    (cleanup.main, ["--experiment", "e", "--metric", "acc"]),
    (bootstrap.main, [str(ROOT / "examples" / "teams.yaml"), "--dry-run"]),
]
FAST_S = 30
"""Far below MLflow's own 244 s of retries on a certificate error (docs/ops.md)."""


def _with_port(uri: str, scheme: str, port: int) -> str:
    parts = urlsplit(uri)
    return urlunsplit((scheme, f"{parts.hostname}:{port}", parts.path, "", ""))


def _ports(platform: LocalPlatform) -> dict[str, int]:
    ports = platform.metadata()["ports"]
    assert isinstance(ports, dict)
    return {name: int(port) for name, port in ports.items()}


@pytest.mark.parametrize(("main", "argv"), TOOLS)
def test_no_ca_fails_fast_naming_the_fix(
    main: Main, argv: list[str], ops_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, invoke: Callable[..., Result]
) -> None:
    for key in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(key, raising=False)
    began = time.monotonic()
    result = invoke(main, *argv)
    elapsed = time.monotonic() - began
    result.assert_one_line_error(
        f"cannot verify the TLS certificate of {ops_env['MLFLOW_TRACKING_URI']}",
        "set MLFLOW_TRACKING_SERVER_CERT_PATH",
        ".local/mlflow.env",
    )
    assert result.code == cli.EXIT_ERROR
    assert elapsed < FAST_S, f"took {elapsed:.0f}s"


def test_no_ca_as_a_script_with_default_retries(ops_env: dict[str, str]) -> None:
    """What a user runs: a fresh interpreter, MLflow's default retries, no CA."""
    env = {k: v for k, v in ops_env.items() if k not in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "REQUESTS_CA_BUNDLE")}
    began = time.monotonic()
    result = run_script("promote", "--model-name", "m", "--version", "1", "--target-alias", "challenger", env=env)
    elapsed = time.monotonic() - began
    result.assert_one_line_error("cannot verify the TLS certificate", "MLFLOW_TRACKING_SERVER_CERT_PATH")
    assert result.code == 3 and result.out == ""
    assert elapsed < FAST_S + 60, f"took {elapsed:.0f}s (the interpreter's imports included)"


@pytest.mark.parametrize(("main", "argv"), TOOLS)
def test_http_to_the_redirecting_port_fails_fast(
    main: Main,
    argv: list[str],
    ops_platform: LocalPlatform,
    ops_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    invoke: Callable[..., Result],
) -> None:
    uri = _with_port(ops_env["MLFLOW_TRACKING_URI"], "http", _ports(ops_platform)["http"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = invoke(main, *argv)
    result.assert_one_line_error(
        f"the tracking server redirects {uri}/health to https://",
        "set MLFLOW_TRACKING_URI to the https:// URL",
        "MLFLOW_TRACKING_SERVER_CERT_PATH",
        ".local/mlflow.env",
    )
    assert result.code == cli.EXIT_USAGE


def test_http_to_the_https_port_fails_fast(
    ops_platform: LocalPlatform, ops_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, invoke: Callable[..., Result]
) -> None:
    https = ops_env["MLFLOW_TRACKING_URI"]
    uri = _with_port(https, "http", _ports(ops_platform)["https"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    main, argv = TOOLS[0]
    result = invoke(main, *argv)
    result.assert_one_line_error(
        f"{uri} sends plain HTTP to the server's HTTPS port: set MLFLOW_TRACKING_URI to {https.rstrip('/')}",
        "MLFLOW_TRACKING_SERVER_CERT_PATH",
    )
    assert result.code == cli.EXIT_USAGE

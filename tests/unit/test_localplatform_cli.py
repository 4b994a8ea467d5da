"""What ``make up`` / ``make status`` tell a new user, and the files they point at (issue 21:
the export-style env file, the client install per access mode, the UI and artifact root, the
status exit code after ``down``, options through ``make up ARGS=...``, help texts). Pure: no
services are started."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from localplatform.__main__ import build_parser, main, own_command, up_summary
from localplatform.clientenv import render_env_file, render_env_script
from localplatform.platform import PlatformInfo
from localplatform.status import ComponentStatus, PlatformStatus, write_status
from rendering.client import client_install_command
from rendering.mlflow_server import ArtifactAccessMode
from rendering.versions import mlflow_version

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "MLFLOW_TRACKING_URI": "https://localhost:8443",
    "MLFLOW_TRACKING_PASSWORD": "p'a ss$word",
    "MLFLOW_TRACKING_SERVER_CERT_PATH": "/state/ca/ca.crt",
}


def info(access_mode: ArtifactAccessMode, username: str | None = "admin") -> PlatformInfo:
    return PlatformInfo(
        url="https://localhost:8443",
        env_file=Path(".local/mlflow.env"),
        ca_cert=Path(".local/ca/ca.crt"),
        username=username,
        access_mode=access_mode,
        startup_seconds=40.0,
        env_script=Path(".local/mlflow.sh"),
        artifact_root="s3://mlflow-local-artifacts/mlflow",
    )


def sourced(path: Path, *, set_a: bool) -> dict[str, str]:
    """The environment a program started after sourcing ``path`` in bash sees."""
    line = f"set -a; . {path}; set +a" if set_a else f". {path}"
    script = f"{line}; exec {sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
    result = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    import json

    env: dict[str, str] = json.loads(result.stdout)
    return env


def test_the_export_style_file_exports_without_set_a(tmp_path: Path) -> None:
    script, plain = tmp_path / "mlflow.sh", tmp_path / "mlflow.env"
    script.write_text(render_env_script(ENV))
    plain.write_text(render_env_file(ENV))
    exported = sourced(script, set_a=False)
    assert {k: exported.get(k) for k in ENV} == ENV
    # The KEY=value file needs set -a: without it a training script sees none of it (and MLflow
    # silently logs to ./mlflow.db). That is why mlflow.sh exists and is shown first.
    assert not any(k in sourced(plain, set_a=False) for k in ENV)
    assert {k: sourced(plain, set_a=True).get(k) for k in ENV} == ENV


def test_client_install_names_the_pinned_mlflow_and_boto3_in_direct_mode() -> None:
    assert client_install_command("direct") == f"pip install mlflow=={mlflow_version()} boto3"
    assert client_install_command("proxied") == f"pip install mlflow=={mlflow_version()}"


def test_up_prints_the_install_the_env_script_the_ui_and_the_artifact_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCALPLATFORM_CLI", "make")
    text = "\n".join(up_summary(info("direct"), Path(".local")))
    assert client_install_command("direct") in text
    assert ". .local/mlflow.sh" in text
    assert "s3://mlflow-local-artifacts/mlflow" in text
    assert re.search(r"UI: open https://localhost:8443 in a browser that trusts \.local/ca/ca\.crt", text)
    assert "not user:pass@ in the URL" in text
    assert "make status  |  make down" in text and "python -m localplatform" not in text
    proxied = "\n".join(up_summary(info("proxied"), Path(".local")))
    assert client_install_command("proxied") + " " in proxied and "boto3" not in proxied


def test_printed_commands_follow_how_the_platform_was_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCALPLATFORM_CLI", raising=False)
    assert own_command("down", Path(".local")) == "python -m localplatform down"
    assert own_command("down", Path("/tmp/x")) == "python -m localplatform down --state-dir /tmp/x"
    monkeypatch.setenv("LOCALPLATFORM_CLI", "make")
    assert own_command("status", Path(".local")) == "make status"
    assert own_command("status", Path("/tmp/x")) == "make status STATE=/tmp/x"


def test_every_up_option_has_help() -> None:
    parser = build_parser()
    up = next(a for a in parser._actions if a.dest == "command").choices["up"]  # type: ignore[union-attr]
    missing = [a.option_strings[0] for a in up._actions if a.option_strings and not a.help]
    assert missing == []


def test_status_after_down_is_not_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    (state / "run").mkdir(parents=True)
    stopped = PlatformStatus(
        state="stopped", components={"postgres": ComponentStatus("postgres", "service", "stopped")}
    )
    write_status(state / "run" / "status.json", stopped)
    assert main(["status", "--state-dir", str(state)]) == 0
    assert "platform: stopped" in capsys.readouterr().out
    assert main(["status", "--state-dir", str(tmp_path / "never-started")]) == 0
    failed = PlatformStatus(state="failed", message="s3 failed", components=stopped.components)
    write_status(state / "run" / "status.json", failed)
    assert main(["status", "--state-dir", str(state)]) == 3


def test_make_passes_args_through_to_up() -> None:
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", "up", "ARGS=--access-mode proxied"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "MAKEFLAGS": ""},
    )
    assert result.returncode == 0, result.stderr
    line = next(ln for ln in result.stdout.splitlines() if "localplatform up" in ln)
    assert "LOCALPLATFORM_CLI=make" in line and line.endswith("--access-mode proxied")


def test_readme_shows_the_export_file_first_and_the_install_per_mode() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The local platform") : readme.index("## Deploying for real")]
    assert section.index(". .local/mlflow.sh") < section.index("set -a; . .local/mlflow.env; set +a")
    for mode in ("direct", "proxied"):
        assert client_install_command(mode) in section, mode
    assert ".local/ca/ca.crt" in section and "skops_trusted_types" in readme


def test_setup_filters_pip_noise_on_every_pip_install() -> None:
    """``make setup`` printed a pip warning from its self-upgrade, the one install without the filter."""
    lines = [ln for ln in (ROOT / "scripts" / "setup.sh").read_text().splitlines() if "pip install" in ln]
    assert lines and all(ln.rstrip().endswith("2> >(quiet_pip >&2)") for ln in lines), lines

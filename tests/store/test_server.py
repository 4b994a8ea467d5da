"""The platform's server runs on the set-based store: its command line selects it, the registry
keeps the database URI, and a client's ``log_batch`` over HTTPS lands through it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from localplatform import LocalPlatform
from rendering.tracking_store import DATABASE_SCHEME, STORE_SCHEME


def server_argv(platform: LocalPlatform) -> list[str]:
    pid = platform.component("mlflow").pid
    assert pid is not None, "the MLflow server is not running"
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_the_server_runs_the_plugin_and_the_registry_the_database(store_platform: LocalPlatform) -> None:
    argv = server_argv(store_platform)
    assert argv[argv.index("--backend-store-uri") + 1].startswith(f"{STORE_SCHEME}://")
    assert argv[argv.index("--registry-store-uri") + 1].startswith(f"{DATABASE_SCHEME}://")


def test_a_client_log_batch_goes_through_the_server(
    store_platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in store_platform.client_env().items():
        monkeypatch.setenv(name, value)
    client = MlflowClient()
    run = client.create_run(client.create_experiment("store-over-https"))
    run_id = run.info.run_id
    metrics = [Metric("loss", 1.0 / (step + 1), 1000 + step, step) for step in range(100)]
    metrics += [Metric("loss", math.nan, 1000, 5), Metric("acc", math.inf, 5, 1)]
    client.log_batch(run_id, metrics=metrics, params=[Param("lr", "0.1")], tags=[RunTag("team", "a")])
    client.log_batch(run_id, metrics=metrics[:10])  # identical re-log: a no-op
    data = client.get_run(run_id).data
    assert data.metrics == {"loss": 0.01, "acc": 1.7976931348623157e308}  # MLflow stores +inf as the largest double
    assert data.params == {"lr": "0.1"} and data.tags["team"] == "a"
    assert len(client.get_metric_history(run_id, "loss")) == 101

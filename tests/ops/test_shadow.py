"""verify_shadow.py on the local platform with made-up shadow data, logged the way the serving
side is meant to (``start_shadow_run`` + ``BatchingMetricLogger``, timestamps in the past):
both outcomes and the edge cases (no champion, too little time, a missing metric, a version
that is not the challenger), plus the pure verdict logic."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from mlflowops import cli, shadow
from mlflowops.batching import BatchingMetricLogger

from .conftest import Result, unique

pytestmark = pytest.mark.timeout(600)

HOUR_MS = 3_600_000
GATE = ["--min-hours-in-shadow", "24", "--max-metric-degradation", "0.02"]
METRICS = ["--metric", "ndcg:higher", "--metric", "latency_p99_ms:lower"]


@pytest.fixture
def model(client: Any) -> tuple[str, str]:
    """A registered model with versions 1 and 2 (v1 champion-capable, v2 the challenger), and
    the name of its own shadow experiment."""
    name = unique("shadow-model")
    client.create_registered_model(name)
    experiment = client.create_experiment(unique("shadow-src"))
    run = client.create_run(experiment)
    for _ in range(2):
        client.create_model_version(name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "challenger", "2")
    return name, f"shadow/{name}"


def log_shadow(
    client: Any,
    experiment: str,
    name: str,
    version: str,
    alias: str,
    hours_ago: float,
    values: dict[str, float],
    until_hours_ago: int = 0,
) -> None:
    """One serving replica's run: a point per hour from ``hours_ago`` until ``until_hours_ago``."""
    run_id = shadow.start_shadow_run(client, experiment, name, version, alias)
    now = int(time.time() * 1000)
    with BatchingMetricLogger(run_id, client=client, background=False, register_atexit=False) as logger:
        for step in range(int(hours_ago) - until_hours_ago + 1):
            logger.log_metrics(values, step=step, timestamp_ms=now - int((hours_ago - step) * HOUR_MS))
    client.set_terminated(run_id)


def verify(invoke: Callable[..., Result], name: str, *extra: str) -> Result:
    return invoke(shadow.main, "--model-name", name, "--version", "2", *GATE, *extra)


def tags(client: Any, name: str) -> dict[str, str]:
    return {k: v for k, v in client.get_model_version(name, "2").tags.items() if k.startswith("shadow_")}


def test_within_tolerance_passes_over_the_same_window(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name, experiment = model
    client.set_registered_model_alias(name, "champion", "1")
    # Long before the challenger's shadow began the champion scored 0.9: outside the window.
    log_shadow(client, experiment, name, "1", "champion", 60, {"ndcg": 0.9, "latency_p99_ms": 10.0}, 40)
    log_shadow(client, experiment, name, "1", "champion", 30, {"ndcg": 0.50, "latency_p99_ms": 40.0})
    log_shadow(client, experiment, name, "2", "challenger", 26, {"ndcg": 0.495, "latency_p99_ms": 40.4})
    log_shadow(client, experiment, name, "2", "challenger", 25, {"ndcg": 0.505, "latency_p99_ms": 40.4})
    dry = verify(invoke, name, *METRICS, "--dry-run")
    assert dry.code == 0 and "would tag v2 shadow_verification=passed" in dry.out, dry
    assert tags(client, name) == {}, "--dry-run writes nothing"
    result = verify(invoke, name, *METRICS, "--json")
    assert result.code == 0, result
    assert result.json["verdict"] == "passed" and result.json["champion_version"] == "1"
    assert result.json["metrics"]["ndcg:higher"]["champion"] == pytest.approx(0.50), "only the shared window"
    assert result.json["metrics"]["latency_p99_ms:lower"]["degradation"] == pytest.approx(0.01)
    assert 26 <= result.json["hours_in_shadow"] < 27
    written = tags(client, name)
    assert written["shadow_verification"] == "passed" and "shadow_verification_reasons" not in written
    assert "ndcg challenger 0.4999 vs champion 0.5 (+0.02% worse)" in written["shadow_comparison"]


def test_a_degraded_metric_fails_and_is_tagged(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name, experiment = model
    client.set_registered_model_alias(name, "champion", "1")
    log_shadow(client, experiment, name, "1", "champion", 30, {"ndcg": 0.50, "latency_p99_ms": 40.0})
    log_shadow(client, experiment, name, "2", "challenger", 25, {"ndcg": 0.45, "latency_p99_ms": 39.0})
    result = verify(invoke, name, *METRICS)
    result.assert_one_line_error("shadow verification failed", "ndcg (higher is better)", "10.00% worse")
    assert result.code == cli.EXIT_REFUSED
    written = tags(client, name)
    assert written["shadow_verification"] == "failed"
    assert "latency" not in written["shadow_verification_reasons"], "39 ms is better than 40 ms"


def test_too_little_time_and_a_missing_metric_are_insufficient(
    client: Any, model: tuple[str, str], invoke: Any
) -> None:
    name, experiment = model
    client.set_registered_model_alias(name, "champion", "1")
    log_shadow(client, experiment, name, "1", "champion", 30, {"ndcg": 0.50})
    log_shadow(client, experiment, name, "2", "challenger", 3, {"ndcg": 0.60})
    result = verify(invoke, name, *METRICS, "--json")
    assert result.code == 1 and result.json["verdict"] == "insufficient"
    reasons = result.json["reasons"]
    assert any(r.startswith("only 3.0 h in shadow; --min-hours-in-shadow is 24") for r in reasons), reasons
    assert "latency_p99_ms: the challenger logged no shadow values" in reasons
    assert "latency_p99_ms: champion v1 logged no shadow values in the window" in reasons
    assert tags(client, name)["shadow_verification"] == "insufficient"
    assert verify(invoke, name, "--metric", "ndcg:higher", "--min-hours-in-shadow", "2").code == 0, (
        "the later flag wins: 3 h meets a 2 h gate and ndcg is better"
    )
    assert "shadow_verification_reasons" not in tags(client, name), "a pass clears the old reasons"


def test_no_champion_yet_compares_nothing_but_still_gates_time(
    client: Any, model: tuple[str, str], invoke: Any
) -> None:
    name, experiment = model
    log_shadow(client, experiment, name, "2", "challenger", 25, {"ndcg": 0.3, "latency_p99_ms": 80.0})
    result = verify(invoke, name, *METRICS, "--json")
    assert result.code == 0 and result.json["champion_version"] is None, result
    assert tags(client, name)["shadow_comparison"].startswith("no champion yet: nothing compared")
    late = verify(invoke, name, *METRICS, "--min-hours-in-shadow", "48")
    late.assert_one_line_error("shadow verification insufficient", "only 25.0 h in shadow")


def test_only_the_current_challenger_is_verified(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name, experiment = model
    wrong = invoke(shadow.main, "--model-name", name, "--version", "1", *GATE, *METRICS)
    wrong.assert_one_line_error("version 1 is not the current challenger (the challenger is version 2)")
    assert wrong.code == 1
    nothing = verify(invoke, name, *METRICS)
    nothing.assert_one_line_error(f"no shadow experiment '{experiment}'")
    assert tags(client, name) == {}


def test_usage_errors_and_pure_degradation(invoke: Any) -> None:
    argv = ["--model-name", "m", "--version", "1", *GATE]
    invoke(shadow.main, *argv).assert_one_line_error("give at least one --metric NAME:higher|lower")
    invoke(shadow.main, *argv, "--metric", "ndcg").assert_one_line_error("--metric 'ndcg': expected NAME:higher")
    bad = invoke(shadow.main, "--model-name", "m", "--version", "1", "--min-hours-in-shadow", "-1")
    bad.assert_one_line_error("--min-hours-in-shadow '-1': expected a number >= 0")
    assert bad.code == 2
    higher, lower = shadow.MetricSpec("ndcg", "higher"), shadow.MetricSpec("lat", "lower")
    assert shadow.degradation(higher, 0.5, 0.49) == pytest.approx(0.02)
    assert shadow.degradation(lower, 40.0, 30.0) == pytest.approx(-0.25)
    assert shadow.degradation(lower, 0.0, 0.1) == pytest.approx(0.1)

"""Capacity arithmetic (rendering.capacity): what one replica carries, how many a declared peak
needs, the config validation that enforces it, and the generated capacity note."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from rendering.capacity import (
    HPA_TARGET_CPU_UTILISATION_PERCENT,
    MEASURED,
    Demand,
    MeasuredCost,
    ReplicaShape,
    cpu_cores,
    estimate,
    usable_cores,
)
from stackconfig import ConfigError, load_stack_config
from tests.unit.test_stack_config import ROOT, stack_values

COST = MeasuredCost(cpu_ms_per_request=20.0, cpu_ms_per_1000_metrics=100.0, measured="test")


def test_a_replica_counts_only_up_to_the_hpa_target_and_one_core_per_worker() -> None:
    assert usable_cores(ReplicaShape(cpu_cores=2, workers=2)) == pytest.approx(
        2 * HPA_TARGET_CPU_UTILISATION_PERCENT / 100
    )
    # More CPU than workers buys nothing: a uvicorn worker is one process.
    assert usable_cores(ReplicaShape(cpu_cores=4, workers=2)) == usable_cores(ReplicaShape(cpu_cores=2, workers=2))
    assert usable_cores(ReplicaShape(cpu_cores=0.5, workers=2)) == pytest.approx(0.5 * 0.7)
    with pytest.raises(ValueError, match="cpu > 0 and workers >= 1"):
        usable_cores(ReplicaShape(cpu_cores=0, workers=2))


def test_throughput_per_replica_follows_the_measured_cost() -> None:
    one = estimate(Demand(0, 0), ReplicaShape(1, 2), COST)
    two = estimate(Demand(0, 0), ReplicaShape(2, 2), COST)
    assert two.requests_per_s_per_replica == pytest.approx(2 * one.requests_per_s_per_replica)
    dearer = estimate(Demand(0, 0), ReplicaShape(1, 2), MeasuredCost(40.0, 200.0, "test"))
    assert dearer.requests_per_s_per_replica == pytest.approx(one.requests_per_s_per_replica / 2)
    assert dearer.metrics_per_s_per_replica == pytest.approx(one.metrics_per_s_per_replica / 2)
    # 0.7 usable cores at 20 ms per request: 35 requests/s; at 100 ms per 1,000 metrics: 7,000/s.
    assert (one.requests_per_s_per_replica, one.metrics_per_s_per_replica) == pytest.approx((35.0, 7000.0))


def test_replicas_needed_is_the_larger_of_the_two_demands_rounded_up() -> None:
    shape = ReplicaShape(1, 2)  # 35 req/s and 7,000 metrics/s per replica at COST
    assert estimate(Demand(35, 7000), shape, COST).replicas_needed == 1
    assert estimate(Demand(35.1, 0), shape, COST).replicas_needed == 2
    assert estimate(Demand(10, 21_001), shape, COST).replicas_needed == 4
    assert estimate(Demand(0, 0), shape, COST).replicas_needed == 1


def test_cpu_quantities() -> None:
    assert [cpu_cores(q) for q in ("500m", "2", "1.5")] == [0.5, 2.0, 1.5]
    with pytest.raises(ValueError, match="not a CPU quantity: 'two'"):
        cpu_cores("two")


def test_both_stacks_carry_their_declared_peak() -> None:
    for stack in ("dev", "prod"):
        server = load_stack_config(stack_values(stack)).server
        assert server.peak_requests_per_second > 0 and server.peak_metrics_per_second > 0
        need = estimate(
            Demand(server.peak_requests_per_second, server.peak_metrics_per_second),
            ReplicaShape(cpu_cores(server.cpu), server.workers),
        )
        assert need.replicas_needed <= server.max_replicas


def test_a_peak_max_replicas_cannot_carry_is_refused_naming_the_size_it_needs() -> None:
    values = copy.deepcopy(stack_values("prod"))
    values["server"]["peakRequestsPerSecond"] = 1000
    server = values["server"]
    need = estimate(Demand(1000, server["peakMetricsPerSecond"]), ReplicaShape(cpu_cores(server["cpu"]), 2), MEASURED)
    assert need.replicas_needed > server["maxReplicas"]
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    (problem,) = caught.value.problems
    assert problem.key == "mlflow-platform:server.maxReplicas"
    assert f"at least {need.replicas_needed} to carry the declared peak (1000 requests/s" in str(problem)


def test_a_peak_must_be_a_non_negative_integer() -> None:
    values = copy.deepcopy(stack_values("dev"))
    values["server"]["peakMetricsPerSecond"] = "lots"
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    assert [p.key for p in caught.value.problems] == ["mlflow-platform:server.peakMetricsPerSecond"]


def test_the_committed_capacity_note_is_what_the_stack_files_give() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "capacity_note.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

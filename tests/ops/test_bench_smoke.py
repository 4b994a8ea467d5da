"""The benchmark's load and accounting against a real platform (the ops suite's, shipped
configuration): every request it counts reached the database, and the CPU it reports is there.

Tiny on purpose (one round of half a second per cell): the figures are ``make bench``'s job."""

from __future__ import annotations

from typing import Any

from localplatform import LocalPlatform
from mlflowbench import report, runner
from mlflowbench.load import load_processes
from mlflowbench.scenarios import LOG_BATCH_10X100, LOG_METRIC, Variant, cells


def test_counted_requests_reached_the_database_and_cpu_is_accounted(ops_platform: LocalPlatform, client: Any):
    platform = runner.attach(Variant("platform", "ours"), ops_platform)
    scenarios = (LOG_BATCH_10X100, LOG_METRIC)
    runner.prepare(platform, ("job user", "admin"), scenarios)
    runner.warm_up(platform)
    table = cells(scenarios, ("job user", "admin"), ("platform",))
    with load_processes(2) as load:
        result = runner.run({platform.variant: platform}, table, load, rounds=1, seconds=0.5, say=lambda _: None)
    rows = {(r.scenario, r.identity): r for r in map(report.row_from, result.tallies)}
    for (scenario, identity), row in rows.items():
        assert row.requests > 0 and row.failed == 0, (scenario, identity, row.errors)
        assert row.pod_cpu_s > 0 and row.mlflow_cpu_s <= row.pod_cpu_s and row.postgres_cpu_s > 0
    batch = rows[(LOG_BATCH_10X100.name, "job user")]
    history = client.get_metric_history(platform.runs[(LOG_BATCH_10X100.name, "job user")], "metric_0003")
    assert len(history) == batch.requests * 100, "every counted log_batch wrote its 100 new steps"
    small = rows[(LOG_METRIC.name, "admin")]
    logged = client.get_metric_history(platform.runs[(LOG_METRIC.name, "admin")], "metric_0000")
    assert len(logged) == small.requests

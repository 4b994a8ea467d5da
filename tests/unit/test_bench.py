"""The benchmark's pure parts: the scenario table, CPU accounting from /proc, the report, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlflowbench import cli, measure, report, runner, scenarios
from mlflowbench.scenarios import LOG_BATCH_10X100, LOG_BATCH_1000_KEYS, LOG_METRIC, SCENARIOS


def test_the_table_has_the_issues_rows_columns_and_both_servers():
    slugs = {s.slug for s in SCENARIOS}
    assert slugs == {"batch-10x100", "batch-1000-keys", "log-metric", "set-tag", "get-run", "client"}
    assert (LOG_BATCH_10X100.keys, LOG_BATCH_10X100.steps) == (10, 100)
    assert (LOG_BATCH_1000_KEYS.keys, LOG_BATCH_1000_KEYS.steps) == (1000, 1)
    assert [s.client for s in SCENARIOS].count("mlflow") == 1
    table = scenarios.cells()
    assert len(table) == len(SCENARIOS) * 3 * 2
    assert {(c.identity, c.server) for c in table} == {
        (i, s) for i in ("job user", "admin", "no auth") for s in ("platform", "stock")
    }
    # The no-auth column runs on a platform without basic-auth; the others share one per server.
    assert {c.variant.auth for c in table if c.identity == "no auth"} == {"off"}
    assert {c.variant.auth for c in table if c.identity != "no auth"} == {"ours"}
    assert len(scenarios.VARIANTS) == 4


def test_log_batch_bodies_carry_new_steps_across_processes_and_rounds():
    first = scenarios.encode(LOG_BATCH_10X100, "run1", 0, 3)
    later = scenarios.encode(LOG_BATCH_10X100, "run1", 3, 2)
    seen = set()
    for request in first + later:
        body = json.loads(request.body)
        assert body["run_id"] == "run1" and request.method == "POST"
        assert len(body["metrics"]) == 1000
        assert len({m["key"] for m in body["metrics"]}) == 10
        rows = {(m["key"], m["step"]) for m in body["metrics"]}
        assert not rows & seen, "a (key, step) was sent twice: MLflow would treat it as a no-op"
        seen |= rows
    wide = json.loads(scenarios.encode(LOG_BATCH_1000_KEYS, "r", 5, 1)[0].body)
    assert len({m["key"] for m in wide["metrics"]}) == 1000


def test_small_requests_are_one_unit_each():
    (metric,) = scenarios.encode(LOG_METRIC, "r", 7, 1)
    assert json.loads(metric.body)["step"] == 7
    (get,) = scenarios.encode(scenarios.GET_RUN, "abc", 0, 1)
    assert (get.method, get.target, get.body) == ("GET", "/api/2.0/mlflow/runs/get?run_id=abc", b"")
    tags = [json.loads(r.body) for r in scenarios.encode(scenarios.SET_TAG, "r", 0, 2)]
    assert tags[0]["value"] != tags[1]["value"]


def _stat(pid: int, ppid: int, utime: int, stime: int, cutime: int = 0, cstime: int = 0, name: str = "x") -> str:
    # proc(5): pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    return f"{pid} ({name}) S {ppid} 0 0 0 0 0 0 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 1 0\n"


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    for pid, ppid, times, name in (
        (1, 0, (1000, 1000, 0, 0), "init"),
        (100, 1, (10, 5, 7, 3), "mlflow server"),  # cutime/cstime: a reaped worker's time
        (101, 100, (20, 0, 0, 0), "uvicorn) S 1 (x"),  # a name with ") " must not shift the fields
        (102, 100, (30, 10, 0, 0), "uvicorn"),
        (103, 102, (4, 1, 0, 0), "grandchild"),
        (200, 1, (50, 50, 0, 0), "postgres"),
        (201, 200, (8, 2, 0, 0), "postgres: backend"),
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(_stat(pid, ppid, *times, name=name))
    (tmp_path / "999").mkdir()  # exited while /proc was read: no stat file
    (tmp_path / "self").mkdir()
    return tmp_path


def test_process_tree_cpu_counts_descendants_and_reaped_children(fake_proc: Path):
    table = measure.read_processes(fake_proc)
    assert set(table) == {1, 100, 101, 102, 103, 200, 201}
    assert table[101].ppid == 100
    assert measure.tree_ticks(table, 100) == (10 + 5 + 7 + 3) + 20 + 40 + 5
    assert measure.tree_ticks(table, 200) == 110
    assert measure.tree_ticks(table, 4242) == 0
    seconds = measure.sample({"mlflow": 100, "postgres": 200}, fake_proc)
    assert seconds["mlflow"] == pytest.approx(90 / measure.CLOCK_TICKS)


def test_pod_cpu_sums_the_pods_processes_and_keeps_postgres_apart():
    cpu = {"mlflow": 1.0, "pgbouncer": 0.25, "nginx": 0.5, "pgbouncer-exporter": 0.125, "postgres": 4.0}
    split = measure.split(cpu)
    assert split.pod_s == pytest.approx(1.875)
    assert split.database_s == 4.0
    assert measure.difference({"a": 1.0}, {"a": 3.5, "b": 1.0}) == {"a": 2.5, "b": 1.0}


def test_rounds_alternate_the_servers_order():
    table = scenarios.cells((LOG_METRIC, LOG_BATCH_10X100), ("job user", "admin"))
    reversed_ = runner._servers_reversed(table)
    assert len(reversed_) == len(table)
    assert [c.server for c in table[:2]] == ["platform", "stock"]
    assert [c.server for c in reversed_[:2]] == ["stock", "platform"]
    assert [(c.scenario, c.identity) for c in reversed_[::2]] == [(c.scenario, c.identity) for c in table[::2]]


def _row(scenario: scenarios.Scenario, identity: str, server: str, requests: int, pod_s: float, seconds: float = 10):
    return report.Row(
        scenario=scenario.name,
        identity=identity,
        server=server,
        unit=scenario.unit,
        metrics_per_request=scenario.metrics_per_request,
        requests=requests,
        failed=0,
        seconds=seconds,
        pod_cpu_s=pod_s,
        mlflow_cpu_s=pod_s * 0.9,
        postgres_cpu_s=1.0,
        p50_ms=10,
        p99_ms=20,
        rounds=3,
    )


ROWS = [
    # 200 batches of 1,000 metrics in 10 s: 20,000 metrics/s; 12 s of pod CPU: 60 ms per 1,000 metrics.
    _row(LOG_BATCH_10X100, "job user", "platform", 200, 12.0),
    _row(LOG_BATCH_10X100, "job user", "stock", 50, 12.0),  # 240 ms per 1,000: 4×
    _row(LOG_BATCH_1000_KEYS, "job user", "platform", 50, 10.0),  # 5,000 metrics/s, 200 ms
    _row(LOG_BATCH_1000_KEYS, "job user", "stock", 20, 20.0),  # 1,000 ms: 5×, short of 6×
    _row(LOG_METRIC, "job user", "platform", 1000, 9.0),  # 9 ms per request, 100 req/s
    _row(LOG_METRIC, "job user", "stock", 400, 12.0),  # 30 ms: 3.3×
    _row(LOG_METRIC, "no auth", "platform", 1200, 9.0),  # 120 req/s: auth costs 16.7 %
]


def test_targets_are_computed_from_the_rows():
    found = {t.what: t for t in report.targets(ROWS)}
    ratio = found["10 keys × 100 steps: stock ÷ platform, pod CPU per 1,000 metrics"]
    assert ratio.measured == pytest.approx(4.0) and ratio.met
    assert found["10 keys × 100 steps: pod CPU per 1,000 metrics"].measured == pytest.approx(60)
    assert found["10 keys × 100 steps: saturated throughput"].measured == pytest.approx(20_000)
    wide = found["1,000 distinct keys: stock ÷ platform, pod CPU per 1,000 metrics"]
    assert wide.measured == pytest.approx(5.0) and not wide.met
    assert not found["1,000 distinct keys: saturated throughput"].met
    assert found["one metric per request: pod CPU per request"].measured == pytest.approx(9.0)
    overhead = found["auth overhead, job user vs no auth (requests/s)"]
    assert overhead.measured == pytest.approx(100 / 6) and not overhead.met
    assert report.capacity_figures(ROWS) == {"cpu_ms_per_request": 9.0, "cpu_ms_per_1000_metrics": 60.0}


def test_markdown_json_and_png(tmp_path: Path):
    text = report.write(ROWS, {"when": "now", "machine": "m", "load_average": "1.0–2.0"}, tmp_path)
    assert "| log_batch 1,000 metrics, 10 keys × 100 steps | job user | platform | 20,000 metrics/s | 60 " in text
    assert "| 4.0× |" in text and "| 5.0× |" in text
    assert "load average 1.0–2.0" in text
    assert "| 1,000 distinct keys: saturated throughput | 5,000.0 metrics/s | ≥ 8,000 metrics/s | **no** |" in text
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["capacity"] == {"cpu_ms_per_request": 9.0, "cpu_ms_per_1000_metrics": 60.0}
    assert len(document["rows"]) == len(ROWS)
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rounds", "0"], "error: --rounds must be >= 1, got 0"),
        (["--seconds", "0"], "error: --seconds must be > 0, got 0"),
        (["--scenario", "nope"], "error: --scenario nope: unknown; known: batch-1000-keys, batch-10x100, client"),
        (["--identity", "root"], "error: --identity 'root': unknown; known: job user, admin, no auth"),
    ],
)
def test_bad_arguments_are_one_error_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message)
    assert "Traceback" not in err


def _local_settings(**options: object):
    from localplatform.context import Context
    from localplatform.options import PlatformOptions

    opts = PlatformOptions(state_dir=Path("/nonexistent"), **options)  # type: ignore[arg-type]
    context = Context(opts, None, None, None, {}, None, None, Path("/usr/bin/python3"))  # type: ignore[arg-type]
    return context.platform_settings


def test_the_stock_server_is_mlflow_as_shipped_with_everything_else_the_same():
    from dataclasses import asdict

    from rendering.server_side import render_server_side
    from tests.unit.test_parity import SECRETS, local

    shipped, stock = _local_settings(), _local_settings(server="stock")
    assert (shipped.server_app, shipped.tracking_store) == ("mlflow-platform", "set-based")
    assert (stock.server_app, stock.tracking_store) == ("basic-auth", "stock")
    differing = {k for k, v in asdict(stock).items() if asdict(shipped)[k] != v}
    assert differing == {"server_app", "tracking_store"}, "TLS, auth cache, in-flight limit must be the same"
    argv = list(render_server_side(local(), stock, SECRETS).launch.argv)
    assert argv[argv.index("--app-name") + 1] == "basic-auth"
    assert argv[argv.index("--backend-store-uri") + 1].startswith("postgresql+psycopg2://")
    # Without auth neither server names an app; the stores still differ.
    assert not _local_settings(server="stock", auth="off").basic_auth


def test_a_bad_server_option_is_one_clear_problem():
    from localplatform.options import PlatformOptions, option_problems

    problems = option_problems(PlatformOptions(state_dir=Path("/x"), server="vanilla"))  # type: ignore[arg-type]
    assert problems == ["server must be one of platform, stock, got 'vanilla'"]


def test_profile_summary_shares_categories_and_leaf_functions():
    from mlflowbench import profile

    collapsed = profile.stacks(
        [
            "process 1;handler (/v/mlflow/server/handlers.py:1);check (/v/mlflow/server/auth/__init__.py:2) 30\n",
            "process 1;handler (/v/mlflow/server/handlers.py:1);parse_dict (/v/google/protobuf/json_format.py:3) 20\n",
            "process 1;handler (/v/mlflow/server/handlers.py:1);log_batch (/v/mlflow_platform_store/store.py:4) 50\n",
            "not a sample line\n",
            "process 1;run (/v/uvicorn/server.py:9);EpollSelector.select (/py/selectors.py:468) 70\n",
        ]
    )
    summary = profile.summarise(collapsed, top=2)
    assert summary["samples"] == 100
    categories = summary["categories"]
    assert isinstance(categories, dict)
    assert categories["basic-auth and permission checks (MLflow)"] == 0.3
    assert categories["request parsing (JSON → protobuf)"] == 0.2
    assert categories["the set-based store's statements"] == 0.5
    assert summary["leaves"] == [("log_batch (/v/mlflow_platform_store/store.py:4)", 0.5),
                                 ("check (/v/mlflow/server/auth/__init__.py:2)", 0.3)]  # fmt: skip
    text = report.markdown(ROWS, {"profiles": {"one metric per request": summary}})
    assert "## Profile: one metric per request, job user, platform (100 busy samples)" in text
    assert "- 30% basic-auth and permission checks (MLflow)" in text


def test_one_tree_in_cpu_seconds(fake_proc: Path):
    assert measure.tree_cpu_seconds(200, fake_proc) == pytest.approx(110 / measure.CLOCK_TICKS)

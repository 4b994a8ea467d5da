"""The run as figures: rows per cell, the headline figures, the issue's targets; JSON, Markdown, PNG.

Everything here is a pure function of :class:`.runner.Tally`-like rows (:class:`Row`), so it is
unit-tested without a platform. CPU is "pod" (MLflow, PgBouncer, nginx, the exporter: what a
replica's CPU request must cover) unless the column says PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .measure import split
from .scenarios import LOG_BATCH_10X100, LOG_BATCH_1000_KEYS, LOG_METRIC, SCENARIOS

PLATFORM, STOCK, JOB_USER = "platform", "stock", "job user"
ERROR_CHARS = 240
"""Of the first error of a failing cell, in the Markdown (the JSON keeps the first few whole)."""


@dataclass(frozen=True)
class Row:
    scenario: str
    identity: str
    server: str
    unit: str
    """``metrics`` or ``requests``: what the per-unit CPU counts."""
    metrics_per_request: int
    requests: int
    failed: int
    seconds: float
    pod_cpu_s: float
    mlflow_cpu_s: float
    postgres_cpu_s: float
    p50_ms: float
    p99_ms: float
    rounds: int
    errors: list[str] = field(default_factory=list)

    @property
    def units(self) -> int:
        return self.requests * self.metrics_per_request if self.unit == "metrics" else self.requests

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def metrics_per_s(self) -> float:
        return self.requests_per_s * self.metrics_per_request

    def ms_per_1000(self, cpu_s: float) -> float:
        """CPU milliseconds per 1,000 units (metrics or requests)."""
        return cpu_s * 1e6 / self.units if self.units else 0.0

    @property
    def pod_ms_per_1000(self) -> float:
        return self.ms_per_1000(self.pod_cpu_s)

    @property
    def postgres_ms_per_1000(self) -> float:
        return self.ms_per_1000(self.postgres_cpu_s)


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def row_from(tally: Any) -> Row:
    """A :class:`.runner.Tally` as a report row."""
    cpu = split(tally.cpu_s)
    scenario = tally.cell.scenario
    return Row(
        scenario=scenario.name,
        identity=tally.cell.identity,
        server=tally.cell.server,
        unit=scenario.unit,
        metrics_per_request=scenario.metrics_per_request,
        requests=tally.requests,
        failed=tally.failed,
        seconds=tally.seconds,
        pod_cpu_s=cpu.pod_s,
        mlflow_cpu_s=cpu.by_component.get("mlflow", 0.0),
        postgres_cpu_s=cpu.database_s,
        p50_ms=percentile(tally.latencies_s, 0.5),
        p99_ms=percentile(tally.latencies_s, 0.99),
        rounds=tally.rounds,
        errors=list(tally.errors),
    )


def find(rows: Iterable[Row], scenario: str, identity: str, server: str) -> Row | None:
    return next((r for r in rows if (r.scenario, r.identity, r.server) == (scenario, identity, server)), None)


@dataclass(frozen=True)
class Target:
    what: str
    measured: float
    target: float
    higher_is_better: bool
    unit: str

    @property
    def met(self) -> bool:
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def targets(rows: Sequence[Row]) -> list[Target]:
    """The issue's targets that this run can check (both servers, job user unless stated)."""
    out: list[Target] = []
    for scenario, share, floor, label in (
        (LOG_BATCH_10X100.name, 4.0, 15_000, "10 keys × 100 steps"),
        (LOG_BATCH_1000_KEYS.name, 6.0, 8_000, "1,000 distinct keys"),
    ):
        ours, stock = find(rows, scenario, JOB_USER, PLATFORM), find(rows, scenario, JOB_USER, STOCK)
        if ours and stock:
            out.append(
                Target(
                    f"{label}: stock ÷ platform, pod CPU per 1,000 metrics",
                    _ratio(stock.pod_ms_per_1000, ours.pod_ms_per_1000),
                    share,
                    True,
                    "×",
                )
            )
            if scenario == LOG_BATCH_10X100.name:
                out.append(Target(f"{label}: pod CPU per 1,000 metrics", ours.pod_ms_per_1000, 100, False, "ms"))
            out.append(Target(f"{label}: saturated throughput", ours.metrics_per_s, floor, True, "metrics/s"))
    ours, stock = find(rows, LOG_METRIC.name, JOB_USER, PLATFORM), find(rows, LOG_METRIC.name, JOB_USER, STOCK)
    off = find(rows, LOG_METRIC.name, "no auth", PLATFORM)
    if ours and stock:
        out.append(
            Target(
                "one metric per request: stock ÷ platform, pod CPU per request",
                _ratio(stock.pod_ms_per_1000, ours.pod_ms_per_1000),
                3.0,
                True,
                "×",
            )
        )
        out.append(Target("one metric per request: pod CPU per request", ours.pod_ms_per_1000 / 1000, 11, False, "ms"))
    if ours and off:
        overhead = 100 * (1 - _ratio(ours.requests_per_s, off.requests_per_s))
        out.append(Target("auth overhead, job user vs no auth (requests/s)", overhead, 10, False, "%"))
    return out


def capacity_figures(rows: Sequence[Row]) -> dict[str, float]:
    """What ``rendering.capacity.MEASURED`` takes from this run (the platform, as a job user)."""
    batch = find(rows, LOG_BATCH_10X100.name, JOB_USER, PLATFORM)
    small = find(rows, LOG_METRIC.name, JOB_USER, PLATFORM)
    out = {}
    if small:
        out["cpu_ms_per_request"] = round(small.pod_ms_per_1000 / 1000, 1)
    if batch:
        out["cpu_ms_per_1000_metrics"] = round(batch.pod_ms_per_1000, 1)
    return out


def _rate(row: Row) -> str:
    return f"{row.metrics_per_s:,.0f} metrics/s" if row.unit == "metrics" else f"{row.requests_per_s:,.1f} req/s"


def markdown(rows: Sequence[Row], meta: dict[str, Any]) -> str:
    """The side-by-side table (platform next to stock per scenario and identity), the targets."""
    lines = [
        f"# Server cost per unit of work: the platform against stock MLflow ({meta.get('when', '')})",
        "",
        f"{meta.get('machine', '')}; load average {meta.get('load_average', '')}. {meta.get('method', '')}",
        "",
        "| work | identity | server | throughput | pod CPU ms per 1,000 units | of which MLflow | "
        "PostgreSQL ms per 1,000 | stock ÷ platform (pod CPU) | p50 / p99 ms | requests | failed |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        unit = "metrics" if row.unit == "metrics" else "requests"
        ratio = ""
        if row.server == PLATFORM:
            stock = find(rows, row.scenario, row.identity, STOCK)
            if stock:
                ratio = f"{_ratio(stock.pod_ms_per_1000, row.pod_ms_per_1000):.1f}×"
        lines.append(
            f"| {row.scenario} | {row.identity} | {row.server} | {_rate(row)} | {row.pod_ms_per_1000:,.0f} "
            f"(per 1,000 {unit}) | {row.ms_per_1000(row.mlflow_cpu_s):,.0f} | {row.postgres_ms_per_1000:,.0f} | "
            f"{ratio} | {row.p50_ms:.0f} / {row.p99_ms:.0f} | {row.requests} | {row.failed} |"
        )
    lines += ["", "## Against the issue's targets", "", "| target | measured | required | met |", "|---|---:|---:|---|"]
    for t in targets(rows):
        sign = "≥" if t.higher_is_better else "≤"
        lines.append(
            f"| {t.what} | {t.measured:,.1f} {t.unit} | {sign} {t.target:,g} {t.unit} | "
            f"{'yes' if t.met else '**no**'} |"
        )
    figures = capacity_figures(rows)
    if figures:
        lines += [
            "",
            "For `rendering/capacity.py` (the platform, as a job user, pod CPU): "
            + ", ".join(f"`{k}={v}`" for k, v in figures.items()),
        ]
    for name, summary in (meta.get("profiles") or {}).items():
        lines += ["", f"## Profile: {name}, job user, platform ({summary.get('samples', 0)} busy samples)", ""]
        lines += [f"- {share:.0%} {category}" for category, share in summary.get("categories", {}).items()]
        lines += ["", "Top leaf functions: " + "; ".join(f"{f} {s:.0%}" for f, s in summary.get("leaves", []))]
    failures = [r for r in rows if r.errors]
    if failures:
        lines += ["", "## Errors (first few per cell)", ""]
        lines += [
            f"- {r.scenario} / {r.identity} / {r.server}: {r.failed} failed, e.g. "
            + " ".join(r.errors[0].split())[:ERROR_CHARS]
            for r in failures
        ]
    return "\n".join(lines) + "\n"


def document(rows: Sequence[Row], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "meta": meta,
        "rows": [
            {
                **asdict(r),
                "requests_per_s": r.requests_per_s,
                "metrics_per_s": r.metrics_per_s,
                "pod_cpu_ms_per_1000_units": r.pod_ms_per_1000,
                "postgres_cpu_ms_per_1000_units": r.postgres_ms_per_1000,
            }
            for r in rows
        ],
        "targets": [{**asdict(t), "met": t.met} for t in targets(rows)],
        "capacity": capacity_figures(rows),
    }


def chart(rows: Sequence[Row], path: Path) -> None:
    """Pod CPU per unit, platform next to stock, per scenario, as a job user (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.name for s in SCENARIOS if find(rows, s.name, JOB_USER, PLATFORM)]
    figure, (cpu_axis, rate_axis) = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    height = 0.38
    for offset, server, color in ((-height / 2, PLATFORM, "#1f77b4"), (height / 2, STOCK, "#aaaaaa")):
        found = [find(rows, n, JOB_USER, server) for n in names]
        positions = [i + offset for i in range(len(names))]
        cpu_axis.barh(positions, [r.pod_ms_per_1000 if r else 0 for r in found], height, label=server, color=color)
        rate_axis.barh(
            positions,
            [(r.metrics_per_s if r.unit == "metrics" else r.requests_per_s) if r else 0 for r in found],
            height,
            label=server,
            color=color,
        )
    cpu_axis.set_yticks(range(len(names)), [n.replace(", ", ",\n", 1) for n in names], fontsize=8)
    cpu_axis.invert_yaxis()
    cpu_axis.set_xscale("log")
    cpu_axis.set_xlabel("pod CPU ms per 1,000 metrics (batches) or per 1,000 requests (log)")
    rate_axis.set_xscale("log")
    rate_axis.set_xlabel("saturated throughput: metrics/s (batches) or requests/s (log)")
    cpu_axis.legend()
    figure.suptitle("Platform vs stock MLflow, as a training job's user, through TLS + basic-auth + PgBouncer")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(rows: Sequence[Row], meta: dict[str, Any], out: Path) -> str:
    """results.json, results.md and results.png in ``out``; returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, meta)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps(document(rows, meta), indent=2) + "\n")
    chart(rows, out / "results.png")
    return text

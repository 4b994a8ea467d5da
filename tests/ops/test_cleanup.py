"""cleanup_runs.py against the local platform: more runs than one page, protection of the top N
and of every run behind a registered model version or alias, dry run by default, --apply, and
``mlflow gc`` purging exactly the deleted runs (metadata and S3 artifacts)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from localplatform import LocalPlatform
from mlflowops import cleanup

from .conftest import unique

pytestmark = pytest.mark.timeout(600)

DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def scenario(client: Any) -> dict[str, Any]:
    """14 runs (3 pages of 5): 10 old finished ones with val_ndcg 0.10..0.55, one old without the
    metric, two recent ones, one still running. Two old low scorers back model versions (one of
    them through the champion alias)."""
    from mlflow.entities import Metric

    name = unique("ops-cleanup")
    exp = client.create_experiment(name)
    now = int(time.time() * 1000)
    ids: dict[str, str] = {}

    def make(label: str, *, age_days: float, ndcg: float | None, finished: bool = True) -> str:
        start = now - int(age_days * DAY_MS) - 3_600_000
        run = client.create_run(exp, start_time=start, run_name=label)
        run_id = run.info.run_id
        if ndcg is not None:
            client.log_batch(run_id, metrics=[Metric("val_ndcg", ndcg, start, 0)])
        if finished:
            client.set_terminated(run_id, end_time=now - int(age_days * DAY_MS))
        ids[label] = run_id
        return run_id

    for i in range(10):
        make(f"old-{i}", age_days=200 + i, ndcg=0.10 + 0.05 * i)  # old-9 best, old-0 worst
    make("old-nometric", age_days=300, ndcg=None)
    make("recent-a", age_days=1, ndcg=0.01)
    make("recent-b", age_days=5, ndcg=0.02)
    make("running", age_days=400, ndcg=0.03, finished=False)

    client.log_text(ids["old-1"], "weights", "model/weights.txt")  # so gc has artifacts to purge
    registered = unique("ops-cleanup-model")
    client.create_registered_model(registered)
    for label in ("old-0", "old-2"):
        run = client.get_run(ids[label])
        client.create_model_version(registered, source=f"{run.info.artifact_uri}/model", run_id=ids[label])
    client.set_registered_model_alias(registered, "champion", "2")  # old-2's version
    return {"experiment": name, "ids": ids, "model": registered}


def active(client: Any, run_id: str) -> bool:
    return client.get_run(run_id).info.lifecycle_stage == "active"


def test_cleanup_pages_protects_and_purges(
    client: Any, scenario: dict[str, Any], invoke: Any, ops_platform: LocalPlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids: dict[str, str] = scenario["ids"]
    args = ["--experiment", scenario["experiment"], "--max-age-days", "90", "--keep-top-n", "3"]
    args += ["--metric", "val_ndcg", "--page-size", "5", "--json"]
    # Old runs minus the top 3 (old-7..9) minus the registry-backed ones (old-0, old-2@champion).
    expected = {ids[f"old-{i}"] for i in (1, 3, 4, 5, 6)} | {ids["old-nometric"]}

    dry = invoke(cleanup.main, *args)
    assert dry.code == 0, dry
    report = dry.json
    assert report["dry_run"] is True and report["pages"] == 3 and report["runs_scanned"] == 14
    assert set(report["eligible"]) == expected
    assert report["deleted"] == []
    assert report["warnings"] == [
        "1 of 14 run(s) have not logged 'val_ndcg' (or logged NaN): they are never among the top 3"
    ]
    protected = report["protected"]
    assert protected[ids["old-9"]] == "top 3 by val_ndcg"
    assert protected[ids["old-0"]] == f"backs {scenario['model']}/1"
    assert protected[ids["old-2"]] == f"backs {scenario['model']}/2@champion"
    assert protected[ids["running"]].startswith("not finished")
    assert protected[ids["recent-a"]] == "newer than the cutoff"
    assert all(active(client, run_id) for run_id in ids.values()), "a dry run deletes nothing"

    s3 = ops_platform.s3_access()
    artifact = client.get_run(ids["old-1"]).info.artifact_uri.removeprefix(f"s3://{s3['bucket']}/")
    bucket = ops_platform.s3_client()
    assert bucket.list_objects_v2(Bucket=s3["bucket"], Prefix=artifact)["KeyCount"] == 1

    db = ops_platform.database_params("mlflow", role="app", via_pgbouncer=True)
    monkeypatch.setenv("PGPASSWORD", str(db["password"]))
    backend = f"postgresql+psycopg2://{db['user']}@{db['host']}:{db['port']}/mlflow?sslmode=disable"
    applied = invoke(cleanup.main, *args, "--apply", "--gc", "--backend-store-uri", backend)
    assert applied.code == 0, applied
    assert set(applied.json["deleted"]) == expected and applied.json["gc"] is True
    for label, run_id in ids.items():
        if run_id in expected:
            with pytest.raises(Exception, match=r"not found|does not exist|RESOURCE_DOES_NOT_EXIST"):
                client.get_run(run_id)  # purged by gc, not just soft-deleted
        else:
            assert active(client, run_id), label
    assert bucket.list_objects_v2(Bucket=s3["bucket"], Prefix=artifact)["KeyCount"] == 0

    again = invoke(cleanup.main, *args, "--apply")
    assert again.code == 0 and again.json["deleted"] == [] and again.json["runs_scanned"] == 8


def test_cleanup_refusals(ops_env: dict[str, str], invoke: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = invoke(cleanup.main, "--experiment", unique("no-such-experiment"), "--metric", "m")
    missing.assert_one_line_error("does not exist")
    assert missing.code == 1
    no_metric = invoke(cleanup.main, "--experiment", "x", "--keep-top-n", "3")
    no_metric.assert_one_line_error("--metric is required: the top 3 runs (--keep-top-n) are ranked by it")
    assert no_metric.code == 2
    monkeypatch.delenv("MLFLOW_BACKEND_STORE_URI", raising=False)
    no_db = invoke(cleanup.main, "--experiment", "x", "--metric", "m", "--apply", "--gc")
    no_db.assert_one_line_error("--gc needs --backend-store-uri")
    both = invoke(cleanup.main, "--experiment", "x", "--apply", "--dry-run")
    both.assert_one_line_error("not allowed with argument")


def test_a_misspelled_metric_is_refused_and_deletes_nothing(client: Any, scenario: dict[str, Any], invoke: Any) -> None:
    """Issue 21 item 1: ``--metric val_ndc`` (for val_ndcg) used to rank nothing, so the top N
    were deleted with the rest. Now: exit 1, one line with a did-you-mean, nothing deleted."""
    ids: dict[str, str] = scenario["ids"]
    args = ["--experiment", scenario["experiment"], "--keep-top-n", "3", "--metric", "val_ndc"]
    for extra in ((), ("--apply",)):
        result = invoke(cleanup.main, *args, *extra)
        result.assert_one_line_error(
            "no run of the experiment has the metric 'val_ndc' (14 run(s) scanned)", "did you mean 'val_ndcg'?"
        )
        assert result.code == 1
    assert all(active(client, run_id) for run_id in ids.values())

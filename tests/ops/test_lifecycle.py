"""validate.py and promote.py against the local platform: the gates, the alias moves, the audit
tags (timezone-aware), and the refusals (non-validated version, wrong challenger, missing model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from mlflowops import promotion, validation

from .conftest import Result, unique

pytestmark = pytest.mark.timeout(600)

GOOD = {"test_ndcg": 0.52, "inference_latency_p99_ms": 31.0}
REQUIRE = ["--require", "test_ndcg>=0.45", "--require", "inference_latency_p99_ms<=50"]


@pytest.fixture
def model(client: Any) -> tuple[str, str]:
    """A fresh registered model and an experiment for its runs."""
    name = unique("ops-model")
    client.create_registered_model(name)
    return name, client.create_experiment(unique("ops-lifecycle"))


def add_version(client: Any, model: tuple[str, str], metrics: dict[str, float]) -> str:
    from mlflow.entities import Metric

    run = client.create_run(model[1])
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(model[0], source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
    return str(mv.version)


def state(client: Any, name: str, version: str) -> tuple[dict[str, str], dict[str, str]]:
    aliases = {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}
    return aliases, dict(client.get_model_version(name, version).tags)


def assert_aware_recent(value: str) -> None:
    moment = datetime.fromisoformat(value)
    assert moment.utcoffset() == timedelta(0), f"{value} is not UTC with an offset"
    assert abs(time.time() - moment.timestamp()) < 120


def validate(invoke: Callable[..., Result], name: str, version: str, *extra: str) -> Result:
    return invoke(validation.main, "--model-uri", f"models:/{name}/{version}", *extra)


def promote(invoke: Callable[..., Result], name: str, version: str, alias: str, *extra: str) -> Result:
    return invoke(promotion.main, "--model-name", name, "--version", version, "--target-alias", alias, *extra)


def test_validation_pass_tags_the_version_and_sets_candidate(client: Any, model: tuple[str, str], invoke: Any) -> None:
    v = add_version(client, model, GOOD)
    result = validate(invoke, model[0], v, *REQUIRE, "--json")
    assert result.code == 0, result
    assert result.json["passed"] is True and result.json["reasons"] == []
    aliases, tags = state(client, model[0], v)
    assert aliases == {"candidate": v}
    assert tags["validation_status"] == "passed"
    assert tags["validation_requirements"] == "test_ndcg>=0.45; inference_latency_p99_ms<=50"
    assert_aware_recent(tags["validated_at"])
    assert_aware_recent(tags["promoted_to_candidate_at"])


def test_validation_failure_and_missing_metric_are_reasons(client: Any, model: tuple[str, str], invoke: Any) -> None:
    v = add_version(client, model, {"test_ndcg": 0.40})
    client.set_registered_model_alias(model[0], "candidate", v)  # from an earlier, passed validation
    result = validate(invoke, model[0], v, *REQUIRE)
    result.assert_one_line_error("failed validation", "test_ndcg=0.4 does not satisfy", "inference_latency_p99_ms")
    assert result.code == 1
    aliases, tags = state(client, model[0], v)
    assert tags["validation_status"] == "failed"
    assert "inference_latency_p99_ms: not logged by run" in tags["validation_reasons"]
    assert "test_ndcg=0.4 does not satisfy test_ndcg>=0.45" in tags["validation_reasons"]
    assert "candidate" not in aliases, "a version that failed must lose the candidate alias"


def test_validation_dry_run_reports_without_writing(client: Any, model: tuple[str, str], invoke: Any) -> None:
    v = add_version(client, model, GOOD)
    result = validate(invoke, model[0], v, *REQUIRE, "--dry-run")
    assert result.code == 0 and "would set alias candidate" in result.out
    assert state(client, model[0], v) == ({}, {})


def test_full_promotion_flow_archives_the_old_champion(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name = model[0]
    v1, v2 = add_version(client, model, GOOD), add_version(client, model, GOOD)
    for v in (v1, v2):
        assert validate(invoke, name, v, *REQUIRE).code == 0
    # No champion yet: v1 goes challenger -> champion.
    assert promote(invoke, name, v1, "challenger").code == 0
    result = promote(invoke, name, v1, "champion", "--json")
    assert result.code == 0, result
    assert [s["action"] for s in result.json["steps"]] == ["set_alias", "set_tag", "delete_alias"]
    aliases, _ = state(client, name, v1)
    assert aliases == {"champion": v1, "candidate": v2}
    # v2 replaces it.
    assert promote(invoke, name, v2, "challenger").code == 0
    aliases, tags2 = state(client, name, v2)
    assert aliases == {"champion": v1, "challenger": v2}, "the promoted version loses candidate"
    assert promote(invoke, name, v2, "champion").code == 0
    aliases, tags2 = state(client, name, v2)
    _, tags1 = state(client, name, v1)
    assert aliases == {"champion": v2}, "v1 lost champion, v2 lost challenger"
    assert_aware_recent(tags1["archived_at"])
    assert tags1["superseded_by_version"] == v2
    for key in ("promoted_to_challenger_at", "promoted_to_champion_at"):
        assert_aware_recent(tags2[key])
    assert "archived_at" not in tags2
    # Idempotent: promoting the champion again changes nothing.
    again = promote(invoke, name, v2, "champion")
    assert again.code == 0 and "no changes" in again.out


def test_rollback_clears_both_archive_tags_and_names_who_lost_an_alias(
    client: Any, model: tuple[str, str], invoke: Any
) -> None:
    """Issue 21 items 11 and 13: rolling back to an archived champion leaves no stale
    ``superseded_by_version``; a challenger move says which version lost the alias."""
    name = model[0]
    v1, v2, v3 = (add_version(client, model, GOOD) for _ in range(3))
    for v in (v1, v2, v3):
        assert validate(invoke, name, v, *REQUIRE).code == 0
    for v in (v1, v2):
        assert promote(invoke, name, v, "challenger").code == 0
        assert promote(invoke, name, v, "champion").code == 0
    _, tags1 = state(client, name, v1)
    assert tags1["superseded_by_version"] == v2 and "archived_at" in tags1
    # v3 becomes challenger, then v1 takes it over: the output names v3.
    assert promote(invoke, name, v3, "challenger").code == 0
    moved = promote(invoke, name, v1, "challenger")
    assert moved.code == 0, moved
    assert f"set alias challenger -> {name} v{v1} (moved from v{v3})" in moved.out
    assert f"{name} v{v3} lost the challenger alias" in moved.out
    # The rollback: v1 is champion again, with no tag saying it is archived or superseded.
    assert promote(invoke, name, v1, "champion").code == 0
    aliases, tags1 = state(client, name, v1)
    _, tags2 = state(client, name, v2)
    assert aliases == {"champion": v1}
    assert "archived_at" not in tags1 and "superseded_by_version" not in tags1, tags1
    assert tags2["superseded_by_version"] == v1


def test_refusals_change_nothing(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name = model[0]
    unvalidated = add_version(client, model, GOOD)
    validated = add_version(client, model, GOOD)
    other = add_version(client, model, GOOD)
    for v in (validated, other):
        client.set_model_version_tag(name, v, "validation_status", "passed")

    refused = promote(invoke, name, unvalidated, "challenger")
    refused.assert_one_line_error(f"version {unvalidated} has not passed validation", "validation_status=unset")
    assert refused.code == 1

    no_challenger = promote(invoke, name, validated, "champion")
    no_challenger.assert_one_line_error("there is no challenger")

    assert promote(invoke, name, validated, "challenger").code == 0
    wrong = promote(invoke, name, other, "champion", "--json")
    wrong.assert_one_line_error(f"version {other} is not the current challenger", f"challenger is version {validated}")
    assert wrong.json["ok"] is False and wrong.json["exit_code"] == 1
    assert state(client, name, other) == ({"challenger": validated}, {"validation_status": "passed"})

    client.set_model_version_tag(name, validated, "validation_status", "failed")
    revoked = promote(invoke, name, validated, "champion")
    revoked.assert_one_line_error("no longer has validation_status=passed")


def test_dry_run_promotion_changes_nothing(client: Any, model: tuple[str, str], invoke: Any) -> None:
    name = model[0]
    v = add_version(client, model, GOOD)
    client.set_model_version_tag(name, v, "validation_status", "passed")
    client.set_registered_model_alias(name, "challenger", v)
    result = promote(invoke, name, v, "champion", "--dry-run")
    assert result.code == 0
    assert "would set alias champion" in result.out and "would remove alias challenger" in result.out
    assert state(client, name, v) == ({"challenger": v}, {"validation_status": "passed"})


def test_missing_model_and_version(client: Any, model: tuple[str, str], invoke: Any) -> None:
    missing = promote(invoke, unique("no-such-model"), "1", "champion")
    missing.assert_one_line_error("does not exist")
    assert missing.code == 1
    no_version = promote(invoke, model[0], "99", "challenger")
    no_version.assert_one_line_error("has no version 99")
    not_there = validate(invoke, unique("no-such-model"), "1", *REQUIRE)
    not_there.assert_one_line_error("does not exist")
    bad_uri = invoke(validation.main, "--model-uri", "runs:/abc/model", *REQUIRE)
    bad_uri.assert_one_line_error("--model-uri must be models:/")
    assert bad_uri.code == 2

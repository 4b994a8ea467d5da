"""The workflow templates in ``examples/workflows/`` run end to end on the local platform: every
``run:`` step of ``ml-pipeline.yml`` then ``promote-champion.yml``, in job order, with the
GitHub expressions substituted (secrets from the platform's client settings, the private CA as
the ``MLFLOW_CA_BUNDLE`` secret) — twice: a first model that becomes champion, then a second
one whose degraded shadow metrics stop it at the shadow gate.

The placeholder steps (the team's ``kubectl`` deployment) are not run; in place of the shadow
deployment the test logs shadow metrics the way a serving replica would."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from localplatform import LocalPlatform
from mlflowops import shadow
from mlflowops.batching import BatchingMetricLogger

from .conftest import ROOT
from .workflow_runner import INSTALL_STEP, PLACEHOLDER, WorkflowRun, load, python_path_env, run_workflow

pytestmark = [pytest.mark.timeout(900), pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning")]

TEMPLATES = ROOT / "examples" / "workflows"
PIPELINE, PROMOTE = TEMPLATES / "ml-pipeline.yml", TEMPLATES / "promote-champion.yml"
EMULATOR_ONLY = ("MLFLOW_S3_ENDPOINT_URL", "AWS_CA_BUNDLE", "AWS_DEFAULT_REGION")
"""Client settings that exist only because S3 is a local emulator: the runner's environment."""
HOUR_MS = 3_600_000


@pytest.mark.parametrize("path", [PIPELINE, PROMOTE], ids=lambda p: p.name)
def test_templates_have_approvals_secrets_and_marked_placeholders(path: Path) -> None:
    document = load(path)
    assert document["permissions"] == {"contents": "read"}
    assert document["env"]["MLFLOW_TRACKING_PASSWORD"] == "${{ secrets.MLFLOW_TRACKING_PASSWORD }}"
    environments = {job.get("environment") for job in document["jobs"].values()} - {None}
    assert environments == ({"staging"} if path == PIPELINE else {"production"})
    for job in document["jobs"].values():
        for step in job["steps"]:
            script, name = str(step.get("run", "")), str(step.get("name", ""))
            assert ("kubectl" in script) == name.startswith(PLACEHOLDER), f"{name}: kubectl only in placeholders"
            assert "${{" not in script, f"{name}: expressions reach scripts through env (script injection)"
            if name == INSTALL_STEP:
                assert script == "pip install --require-hashes -r mlflow-platform/requirements.txt"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The checkouts the ``uses:`` steps would make: the team's repository (its ``ml/`` is the
    example training script) and this platform's repository at ``mlflow-platform``."""
    root = tmp_path / "workspace"
    root.mkdir()
    shutil.copytree(TEMPLATES / "ml", root / "ml")
    (root / "mlflow-platform").symlink_to(ROOT)
    return root


def log_shadow(client: Any, experiment: str, model: str, version: str, alias: str, values: dict[str, float]) -> None:
    """What a serving replica does (docs/ops.md): 26 hourly points, the first 25 hours ago."""
    run_id = shadow.start_shadow_run(client, experiment, model, version, alias)
    now = int(time.time() * 1000)
    with BatchingMetricLogger(run_id, client=client, background=False, register_atexit=False) as logger:
        for hour in range(26):
            logger.log_metrics(values, step=hour, timestamp_ms=now - (25 - hour) * HOUR_MS)
    client.set_terminated(run_id)


def failures(run: WorkflowRun) -> str:
    return "\n".join(f"{r.job}/{r.name} exit {r.code}\n{r.out}\n{r.err}" for r in run.results if r.code != 0)


def test_pipeline_then_promotion_end_to_end(
    ops_platform: LocalPlatform, ops_env: dict[str, str], client: Any, workspace: Path
) -> None:
    secrets = {
        "MLFLOW_TRACKING_URI": ops_env["MLFLOW_TRACKING_URI"],
        "MLFLOW_TRACKING_USERNAME": ops_env["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_TRACKING_PASSWORD": ops_env["MLFLOW_TRACKING_PASSWORD"],
        "AWS_ACCESS_KEY_ID": ops_env["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": ops_env["AWS_SECRET_ACCESS_KEY"],
        "MLFLOW_CA_BUNDLE": Path(ops_env["MLFLOW_TRACKING_SERVER_CERT_PATH"]).read_text(),
    }
    runner_env = {**python_path_env(), **{k: ops_env[k] for k in EMULATOR_ONLY}}
    variables = {"MLFLOW_PLATFORM_REPOSITORY": "example-org/mlflow-platform", "MLFLOW_PLATFORM_REF": "v1"}
    model = load(PIPELINE)["env"]["MODEL_NAME"]
    shadow_experiment = load(PROMOTE)["env"]["SHADOW_EXPERIMENT"]
    shadow_values: dict[str, dict[str, float]] = {}

    def deploy_shadow(env: dict[str, str]) -> None:
        log_shadow(client, shadow_experiment, model, env["MODEL_VERSION"], "challenger", shadow_values["challenger"])

    def pipeline(sha: str) -> WorkflowRun:
        github = {"sha": sha, "event": {"inputs": {}}}  # a push: no inputs, the default experiment
        return run_workflow(
            PIPELINE,
            workspace=workspace,
            runner_env=runner_env,
            secrets=secrets,
            variables=variables,
            github=github,
            hooks={"PLACEHOLDER: deploy the challenger in shadow mode": deploy_shadow},
        )

    def promote(version: str) -> WorkflowRun:
        github = {"sha": "f" * 40, "event": {"inputs": {"model_name": model, "version": version}}}
        return run_workflow(
            PROMOTE, workspace=workspace, runner_env=runner_env, secrets=secrets, variables=variables, github=github
        )

    # Round 1: the first version. No champion: coverage is not measured, nothing to compare.
    shadow_values["challenger"] = {"ndcg": 0.80, "latency_p99_ms": 20.0}
    first = pipeline("a" * 40)
    assert first.failed is None, failures(first)
    version = first.outputs["train"]["model_version"]
    assert first.skipped == ["promote-to-challenger/PLACEHOLDER: deploy the challenger in shadow mode"]
    tags = client.get_model_version(model, version).tags
    assert tags["validation_status"] == "passed" and "data_coverage>=0.95" in tags["validation_requirements"]
    assert {a: str(v) for a, v in client.get_registered_model(model).aliases.items()} == {"challenger": version}
    run = client.get_run(first.outputs["train"]["run_id"])
    assert run.data.tags["git_commit"] == "a" * 40
    assert client.get_experiment(run.info.experiment_id).name == "recommendation-team/product-ranking/ci"

    promoted = promote(version)
    assert promoted.failed is None, failures(promoted)
    assert [r.name for r in promoted.results] == [
        "Trust the tracking server's private CA (if any)",
        "Verify shadow mode metrics",
        "Promote to champion",
    ]
    assert "no champion yet: nothing compared" in promoted.results[1].out
    assert {a: str(v) for a, v in client.get_registered_model(model).aliases.items()} == {"champion": version}
    assert client.get_model_version(model, version).tags["shadow_verification"] == "passed"

    # Round 2: a second version; the champion serves too. Coverage is now measured against it,
    # and the challenger's ndcg is 5 % worse in shadow: the gate stops the promotion.
    log_shadow(client, shadow_experiment, model, version, "champion", {"ndcg": 0.80, "latency_p99_ms": 20.0})
    shadow_values["challenger"] = {"ndcg": 0.76, "latency_p99_ms": 19.0}
    second = pipeline("b" * 40)
    assert second.failed is None, failures(second)
    new = second.outputs["train"]["model_version"]
    assert client.get_model_version(model, new).tags["data_coverage"] == "1"
    refused = promote(new)
    assert refused.failed is not None and refused.failed.name == "Verify shadow mode metrics"
    assert "shadow verification failed: ndcg (higher is better)" in refused.failed.err
    assert [r.name for r in refused.results][-1] == "Verify shadow mode metrics", "promotion never ran"
    aliases = {a: str(v) for a, v in client.get_registered_model(model).aliases.items()}
    assert aliases == {"champion": version, "challenger": new}

"""The backup/restore drill end to end, as an operator runs it: ``scripts/backup_restore.py
drill`` on a platform holding runs, metrics, params, an artifact, two model versions, an alias
and a non-admin user with a grant. The script backs up, destroys the platform (state dir
removed), restores into a fresh one and verifies its inventory; this test then checks the
restored platform *serves* the same data through the API, with the old credentials."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from localplatform import LocalPlatform
from localplatform.backup import TRACKING_DATABASE, query
from tests.integration.conftest import Edge, client_environment

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[2]
MODEL = "drill-ranker"
READER = ("drill-reader", "drill-reader-password-1")


def _ok(response: Any) -> Any:
    assert response.status_code == 200, (
        f"{response.request.method} {response.url}: {response.status_code} {response.text}"
    )
    return response.json() if response.content else {}


def populate(platform: LocalPlatform, edge: Edge) -> dict[str, Any]:
    with client_environment(platform):
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        experiment_id = client.create_experiment(f"drill-{int(time.time())}")
        runs = []
        for index in range(2):
            run_id = client.create_run(experiment_id).info.run_id
            client.log_batch(
                run_id,
                metrics=[
                    Metric("ndcg", 0.4 + index / 10 + step / 1000, 1_700_000_000_000 + step, step) for step in range(50)
                ],
                params=[Param("depth", str(4 + index))],
            )
            client.log_text(run_id, f"model weights {index}\n", "model/weights.txt")
            client.set_terminated(run_id)
            runs.append(run_id)
        client.create_registered_model(MODEL)
        versions = [
            client.create_model_version(MODEL, f"{client.get_run(r).info.artifact_uri}/model", run_id=r).version
            for r in runs
        ]
        client.set_registered_model_alias(MODEL, "champion", versions[1])
    _ok(edge.as_admin("POST", "/api/2.0/mlflow/users/create", json={"username": READER[0], "password": READER[1]}))
    _ok(
        edge.as_admin(
            "POST",
            "/api/3.0/mlflow/users/permissions/grant",
            json={
                "username": READER[0],
                "resource_type": "experiment",
                "resource_id": experiment_id,
                "permission": "READ",
            },
        )
    )
    return {"experiment_id": experiment_id, "runs": runs, "versions": versions}


def cluster_identifier(platform: LocalPlatform) -> int:
    return int(query(platform, TRACKING_DATABASE, "SELECT system_identifier FROM pg_control_system()")[0][0])


def test_backup_destroy_restore_keeps_runs_models_users_and_artifacts(
    platform: LocalPlatform, edge: Edge, tmp_path: Path, artifacts: Path
) -> None:
    made = populate(platform, edge)
    old_cluster = cluster_identifier(platform)
    backup_dir = tmp_path / "backup"
    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "backup_restore.py"),
            "drill",
            "--state-dir",
            str(platform.state_dir),
            "--backup-dir",
            str(backup_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=str(ROOT),
    )
    drill_s = time.monotonic() - began
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert result.stderr == ""
    report = json.loads(result.stdout)
    report["drill_wall_s"] = round(drill_s, 1)
    (artifacts / "reliability-backup-restore.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\nbackup/restore drill:", json.dumps(report, indent=2))
    assert report["ok"] is True and "differences" not in report
    assert report["runs"] >= 2 and report["model_versions"] >= 2 and report["aliases"] >= 1
    assert report["metric_rows"] >= 100 and report["artifact_objects"] >= 2 and report["permissions"] >= 1
    assert sorted(p.name for p in backup_dir.iterdir()) == [
        "artifacts",
        "manifest.json",
        "mlflow.dump",
        "mlflow_auth.dump",
        "secrets.json",
    ]
    assert backup_dir.stat().st_mode & 0o077 == 0, "the backup holds secrets: owner only"

    # The platform was really rebuilt: a new PostgreSQL cluster (initdb gives each its own id).
    assert platform.status().state == "ready"
    assert cluster_identifier(platform) != old_cluster
    restored = Edge.of(platform)

    # ...and it serves the old data, to the old credentials.
    for run_id in made["runs"]:
        history = _ok(
            restored.as_admin(
                "GET", "/api/2.0/mlflow/metrics/get-history", params={"run_id": run_id, "metric_key": "ndcg"}
            )
        )
        assert len(history["metrics"]) == 50
    alias = _ok(
        restored.as_admin("GET", "/api/2.0/mlflow/registered-models/alias", params={"name": MODEL, "alias": "champion"})
    )
    assert alias["model_version"]["version"] == made["versions"][1]
    assert alias["model_version"]["run_id"] == made["runs"][1]
    got = restored.request(
        "GET", "/api/2.0/mlflow/experiments/get", auth=READER, params={"experiment_id": made["experiment_id"]}
    )
    assert got.status_code == 200, "the user, its password and its READ grant were restored"
    write = restored.request(
        "POST", "/api/2.0/mlflow/runs/create", auth=READER, json={"experiment_id": made["experiment_id"]}
    )
    assert write.status_code == 403, "...and nothing more than READ"
    with client_environment(platform):
        from mlflow.tracking import MlflowClient

        text = MlflowClient().download_artifacts(made["runs"][0], "model/weights.txt", str(tmp_path))
        assert Path(text).read_text() == "model weights 0\n", "artifact objects came back from the backup"

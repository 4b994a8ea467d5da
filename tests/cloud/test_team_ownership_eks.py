"""The EKS side of team ownership: the pod runs the platform's app, reads the declaration from a
ConfigMap mounted as a directory (so kubelet updates reach it), and a changed declaration does
not roll the pods (the app reloads it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from rendering.mlflow_server import PLATFORM_APP
from rendering.ownership import TEAMS_FILE_ENV, TEAMS_FILE_NAME, TeamOwnership, render_ownership_document
from tests.k8s_manifests import manifests
from tests.pulumi_harness import run_program, stack_file_config

TEAMS = {"fraud-team": {"modelPrefixes": ["transaction-scoring"], "members": {"dave": "EDIT"}}}


def rendered(teams: dict[str, Any] | None) -> list[dict[str, Any]]:
    config = stack_file_config("dev")
    if teams is not None:
        config["mlflow-platform:teams"] = json.dumps(teams)
    previous = asyncio.get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        mocks, _, _ = run_program("dev", config)
    finally:
        asyncio.set_event_loop(previous)
    return manifests(mocks)


def test_the_pod_reads_the_declared_teams_from_a_directory_mounted_config_map() -> None:
    with_teams, without = rendered(TEAMS), rendered(None)
    (config_map,) = [m for m in with_teams if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "mlflow-teams"]
    expected = render_ownership_document([TeamOwnership("fraud-team", ("transaction-scoring",), {}, {"dave": "EDIT"})])
    assert config_map["data"] == {TEAMS_FILE_NAME: expected}
    (deployment,) = [m for m in with_teams if m["kind"] == "Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    mlflow = next(c for c in spec["containers"] if c["name"] == "mlflow")
    assert mlflow["command"][mlflow["command"].index("--app-name") + 1] == PLATFORM_APP
    (mount,) = [m for m in mlflow["volumeMounts"] if m["name"] == "teams-config"]
    assert "subPath" not in mount and mount["readOnly"] is True
    env = {e["name"]: e.get("value") for e in mlflow["env"]}
    assert env[TEAMS_FILE_ENV] == f"{mount['mountPath']}/{TEAMS_FILE_NAME}"
    assert {"name": "teams-config", "configMap": {"name": "mlflow-teams"}} in spec["volumes"]
    # A changed declaration changes only the ConfigMap: the pod template (and so the pods) stay.
    (unchanged,) = [m for m in without if m["kind"] == "Deployment"]
    assert unchanged["spec"]["template"] == deployment["spec"]["template"]
    (empty,) = [m for m in without if m["kind"] == "ConfigMap" and m["metadata"]["name"] == "mlflow-teams"]
    assert json.loads(empty["data"][TEAMS_FILE_NAME]) == {"version": 1, "teams": {}}

"""Team ownership enforced by the platform's MLflow app (``--app-name mlflow-platform``), through
nginx's TLS endpoint with the standard MLflow client, one user at a time.

These tests run on ``test_security.py``'s platform (imported there), so they add no platform
start to the suite. The declaration is changed on the running platform with
``localplatform.teams.set_teams``, as a ConfigMap edit would be on EKS: the server re-reads it
without a restart (the MLflow process keeps its pid).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from localplatform import LocalPlatform
from localplatform.status import read_status
from localplatform.teams import set_teams
from rendering.ownership import TeamOwnership

from .conftest import Edge, client_environment

T = TypeVar("T")
PASSWORD = "ownership-pw-"  # + user name
DAVE, ERIN, CAROL, MALLORY = "own-dave", "own-erin", "own-carol", "own-mallory"
FRAUD_TEAM = TeamOwnership(
    "fraud-team",
    model_prefixes=("transaction-scoring",),
    projects={"transaction-scoring": ("shadow", "shadow-v2")},
    members={DAVE: "EDIT", ERIN: "READ"},
)
SEARCH_TEAM = TeamOwnership("search-team", model_prefixes=("ranking",), members={CAROL: "MANAGE"})
OWN_EXPERIMENT = "fraud-team/transaction-scoring/shadow"
OWN_MODEL = "transaction-scoring-lgbm"
RELOAD_S = 20.0
"""Each uvicorn worker stats the file at most every 2 s; a worker that served no request since
the change reloads on its next one."""


@contextmanager
def as_user(platform: LocalPlatform, username: str | None) -> Iterator[MlflowClient]:
    """The standard client with the platform's ``mlflow.env``, logged in as ``username``
    (None: the admin of ``mlflow.env``)."""
    with client_environment(platform) as env:
        if username is not None:
            os.environ["MLFLOW_TRACKING_USERNAME"] = username
            os.environ["MLFLOW_TRACKING_PASSWORD"] = PASSWORD + username
        yield MlflowClient(env["MLFLOW_TRACKING_URI"])


def refused(call: Callable[[], Any]) -> str:
    with pytest.raises(MlflowException) as caught:
        call()
    assert caught.value.error_code == "PERMISSION_DENIED", caught.value
    return caught.value.message


def eventually(call: Callable[[], T]) -> T:
    deadline = time.monotonic() + RELOAD_S
    while True:
        try:
            return call()
        except MlflowException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def mlflow_pid(platform: LocalPlatform) -> int | None:
    """The supervisor's record of the MLflow server process."""
    status = read_status(platform.layout.status_file)
    assert status is not None
    return status.components["mlflow"].pid


@pytest.fixture(scope="module")
def team_users(platform: LocalPlatform, edge: Edge) -> list[str]:
    users = [DAVE, ERIN, CAROL, MALLORY]
    for username in users:
        response = edge.as_admin(
            "POST", "/api/2.0/mlflow/users/create", json={"username": username, "password": PASSWORD + username}
        )
        assert response.status_code == 200, response.text
    return users


@pytest.fixture(scope="module")
def declared(platform: LocalPlatform, team_users: list[str]) -> int | None:
    """Before any declaration nobody but the admin creates anything; then the teams are declared
    on the running server. Returns the MLflow server's pid, which must not change."""
    pid = mlflow_pid(platform)
    with as_user(platform, DAVE) as client:
        message = refused(lambda: client.create_experiment(OWN_EXPERIMENT))
        assert "Allowed: none" in message
        set_teams(platform.layout, [FRAUD_TEAM, SEARCH_TEAM])
        eventually(lambda: client.create_experiment(OWN_EXPERIMENT))
    return pid


def test_a_member_creates_team_objects_and_a_teammate_reads_them(platform: LocalPlatform, declared: int) -> None:
    with as_user(platform, DAVE) as client:
        model = client.create_registered_model(OWN_MODEL)
        assert model.name == OWN_MODEL
    with as_user(platform, ERIN) as client:  # READ member: granted READ on the team's new objects
        experiment = client.get_experiment_by_name(OWN_EXPERIMENT)
        assert experiment is not None and experiment.name == OWN_EXPERIMENT
        assert client.get_registered_model(OWN_MODEL).name == OWN_MODEL
        # READ is not enough to create for the team
        assert "Allowed: none" in refused(lambda: client.create_registered_model("transaction-scoring-x"))
        assert "Allowed: none" in refused(lambda: client.create_experiment("fraud-team/transaction-scoring/shadow-v2"))
    with as_user(platform, CAROL) as client:  # another team's member was granted nothing
        refused(lambda: client.get_registered_model(OWN_MODEL))
    assert mlflow_pid(platform) == declared  # the declaration was picked up without a restart


def test_a_member_is_refused_another_teams_names_with_the_rule_and_allowed_names(
    platform: LocalPlatform, declared: int
) -> None:
    with as_user(platform, DAVE) as client:
        for call in (
            lambda: client.create_experiment("search-team/stolen"),
            lambda: client.create_experiment("fraud-team/transaction-scoring/undeclared-type"),
            lambda: client.create_experiment("Default-2"),
        ):
            message = refused(call)
            assert "experiments are named <team>/<project>/<type>" in message
            assert "fraud-team/transaction-scoring/shadow, fraud-team/transaction-scoring/shadow-v2" in message
        message = refused(lambda: client.create_registered_model("ranking-stolen"))
        assert "Team ownership: registered model name 'ranking-stolen' refused for user 'own-dave'" in message
        assert "Allowed: transaction-scoring or transaction-scoring-<name>." in message
        assert "transaction-scoringx" in refused(lambda: client.create_registered_model("transaction-scoringx"))


def test_a_teamless_user_is_refused_everything(platform: LocalPlatform, edge: Edge, declared: int) -> None:
    with as_user(platform, MALLORY) as client:
        for call in (
            lambda: client.create_experiment(OWN_EXPERIMENT + "-v3"),
            lambda: client.create_experiment("anything"),
            lambda: client.create_registered_model("transaction-scoring-mine"),
            lambda: client.create_registered_model("anything"),
        ):
            assert "Allowed: none (not an EDIT or MANAGE member of any team)" in refused(call)
        refused(lambda: client.get_experiment_by_name(OWN_EXPERIMENT))
    # A prompt shares the registered-model route and name space, so it follows the model prefixes.
    response = edge.request(
        "POST",
        "/api/2.0/mlflow/registered-models/create",
        auth=(MALLORY, PASSWORD + MALLORY),
        json={"name": "transaction-scoring-prompt", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
    )
    assert response.status_code == 403
    body = response.json()
    assert body["error_code"] == "PERMISSION_DENIED"
    assert body["message"].startswith("Team ownership: prompt name 'transaction-scoring-prompt' refused")


def test_renames_are_held_to_the_same_rules(platform: LocalPlatform, declared: int) -> None:
    with as_user(platform, DAVE) as client:
        experiment = client.get_experiment_by_name(OWN_EXPERIMENT)
        assert experiment is not None
        experiment_id = experiment.experiment_id
        assert "search-team/renamed" in refused(lambda: client.rename_experiment(experiment_id, "search-team/renamed"))
        client.rename_experiment(experiment_id, "fraud-team/transaction-scoring/shadow-v2")
        assert client.get_experiment(experiment_id).name == "fraud-team/transaction-scoring/shadow-v2"
        assert "ranking-renamed" in refused(lambda: client.rename_registered_model(OWN_MODEL, "ranking-renamed"))
        client.rename_registered_model(OWN_MODEL, "transaction-scoring-xgb")
    with as_user(platform, ERIN) as client:  # the teammate's grant follows the renamed model
        assert client.get_registered_model("transaction-scoring-xgb").name == "transaction-scoring-xgb"


def test_admins_are_exempt(platform: LocalPlatform, declared: int) -> None:
    with as_user(platform, None) as client:
        experiment_id = client.create_experiment("admin-sandbox")
        assert client.get_experiment(experiment_id).name == "admin-sandbox"
        assert client.create_registered_model("admin-model").name == "admin-model"

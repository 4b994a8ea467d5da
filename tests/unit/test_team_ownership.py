"""Team ownership: the one declaration (stack config) rendered for the server app, the app's rules
on that rendered document, and its reload. The server behaviour through TLS is
tests/integration/test_team_ownership.py."""

from __future__ import annotations

import os
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from mlflow_platform_server import declaration, ownership

from rendering.mlflow_server import PLATFORM_APP, PLATFORM_APP_SOURCE
from rendering.ownership import (
    OWNERSHIP_DOCUMENT_VERSION,
    TEAMS_FILE_ENV,
    TeamOwnership,
    render_ownership_document,
)
from rendering.server_side import render_server_side
from stackconfig import ConfigError, load_stack_config
from tests.unit.test_parity import SECRETS, SETTINGS, eks, local
from tests.unit.test_stack_config import stack_values

FRAUD = TeamOwnership(
    "fraud-team",
    model_prefixes=("transaction-scoring", "fraud"),
    projects={"transaction-scoring": ("model-comparison", "weekly-retrain")},
    members={"dave": "EDIT", "erin": "MANAGE", "carol": "READ"},
)
SEARCH = TeamOwnership("search-team", model_prefixes=("ranking",), members={"carol": "EDIT"})
"""No projects declared: any ``search-team/<name>``."""


def rules(*teams: TeamOwnership) -> ownership.Ownership:
    """The app's view of exactly what the renderer wrote."""
    return ownership.parse_document(render_ownership_document(teams))


def test_the_app_package_declares_the_entry_point_the_rendering_selects() -> None:
    project = tomllib.loads((PLATFORM_APP_SOURCE / "pyproject.toml").read_text())
    assert list(project["project"]["entry-points"]["mlflow.app"]) == [PLATFORM_APP]
    installed = {e.name: e.value for e in entry_points(group="mlflow.app")}
    assert installed.get(PLATFORM_APP) == "mlflow_platform_server.app:create_app"
    assert OWNERSHIP_DOCUMENT_VERSION == ownership.DOCUMENT_VERSION
    assert TEAMS_FILE_ENV == declaration.ENV_VAR


@pytest.mark.parametrize("target", [eks, local])
def test_both_targets_run_the_platform_app_with_the_rendered_teams_file(target: Any) -> None:
    params = target()
    side = render_server_side(params, SETTINGS, SECRETS)
    argv = list(side.launch.argv)
    assert argv[argv.index("--app-name") + 1] == PLATFORM_APP
    assert side.launch.env[TEAMS_FILE_ENV] == params.teams_file
    assert ownership.parse_document(side.teams_document) == ownership.Ownership()  # no teams: deny all


def test_experiments_only_under_a_team_where_the_user_writes_and_in_the_declared_shape() -> None:
    owned = rules(FRAUD, SEARCH)
    assert ownership.check_experiment(owned, "dave", "fraud-team/transaction-scoring/model-comparison") is None
    assert ownership.check_experiment(owned, "erin", "fraud-team/transaction-scoring/weekly-retrain") is None
    for name in (
        "fraud-team/transaction-scoring/other-type",  # undeclared type
        "fraud-team/unknown-project/model-comparison",
        "fraud-team/transaction-scoring",  # not the full shape
        "fraud-team/transaction-scoring/model-comparison/extra",
        "fraud-teamx/transaction-scoring/model-comparison",
        "search-team/anything",  # another team's
        "Default",
    ):
        refusal = ownership.check_experiment(owned, "dave", name)
        assert refusal is not None, name
        assert "fraud-team/transaction-scoring/model-comparison" in refusal.allowed
    # READ in fraud-team, EDIT in search-team (no projects: any name below the team)
    assert ownership.check_experiment(owned, "carol", "fraud-team/transaction-scoring/model-comparison") is not None
    assert ownership.check_experiment(owned, "carol", "search-team/anything") is None
    assert ownership.check_experiment(owned, "carol", "search-team/") is not None


def test_models_only_with_a_prefix_of_a_team_where_the_user_writes() -> None:
    owned = rules(FRAUD, SEARCH)
    for name in ("transaction-scoring", "transaction-scoring-lgbm", "fraud-xgb"):
        assert ownership.check_model(owned, "dave", name) is None, name
    for name in ("fraudulent-x", "transaction-scoringx", "ranking-xgb", "x-transaction-scoring"):
        refusal = ownership.check_model(owned, "dave", name)
        assert refusal is not None, name
        message = refusal.message("registered model", name, "dave")
        assert "transaction-scoring or transaction-scoring-<name>" in message and ownership.MODEL_RULE in message
    assert ownership.check_model(owned, "carol", "transaction-scoring-x") is not None  # READ only there


def test_a_teamless_user_and_an_empty_declaration_allow_nothing() -> None:
    for owned, user in ((rules(FRAUD), "mallory"), (rules(), "dave")):
        experiment = ownership.check_experiment(owned, user, "fraud-team/transaction-scoring/model-comparison")
        model = ownership.check_model(owned, user, "transaction-scoring-x")
        assert experiment is not None and model is not None
        assert experiment.allowed == () and model.allowed == ()
        assert "Allowed: none" in model.message("registered model", "transaction-scoring-x", user)


@pytest.mark.parametrize(
    ("team", "key"),
    [
        (TeamOwnership("a/b"), "teams.a/b"),
        (TeamOwnership("t", members={"u": "OWNER"}), "teams.t.members.u"),
        (TeamOwnership("t", projects={"p": ()}), "teams.t.projects.p"),
        (TeamOwnership("t", model_prefixes=("x/y",)), "teams.t.modelPrefixes"),
    ],
)
def test_the_renderer_refuses_a_bad_declaration_naming_the_key(team: TeamOwnership, key: str) -> None:
    with pytest.raises(ValueError, match=f"^{key}: got "):
        render_ownership_document([team])


def test_overlapping_prefixes_of_two_teams_are_refused() -> None:
    other = TeamOwnership("other-team", model_prefixes=("fraud-x",))
    with pytest.raises(ValueError, match="overlapping 'fraud' of team 'fraud-team'"):
        render_ownership_document([FRAUD, other])


def test_the_stack_config_declares_teams_once_with_errors_naming_the_key() -> None:
    values = stack_values("dev")
    values["teams"] = {
        "fraud-team": {
            "modelPrefixes": ["transaction-scoring"],
            "projects": {"transaction-scoring": ["model-comparison"]},
            "members": {"dave": "edit"},
        }
    }
    config = load_stack_config(values)
    assert config.teams == (
        TeamOwnership(
            "fraud-team", ("transaction-scoring",), {"transaction-scoring": ("model-comparison",)}, {"dave": "EDIT"}
        ),
    )
    values["teams"] = {"fraud-team": {"members": {"dave": "OWNER"}, "prefixes": ["x"]}}
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    messages = sorted(str(p) for p in caught.value.problems)
    assert messages == [
        "mlflow-platform:teams.fraud-team.members.dave: got 'OWNER'; expected one of READ, USE, EDIT, MANAGE",
        "mlflow-platform:teams.fraud-team.prefixes: got ['x']; "
        "expected no such key (known: modelPrefixes, projects, members)",
    ]
    assert load_stack_config(stack_values("prod")).teams == ()


def test_the_app_reloads_a_changed_declaration_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "teams.json"
    path.write_text(render_ownership_document([FRAUD]))
    loaded = declaration.Declaration(str(path), check_interval_s=0)
    assert ownership.check_model(loaded.current(), "dave", "fraud-x") is None
    path.write_text(render_ownership_document([SEARCH]))
    os.utime(path, ns=(1, 1))  # a different mtime even on a coarse clock
    assert ownership.check_model(loaded.current(), "dave", "fraud-x") is not None
    assert ownership.check_model(loaded.current(), "carol", "ranking-x") is None
    path.write_text('{"version": 1, "teams": {"t": {"members": {"u": "OWNER"}}}}')
    os.utime(path, ns=(2, 2))
    assert ownership.check_model(loaded.current(), "carol", "ranking-x") is None  # kept


def test_the_app_refuses_to_start_on_a_missing_or_bad_declaration(tmp_path: Path) -> None:
    with pytest.raises(ownership.DeclarationError, match="no such file"):
        declaration.Declaration(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 2}')
    with pytest.raises(ownership.DeclarationError, match="version: expected 1"):
        declaration.Declaration(str(bad))
    assert declaration.Declaration(None).current() == ownership.Ownership()


def test_bootstrap_takes_the_teams_from_the_stack_file_and_users_from_its_own_input(tmp_path: Path) -> None:
    from mlflowops import bootstrap, teams
    from mlflowops.cli import ConfigError as OpsConfigError

    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(
        "config:\n"
        "  mlflow-platform:teams:\n"
        "    fraud-team:\n"
        "      modelPrefixes: [transaction-scoring]\n"
        "      projects: {transaction-scoring: [model-comparison]}\n"
        "      members: {dave: EDIT}\n"
    )
    teams_file = tmp_path / "teams.yaml"
    teams_file.write_text(
        "version: 1\n"
        "users: {dave: {password_env: DAVE_PW}}\n"
        "teams: {fraud-team: {registered_models: [transaction-scoring-lgbm]}}\n"
    )
    declared = bootstrap.stack_teams(stack)
    (team,) = teams.load(teams_file, declared).teams
    assert (team.name, team.allowed_model_prefixes, dict(team.members), team.registered_models) == (
        "fraud-team",
        ("transaction-scoring",),
        {"dave": "EDIT"},
        ("transaction-scoring-lgbm",),
    )
    assert team.experiments()[0][0] == "fraud-team/transaction-scoring/model-comparison"
    # one declaration: the teams file may not restate what the stack config declares
    teams_file.write_text(
        "version: 1\nusers: {dave: {password_env: DAVE_PW}}\nteams: {fraud-team: {members: {dave: MANAGE}}}\n"
    )
    with pytest.raises(OpsConfigError, match=r"teams\.fraud-team \(the rest is declared in the stack config\)"):
        teams.load(teams_file, declared)
    stack.write_text("config:\n  mlflow-platform:teams: {fraud-team: {members: {dave: OWNER}}}\n")
    with pytest.raises(OpsConfigError, match=r"mlflow-platform:teams\.fraud-team\.members\.dave: got 'OWNER'"):
        bootstrap.stack_teams(stack)

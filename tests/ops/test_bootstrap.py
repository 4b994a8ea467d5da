"""bootstrap_teams.py against the local platform's basic-auth API: creation, idempotency, changed
permissions and passwords, the name-collision guard, YAML errors that name the key, and that
passwords are never printed."""

from __future__ import annotations

import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from localplatform import LocalPlatform
from mlflowops import authapi, bootstrap, cleanup

from .conftest import ROOT, Result, run_script, unique

pytestmark = pytest.mark.timeout(600)


class Teams:
    """A teams.yaml with names unique to this test (the platform is shared by the package)."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        tag = unique("t").removeprefix("t-")
        self.team, self.other_team = f"ranking-{tag}", f"fraud-{tag}"
        self.alice, self.bob, self.carol = f"alice-{tag}", f"bob-{tag}", f"carol-{tag}"
        self.model = f"ranking{tag}-xgb"
        self.path = tmp_path / "teams.yaml"
        self.alice_password = "alice-first-password"
        self.bob_password = "bob-file-password-1"
        monkeypatch.setenv("ALICE_PW", self.alice_password)
        (tmp_path / "bob.pw").write_text(self.bob_password + "\n")
        self.config: dict[str, Any] = {
            "version": 1,
            "passwords": {"generated_file": "generated/passwords.txt"},
            "users": {
                self.alice: {"password_env": "ALICE_PW"},
                self.bob: {"password_file": "bob.pw"},
                self.carol: {},
            },
            "teams": {
                self.team: {
                    "allowed_model_prefixes": [f"ranking{tag}"],
                    "projects": {"product-ranking": ["hyperparameter-search", "weekly-retrain"]},
                    "registered_models": [self.model],
                    "members": {self.alice: "MANAGE", self.bob: "EDIT", self.carol: "READ"},
                },
                self.other_team: {
                    "allowed_model_prefixes": [f"scoring{tag}"],
                    "projects": {"transaction-scoring": ["model-comparison"]},
                    "members": {self.carol: "EDIT"},
                },
            },
        }
        self.write()

    def write(self) -> Path:
        self.path.write_text(yaml.safe_dump(self.config))
        return self.path

    @property
    def experiment(self) -> str:
        return f"{self.team}/product-ranking/hyperparameter-search"


@pytest.fixture
def teams(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ops_env: dict[str, str]) -> Teams:
    return Teams(tmp_path, monkeypatch)


def as_user(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], username: str, password: str) -> Any:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    return MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])


def no_secret_printed(result: Result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.out + result.err


def test_bootstrap_creates_then_changes_nothing(
    teams: Teams, client: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch, ops_env: dict[str, str]
) -> None:
    dry = invoke(bootstrap.main, str(teams.path), "--dry-run")
    assert dry.code == 0, dry
    assert f"would create user {teams.carol} (password: generated)" in dry.out
    assert client.get_experiment_by_name(teams.experiment) is None, "a dry run creates nothing"
    assert not (teams.path.parent / "generated").exists()

    first = invoke(bootstrap.main, str(teams.path), "--json")
    assert first.code == 0, first
    changes = first.json["changes"]
    assert f"create user {teams.alice} (password: env:ALICE_PW)" in changes
    assert f"grant READ on experiment {teams.experiment} to {teams.carol}" in changes
    assert f"grant MANAGE on registered model {teams.model} to {teams.alice}" in changes

    generated = teams.path.parent / "generated" / "passwords.txt"
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    carol_password = dict(line.split(":", 1) for line in generated.read_text().splitlines()[1:])[teams.carol]
    assert len(carol_password) >= 12
    no_secret_printed(dry, teams.alice_password, teams.bob_password, carol_password)
    no_secret_printed(first, teams.alice_password, teams.bob_password, carol_password)

    experiment = client.get_experiment_by_name(teams.experiment)
    assert {k: v for k, v in experiment.tags.items() if k in ("team", "project", "type")} == {
        "team": teams.team,
        "project": "product-ranking",
        "type": "hyperparameter-search",
    }
    assert client.get_registered_model(teams.model).tags == {"team": teams.team}

    second = invoke(bootstrap.main, str(teams.path), "--json")
    assert second.code == 0 and second.json["changes"] == [] and second.json["changed"] is False
    assert "no changes" in invoke(bootstrap.main, str(teams.path)).out

    # The permissions are real: bob (EDIT) may log a run, carol (READ) may read but not write.
    # (Clients read the credentials from the environment at each request.)
    bob = as_user(monkeypatch, ops_env, teams.bob, teams.bob_password)
    days = 86_400_000
    old_run = bob.create_run(experiment.experiment_id, start_time=int(time.time() * 1000) - 400 * days)
    bob.set_terminated(old_run.info.run_id, end_time=int(time.time() * 1000) - 399 * days)
    carol = as_user(monkeypatch, ops_env, teams.carol, carol_password)
    assert carol.get_experiment(experiment.experiment_id).name == teams.experiment
    with pytest.raises(Exception, match=r"403|PERMISSION_DENIED|Permission denied"):
        carol.create_run(experiment.experiment_id)
    # ... and no admin rights: neither bootstrap nor cleanup --apply runs as her.
    refused = invoke(bootstrap.main, str(teams.path))
    refused.assert_one_line_error(f"'{teams.carol}' is not an admin")
    cleanup_args = ["--experiment", teams.experiment, "--keep-top-n", "0", "--apply"]
    refused_cleanup = invoke(cleanup.main, *cleanup_args)
    refused_cleanup.assert_one_line_error("is not an admin")
    assert client.get_run(old_run.info.run_id).info.lifecycle_stage == "active"


def test_bootstrap_updates_permissions_and_passwords(
    teams: Teams, client: Any, invoke: Any, monkeypatch: pytest.MonkeyPatch, ops_env: dict[str, str]
) -> None:
    assert invoke(bootstrap.main, str(teams.path)).code == 0
    teams.config["teams"][teams.team]["members"][teams.carol] = "EDIT"
    teams.write()
    monkeypatch.setenv("ALICE_PW", "alice-rotated-password")
    result = invoke(bootstrap.main, str(teams.path), "--json")
    assert result.code == 0, result
    changes = result.json["changes"]
    assert f"reset the password of {teams.alice} from env:ALICE_PW" in changes
    assert f"change {teams.carol}'s permission on experiment {teams.experiment}: READ -> EDIT" in changes
    assert len(changes) == 1 + 3  # the password, carol's two experiments and one model of the team
    no_secret_printed(result, "alice-rotated-password")
    assert invoke(bootstrap.main, str(teams.path), "--json").json["changes"] == []
    alice = as_user(monkeypatch, ops_env, teams.alice, "alice-rotated-password")
    assert alice.get_experiment_by_name(teams.experiment) is not None


def test_name_collision_guard_refuses_and_changes_nothing(teams: Teams, client: Any, invoke: Any) -> None:
    team = teams.config["teams"][teams.team]
    team["registered_models"] = [teams.model, f"scoring{teams.model.removeprefix('ranking')}"]
    teams.write()
    refused = invoke(bootstrap.main, str(teams.path))
    refused.assert_one_line_error(f"teams.{teams.team}.registered_models", "outside the team's allowed prefixes")
    assert refused.code == 1
    # A bare startswith would accept this one: the prefix must be followed by '-' or end the name.
    team["registered_models"] = [team["allowed_model_prefixes"][0] + "extra-model"]
    teams.write()
    invoke(bootstrap.main, str(teams.path)).assert_one_line_error("outside the team's allowed prefixes")
    assert client.get_experiment_by_name(teams.experiment) is None

    # A model that already belongs to another team is refused too.
    team["registered_models"] = [teams.model]
    teams.write()
    client.create_registered_model(teams.model, tags={"team": "someone-else"})
    foreign = invoke(bootstrap.main, str(teams.path))
    foreign.assert_one_line_error(f"registered model '{teams.model}' belongs to team 'someone-else'")
    assert foreign.code == 1
    assert client.get_experiment_by_name(teams.experiment) is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c, t: c["teams"][t.team].update(owner="x"), "teams.{team}: unknown key(s) owner"),
        (lambda c, t: c["teams"][t.team]["members"].update(zed="READ"), "teams.{team}.members.zed: user 'zed' is not"),
        (lambda c, t: c["teams"][t.team]["members"].update({t.bob: "WRITE"}), "teams.{team}.members.{bob}: permission"),
        (lambda c, t: c["users"][t.bob].update(password_env="X"), "users.{bob}: give password_env or password_file"),
        (lambda c, t: c.pop("passwords"), "users.{carol}: no password_env/password_file"),
        (lambda c, t: c["teams"][t.other_team].update(allowed_model_prefixes=["ranking" + t.model[7:-4]]), "overlaps"),
        (lambda c, t: c["teams"].update({"a/b": {}}), "teams.a/b: 'a/b' is not a valid name"),
        (lambda c, t: c["teams"][t.team]["projects"].update(p="x"), "teams.{team}.projects.p: expected a list"),
    ],
)
def test_yaml_errors_name_the_key(teams: Teams, invoke: Any, edit: Any, message: str) -> None:
    edit(teams.config, teams)
    teams.write()
    result = invoke(bootstrap.main, str(teams.path))
    result.assert_one_line_error(message.format(team=teams.team, bob=teams.bob, carol=teams.carol))
    assert result.code == 2


def test_password_problems_are_reported_without_the_password(
    teams: Teams, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALICE_PW", "short")
    result = invoke(bootstrap.main, str(teams.path))
    result.assert_one_line_error(f"users.{teams.alice}: the password from env:ALICE_PW is shorter than 12")
    monkeypatch.delenv("ALICE_PW")
    invoke(bootstrap.main, str(teams.path)).assert_one_line_error(
        f"users.{teams.alice}.password_env: $ALICE_PW is not set"
    )
    (teams.path.parent / "bob.pw").unlink()
    monkeypatch.setenv("ALICE_PW", teams.alice_password)
    invoke(bootstrap.main, str(teams.path)).assert_one_line_error(f"users.{teams.bob}.password_file: cannot read")
    invoke(bootstrap.main, str(teams.path.parent / "missing.yaml")).assert_one_line_error("no such file")


def test_the_example_file_runs_with_its_own_documented_dry_run(client: Any, ops_env: dict[str, str]) -> None:
    """Issue 21 item 12: the command in examples/teams.yaml's header failed on the unset
    password sources. A dry run reads no password: it plans, warns about missing sources, and
    writes nothing (no generated-passwords file next to the example)."""
    example = ROOT / "examples" / "teams.yaml"
    header = [line for line in example.read_text().splitlines() if "--dry-run" in line and "python " in line]
    assert len(header) == 1, header
    argv = header[0].lstrip("# ").split()
    assert argv[:2] == ["python", "scripts/bootstrap_teams.py"]
    generated = example.parent / "team-passwords.txt"
    assert not generated.exists()
    result = run_script("bootstrap_teams", *argv[2:], "--json", env=ops_env, cwd=ROOT)
    assert result.code == 0, result
    report = result.json
    assert report["dry_run"] is True and report["changed"] is False
    assert "create user alice (password: env:ALICE_MLFLOW_PASSWORD)" in report["changes"]
    assert report["warnings"] == [
        "users.alice.password_env: $ALICE_MLFLOW_PASSWORD is not set: the real run needs it",
        f"users.bob.password_file: cannot read {example.parent / 'secrets' / 'bob.password'}: the real run needs it",
    ]
    assert not generated.exists(), "a dry run writes no passwords"
    assert client.get_experiment_by_name("recommendation-team/product-ranking/hyperparameter-search") is None


def test_a_dry_run_reads_no_password_of_an_existing_user(
    teams: Teams, invoke: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke(bootstrap.main, str(teams.path)).code == 0
    monkeypatch.delenv("ALICE_PW")
    dry = invoke(bootstrap.main, str(teams.path), "--dry-run", "--json")
    assert dry.code == 0, dry
    assert dry.json["changes"] == []
    assert dry.json["warnings"] == [f"users.{teams.alice}.password_env: $ALICE_PW is not set: the real run needs it"]
    assert f"not checked in a dry run: whether {teams.alice}'s password from env:ALICE_PW still works" in " ".join(
        dry.json["notes"]
    )
    invoke(bootstrap.main, str(teams.path)).assert_one_line_error(
        f"users.{teams.alice}.password_env: $ALICE_PW is not set"
    )


@pytest.mark.filterwarnings("ignore")  # importing the auth app warns about its dependencies
def test_auth_routes_match_the_installed_mlflow() -> None:
    from mlflow.server.auth import routes

    for name in (
        "CREATE_USER",
        "GET_USER",
        "GET_CURRENT_USER",
        "UPDATE_USER_PASSWORD",
        "LIST_USER_PERMISSIONS",
        "GRANT_USER_PERMISSION",
        "LIST_ROLE_PERMISSIONS",
        "UPDATE_ROLE_PERMISSION",
    ):
        assert getattr(authapi, name) == getattr(routes, name), name


def test_bootstrap_with_the_team_declared_to_the_server(
    teams: Teams, invoke: Any, ops_platform: LocalPlatform, ops_env: dict[str, str]
) -> None:
    """The stack declares the same team to the server app, which grants each member on every
    object created under the team's names, the bootstrap's own creates included: the
    bootstrap's planned grants then already exist (MLflow: 400 RESOURCE_ALREADY_EXISTS). Before
    ``AuthApi.ensure_grant`` the first run failed after creating the experiment."""
    from localplatform.teams import set_teams
    from rendering.ownership import TeamOwnership

    spec = teams.config["teams"][teams.team]
    declared = TeamOwnership(
        teams.team,
        model_prefixes=tuple(spec["allowed_model_prefixes"]),
        projects={p: tuple(kinds) for p, kinds in spec["projects"].items()},
        members={teams.bob: "EDIT"},  # the server's declaration says EDIT, the bootstrap's says MANAGE below
    )
    spec["members"] = {teams.bob: "MANAGE"}
    teams.write()
    set_teams(ops_platform.layout, [declared])
    try:
        time.sleep(3)  # each worker re-reads the file when it changes, checking every 2 s
        first = invoke(bootstrap.main, str(teams.path), "--json")
        assert first.code == 0, first
        assert invoke(bootstrap.main, str(teams.path), "--json").json["changes"] == []
    finally:
        set_teams(ops_platform.layout, [])
        time.sleep(3)  # the other tests of the package expect no teams
    api = authapi.AuthApi(ops_env["MLFLOW_TRACKING_URI"])
    user = api.get_user(teams.bob)
    assert user is not None
    grants = {(g.resource_type, g.permission) for g in api.direct_grants(teams.bob, int(user["id"]))}
    assert ("experiment", "MANAGE") in grants and ("registered_model", "MANAGE") in grants

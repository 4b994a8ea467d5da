"""``teams.yaml``: the declarative input of ``scripts/bootstrap_teams.py``, validated up front.

Every error names the key it is about (``teams.search.members.dave: ...``) and nothing is sent
to the server until the whole file is valid — including the guide's name-collision guard: a
team may only own registered models named ``<allowed prefix>`` or ``<allowed prefix>-…``
(the guide's bare ``startswith`` would let prefix ``fraud`` claim ``fraudulent-x``), and no two
teams may hold overlapping prefixes. See ``examples/teams.yaml``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rendering.ownership import TeamOwnership

from .authapi import PERMISSIONS
from .cli import ConfigError, Refused

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
MIN_PASSWORD = 12  # MLflow 3.17 rejects shorter passwords


@dataclass(frozen=True)
class UserSpec:
    username: str
    password_env: str | None = None
    password_file: Path | None = None

    @property
    def source(self) -> str:
        if self.password_env:
            return f"env:{self.password_env}"
        if self.password_file:
            return f"file:{self.password_file}"
        return "generated"


@dataclass(frozen=True)
class TeamSpec:
    name: str
    allowed_model_prefixes: tuple[str, ...]
    projects: Mapping[str, tuple[str, ...]]
    registered_models: tuple[str, ...]
    members: Mapping[str, str]

    def experiments(self) -> list[tuple[str, dict[str, str]]]:
        """``team/project/type`` names with their tags."""
        return [
            (f"{self.name}/{project}/{kind}", {"team": self.name, "project": project, "type": kind})
            for project, kinds in self.projects.items()
            for kind in kinds
        ]


@dataclass(frozen=True)
class TeamsConfig:
    path: Path
    users: Mapping[str, UserSpec]
    teams: tuple[TeamSpec, ...]
    generated_passwords_file: Path | None = None
    warnings: list[str] = field(default_factory=list)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of non-empty strings")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: duplicate entries")
    return tuple(value)


def _only(keys: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(keys) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _name(value: str, where: str, pattern: re.Pattern[str] = NAME) -> str:
    if not pattern.match(value):
        raise ConfigError(f"{where}: {value!r} is not a valid name (letters, digits, . _ -; no slashes)")
    return value


def model_allowed(model: str, prefixes: tuple[str, ...]) -> bool:
    return any(model == p or model.startswith(p + "-") for p in prefixes)


def _user(username: str, raw: Any, base: Path) -> UserSpec:
    where = f"users.{username}"
    _name(username, where, USERNAME)
    spec = _mapping(raw, where)
    _only(spec, {"password_env", "password_file"}, where)
    if "password_env" in spec and "password_file" in spec:
        raise ConfigError(f"{where}: give password_env or password_file, not both")
    env, file = spec.get("password_env"), spec.get("password_file")
    if env is not None and (not isinstance(env, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", env)):
        raise ConfigError(f"{where}.password_env: expected an environment variable name")
    if file is not None and (not isinstance(file, str) or not file):
        raise ConfigError(f"{where}.password_file: expected a path")
    return UserSpec(username, env, (base / file) if file else None)


def _team(name: str, raw: Any, users: Mapping[str, UserSpec]) -> TeamSpec:
    where = f"teams.{name}"
    _name(name, where)
    spec = _mapping(raw, where)
    _only(spec, {"allowed_model_prefixes", "projects", "registered_models", "members"}, where)
    prefixes = tuple(
        p.rstrip("-") for p in _strings(spec.get("allowed_model_prefixes"), f"{where}.allowed_model_prefixes")
    )
    for prefix in prefixes:
        _name(prefix, f"{where}.allowed_model_prefixes")
    projects: dict[str, tuple[str, ...]] = {}
    for project, kinds in _mapping(spec.get("projects"), f"{where}.projects").items():
        _name(project, f"{where}.projects")
        projects[project] = tuple(
            _name(k, f"{where}.projects.{project}") for k in _strings(kinds, f"{where}.projects.{project}")
        )
        if not projects[project]:
            raise ConfigError(f"{where}.projects.{project}: list at least one experiment type")
    models = _strings(spec.get("registered_models"), f"{where}.registered_models")
    members: dict[str, str] = {}
    for username, permission in _mapping(spec.get("members"), f"{where}.members").items():
        if username not in users:
            raise ConfigError(f"{where}.members.{username}: user {username!r} is not defined under users")
        if not isinstance(permission, str) or permission.upper() not in PERMISSIONS:
            raise ConfigError(f"{where}.members.{username}: permission must be one of {', '.join(PERMISSIONS)}")
        members[username] = permission.upper()
    for model in models:
        _name(model, f"{where}.registered_models")
        if not model_allowed(model, prefixes):
            raise Refused(
                f"{where}.registered_models: {model!r} is outside the team's allowed prefixes "
                f"{list(prefixes)} (name-collision guard)"
            )
    return TeamSpec(name, prefixes, projects, models, members)


def _check_overlaps(teams: tuple[TeamSpec, ...]) -> None:
    owners: list[tuple[str, str]] = [(p, t.name) for t in teams for p in t.allowed_model_prefixes]
    for i, (a, team_a) in enumerate(owners):
        for b, team_b in owners[i + 1 :]:
            if team_a != team_b and (model_allowed(a, (b,)) or model_allowed(b, (a,))):
                raise ConfigError(
                    f"teams.{team_b}.allowed_model_prefixes: {b!r} overlaps {a!r} of team {team_a!r}; "
                    "both teams could register the same model names"
                )


def load(path: Path, stack_teams: Sequence[TeamOwnership] | None = None) -> TeamsConfig:
    """``stack_teams``: the ownership declaration from the stack config (``--stack-file``); the
    teams file then keeps only users, password sources and the models to pre-create per team."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, expected a teams.yaml file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text (UTF-8) file, expected a teams.yaml") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(error).split())}") from None
    try:
        return _parse(path, raw, stack_teams)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error.reason}") from None


def _from_stack(
    declared: Sequence[TeamOwnership], teams_raw: Mapping[str, Any], users: Mapping[str, UserSpec]
) -> tuple[TeamSpec, ...]:
    """The stack config's teams, with only ``registered_models`` taken from the teams file."""
    unknown = sorted(set(teams_raw) - {t.name for t in declared})
    if unknown:
        raise ConfigError(f"teams.{unknown[0]}: not a team of the stack config's mlflow-platform:teams")
    teams = []
    for team in declared:
        spec = _mapping(teams_raw.get(team.name), f"teams.{team.name}")
        _only(spec, {"registered_models"}, f"teams.{team.name} (the rest is declared in the stack config)")
        raw = {
            "allowed_model_prefixes": list(team.model_prefixes),
            "projects": {project: list(kinds) for project, kinds in team.projects.items()},
            "registered_models": spec.get("registered_models"),
            "members": dict(team.members),
        }
        teams.append(_team(team.name, raw, users))
    return tuple(teams)


def _parse(path: Path, raw: object, stack_teams: Sequence[TeamOwnership] | None = None) -> TeamsConfig:
    top = _mapping(raw, "(top level)")
    _only(top, {"version", "passwords", "users", "teams"}, "(top level)")
    if top.get("version", 1) != 1:
        raise ConfigError("version: only version 1 is supported")
    base = path.resolve().parent
    passwords = _mapping(top.get("passwords"), "passwords")
    _only(passwords, {"generated_file"}, "passwords")
    generated = passwords.get("generated_file")
    if generated is not None and (not isinstance(generated, str) or not generated):
        raise ConfigError("passwords.generated_file: expected a path")
    users = {name: _user(name, spec, base) for name, spec in _mapping(top.get("users"), "users").items()}
    teams_raw = _mapping(top.get("teams"), "teams")
    if stack_teams is not None:
        teams = _from_stack(stack_teams, teams_raw, users)
        if not teams:
            raise ConfigError("teams: the stack config declares no teams (mlflow-platform:teams)")
    elif not teams_raw:
        raise ConfigError("teams: define at least one team")
    else:
        teams = tuple(_team(name, spec, users) for name, spec in teams_raw.items())
    _check_overlaps(teams)
    if generated is None and any(u.source == "generated" for u in users.values()):
        missing = next(u.username for u in users.values() if u.source == "generated")
        raise ConfigError(
            f"users.{missing}: no password_env/password_file, so set passwords.generated_file "
            "(where generated passwords are written, mode 0600)"
        )
    return TeamsConfig(path, users, teams, (base / generated) if generated else None)


def password_source_problem(user: UserSpec) -> str | None:
    """What would stop :func:`read_password`, judged without reading the secret (``--dry-run``
    resolves nothing secret): the variable is unset, or the file is missing or unreadable."""
    where = f"users.{user.username}"
    if user.password_env and user.password_env not in os.environ:
        return f"{where}.password_env: ${user.password_env} is not set"
    if user.password_file and not os.access(user.password_file, os.R_OK):
        return f"{where}.password_file: cannot read {user.password_file}"
    return None


def read_password(user: UserSpec) -> str:
    """The configured password (env or file); never part of any message."""
    where = f"users.{user.username}"
    if user.password_env:
        value = os.environ.get(user.password_env)
        if value is None:
            raise ConfigError(f"{where}.password_env: ${user.password_env} is not set")
    elif user.password_file:
        try:
            value = user.password_file.read_text().rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"{where}.password_file: cannot read {user.password_file}: {error.strerror}") from None
    else:
        raise ConfigError(f"{where}: no password source")
    if len(value) < MIN_PASSWORD:
        raise ConfigError(f"{where}: the password from {user.source} is shorter than {MIN_PASSWORD} characters")
    return value

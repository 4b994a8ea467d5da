"""``mlflow-platform:teams``: the ownership part of the teams declaration, parsed once.

Shape (each key optional except the team name)::

    mlflow-platform:teams:
      fraud-team:
        modelPrefixes: [transaction-scoring, account-risk]
        projects: {transaction-scoring: [model-comparison]}
        members: {dave: EDIT, carol: READ}

The server app enforces it (docs/team-ownership.md) and ``scripts/bootstrap_teams.py`` applies
it; users and their password sources stay in the bootstrap input. Validation rules are
``rendering.ownership.ownership_problems``, the same function the renderer refuses with.
"""

from __future__ import annotations

from collections.abc import Mapping

from rendering.ownership import TeamOwnership, ownership_problems

from .errors import ConfigProblem

KEY = "mlflow-platform:teams"
_TEAM_KEYS = ("modelPrefixes", "projects", "members")


def _string_list(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value) and len(set(value)) == len(value):
        return tuple(value)
    return None


def parse_teams(raw: object, problems: list[ConfigProblem]) -> tuple[TeamOwnership, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        problems.append(ConfigProblem(KEY, raw, "an object of team name -> {modelPrefixes, projects, members}"))
        return ()
    teams: list[TeamOwnership] = []
    for name, spec in raw.items():
        where = f"{KEY}.{name}"
        if not isinstance(spec, Mapping):
            problems.append(ConfigProblem(where, spec, f"an object with {', '.join(_TEAM_KEYS)}"))
            continue
        for key in spec:
            if key not in _TEAM_KEYS:
                problems.append(
                    ConfigProblem(f"{where}.{key}", spec[key], f"no such key (known: {', '.join(_TEAM_KEYS)})")
                )
        prefixes = _string_list(spec.get("modelPrefixes", []))
        if prefixes is None:
            problems.append(ConfigProblem(f"{where}.modelPrefixes", spec.get("modelPrefixes"), "a list of prefixes"))
        projects_raw = spec.get("projects", {})
        projects: dict[str, tuple[str, ...]] = {}
        if not isinstance(projects_raw, Mapping):
            problems.append(ConfigProblem(f"{where}.projects", projects_raw, "an object of project -> list of types"))
        else:
            for project, kinds in projects_raw.items():
                parsed = _string_list(kinds)
                if parsed is None:
                    problems.append(ConfigProblem(f"{where}.projects.{project}", kinds, "a list of experiment types"))
                else:
                    projects[str(project)] = parsed
        members_raw = spec.get("members", {})
        members: dict[str, str] = {}
        if not isinstance(members_raw, Mapping):
            problems.append(ConfigProblem(f"{where}.members", members_raw, "an object of username -> permission"))
        else:
            members = {str(user): str(permission).upper() for user, permission in members_raw.items()}
        teams.append(TeamOwnership(str(name), prefixes or (), projects, members))
    for key, value, expected in ownership_problems(teams):
        problems.append(ConfigProblem(f"{KEY}.{key}", value, expected))
    return tuple(teams)

"""Team ownership: the one declaration (stack config ``teams``) rendered for the server app.

The declaration says which team owns which names and who is in it: teams, members with their
permission, model-name prefixes, projects and experiment types. It is declared once, in the
stack config, and rendered here into the JSON document the platform's MLflow app
(``plugins/mlflow-platform-server``) reads and re-reads on change: a ConfigMap key mounted in
the EKS pod, a file on the local target. ``scripts/bootstrap_teams.py`` reads the same
declaration; users and their password sources stay in its own input. The rules themselves
are in ``mlflow_platform_server.ownership``; docs/team-ownership.md explains them.

The document is not secret (names and permissions only), so it is a ConfigMap, not a Secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

OWNERSHIP_DOCUMENT_VERSION = 1
"""Must equal ``mlflow_platform_server.ownership.DOCUMENT_VERSION`` (a unit test checks it)."""
TEAMS_FILE_ENV = "MLFLOW_PLATFORM_TEAMS_FILE"
"""The server app reads the document's path from this variable (``declaration.ENV_VAR``)."""
TEAMS_FILE_NAME = "teams.json"
MEMBER_PERMISSIONS = ("READ", "USE", "EDIT", "MANAGE")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""Team, project, type and prefix names: no slash, since ``/`` separates an experiment's parts."""
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")


@dataclass(frozen=True)
class TeamOwnership:
    """One team's part of the declaration (stack config ``teams.<name>``)."""

    name: str
    model_prefixes: tuple[str, ...] = ()
    """Models (and prompts) named ``<prefix>`` or ``<prefix>-…`` belong to the team."""
    projects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """project -> experiment types; experiments are ``<team>/<project>/<type>``. Empty: any
    ``<team>/<name>``."""
    members: Mapping[str, str] = field(default_factory=dict)
    """username -> READ | USE | EDIT | MANAGE. EDIT and MANAGE may create the team's objects;
    every member is granted this permission on each object the team creates."""


def prefixes_overlap(a: str, b: str) -> bool:
    """Whether two prefixes could own the same model name (``fraud`` and ``fraud-x`` do)."""
    return a == b or a.startswith(b + "-") or b.startswith(a + "-")


def ownership_problems(teams: Sequence[TeamOwnership]) -> list[tuple[str, object, str]]:
    """(key under ``teams``, value, what is expected) for each problem; empty when valid."""
    problems: list[tuple[str, object, str]] = []
    names = "a name of letters, digits, '.', '_' or '-' (no '/')"
    for team in teams:
        where = team.name
        if not NAME_PATTERN.match(team.name):
            problems.append((where, team.name, f"a team name: {names}"))
        for prefix in team.model_prefixes:
            if not NAME_PATTERN.match(prefix):
                problems.append((f"{where}.modelPrefixes", prefix, f"a prefix: {names}"))
        for project, kinds in team.projects.items():
            if not NAME_PATTERN.match(project):
                problems.append((f"{where}.projects", project, f"a project: {names}"))
            if not kinds or not all(NAME_PATTERN.match(k) for k in kinds):
                problems.append((f"{where}.projects.{project}", list(kinds), f"a non-empty list of types: {names}"))
        for user, permission in team.members.items():
            if not USERNAME_PATTERN.match(user):
                problems.append((f"{where}.members", user, "an MLflow username"))
            if permission not in MEMBER_PERMISSIONS:
                problems.append((f"{where}.members.{user}", permission, f"one of {', '.join(MEMBER_PERMISSIONS)}"))
    owners = [(p, t.name) for t in teams for p in t.model_prefixes]
    for i, (a, team_a) in enumerate(owners):
        for b, team_b in owners[i + 1 :]:
            if team_a != team_b and prefixes_overlap(a, b):
                problems.append((f"{team_b}.modelPrefixes", b, f"a prefix not overlapping {a!r} of team {team_a!r}"))
    return problems


def render_ownership_document(teams: Sequence[TeamOwnership]) -> str:
    """The JSON document the server app reads. Refuses an invalid declaration (ValueError)."""
    problems = ownership_problems(teams)
    if problems:
        key, value, expected = problems[0]
        raise ValueError(f"teams.{key}: got {value!r}; expected {expected}")
    document = {
        "version": OWNERSHIP_DOCUMENT_VERSION,
        "teams": {
            team.name: {
                "modelPrefixes": list(team.model_prefixes),
                "projects": {project: list(kinds) for project, kinds in team.projects.items()},
                "members": dict(team.members),
            }
            for team in teams
        },
    }
    return json.dumps(document, indent=2, sort_keys=True) + "\n"

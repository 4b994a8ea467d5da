"""Team ownership of experiment and registered-model names: the pure rules, no MLflow import.

The declaration is the JSON document ``rendering.ownership.render_ownership_document`` writes
from the stack config's ``teams`` key (a ConfigMap on EKS, a file locally). It is parsed here
again, not imported from the project, because this package is installed on its own into the
server image; the document's version field keeps the two sides honest.

Rules (deny by default for every non-admin; admins never reach them, MLflow's
``_before_request`` returns before any validator for an admin):

* an experiment may be created or renamed to ``<team>/<project>/<type>`` (a declared project
  and type) or, for a team that declares no projects, to ``<team>/<anything>``, only by a
  member with EDIT or MANAGE in that team;
* a registered model (and a prompt: same route, same name space) may be created or renamed to
  ``<prefix>`` or ``<prefix>-…`` for a prefix of such a team. A bare ``startswith`` would let
  prefix ``fraud`` claim ``fraudulent-x`` (the guide's bug), hence the ``-`` boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DOCUMENT_VERSION = 1
WRITERS = frozenset({"EDIT", "MANAGE"})
"""Member permissions that may create objects for their team."""
PERMISSIONS = frozenset({"READ", "USE", "EDIT", "MANAGE"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class DeclarationError(ValueError):
    """The ownership document is malformed; the message names the key."""


@dataclass(frozen=True)
class Team:
    name: str
    model_prefixes: tuple[str, ...] = ()
    projects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    members: Mapping[str, str] = field(default_factory=dict)
    """username -> READ | USE | EDIT | MANAGE: also what each teammate is granted on new objects."""

    def experiment_allowed(self, name: str) -> bool:
        head, sep, rest = name.partition("/")
        if head != self.name or not sep or not rest:
            return False
        if not self.projects:
            return True
        parts = rest.split("/")
        return len(parts) == 2 and parts[1] in self.projects.get(parts[0], ())

    def model_allowed(self, name: str) -> bool:
        return any(name == p or name.startswith(p + "-") for p in self.model_prefixes)

    def experiment_patterns(self) -> list[str]:
        if not self.projects:
            return [f"{self.name}/<name>"]
        return [f"{self.name}/{project}/{kind}" for project, kinds in self.projects.items() for kind in kinds]

    def model_patterns(self) -> list[str]:
        return [f"{p} or {p}-<name>" for p in self.model_prefixes]


@dataclass(frozen=True)
class Ownership:
    teams: tuple[Team, ...] = ()

    def writable_teams(self, username: str) -> list[Team]:
        return [t for t in self.teams if t.members.get(username) in WRITERS]

    def experiment_team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.experiment_allowed(name)), None)

    def model_team(self, name: str) -> Team | None:
        return next((t for t in self.teams if t.model_allowed(name)), None)


@dataclass(frozen=True)
class Refusal:
    """Why a create/rename is refused: the rule and the names this user may use instead."""

    rule: str
    allowed: tuple[str, ...]

    def message(self, kind: str, name: str, username: str) -> str:
        allowed = ", ".join(self.allowed) if self.allowed else "none (not an EDIT or MANAGE member of any team)"
        return (
            f"Team ownership: {kind} name {name!r} refused for user {username!r}. "
            f"Rule: {self.rule}. Allowed: {allowed}."
        )


EXPERIMENT_RULE = "experiments are named <team>/<project>/<type> for a team where you are EDIT or MANAGE"
MODEL_RULE = (
    "registered models and prompts are named <prefix> or <prefix>-<name> "
    "with a prefix of a team where you are EDIT or MANAGE"
)


def check_experiment(ownership: Ownership, username: str, name: str) -> Refusal | None:
    teams = ownership.writable_teams(username)
    if any(t.experiment_allowed(name) for t in teams):
        return None
    return Refusal(EXPERIMENT_RULE, tuple(p for t in teams for p in t.experiment_patterns()))


def check_model(ownership: Ownership, username: str, name: str) -> Refusal | None:
    teams = ownership.writable_teams(username)
    if any(t.model_allowed(name) for t in teams):
        return None
    return Refusal(MODEL_RULE, tuple(p for t in teams for p in t.model_patterns()))


def _names(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and _NAME.match(v) for v in value):
        raise DeclarationError(f"{where}: expected a list of names")
    return tuple(value)


def _mapping(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise DeclarationError(f"{where}: expected an object")
    return {str(k): v for k, v in value.items()}


def parse_document(text: str) -> Ownership:
    """Parse the rendered document; raise DeclarationError naming the bad key."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise DeclarationError(f"not JSON: {error}") from None
    top = _mapping(raw, "(top level)")
    if top.get("version") != DOCUMENT_VERSION:
        raise DeclarationError(f"version: expected {DOCUMENT_VERSION}, got {top.get('version')!r}")
    teams = []
    for name, spec_raw in _mapping(top.get("teams", {}), "teams").items():
        where = f"teams.{name}"
        if not _NAME.match(name):
            raise DeclarationError(f"{where}: not a valid team name")
        spec = _mapping(spec_raw, where)
        projects = {
            project: _names(kinds, f"{where}.projects.{project}")
            for project, kinds in _mapping(spec.get("projects", {}), f"{where}.projects").items()
        }
        members = {}
        for user, permission in _mapping(spec.get("members", {}), f"{where}.members").items():
            if permission not in PERMISSIONS:
                raise DeclarationError(f"{where}.members.{user}: expected one of {sorted(PERMISSIONS)}")
            members[user] = str(permission)
        prefixes = _names(spec.get("modelPrefixes", []), f"{where}.modelPrefixes")
        teams.append(Team(name, prefixes, projects, members))
    return Ownership(tuple(teams))

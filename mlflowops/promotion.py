"""Alias promotion with gates: candidate -> challenger -> champion (``scripts/promote.py``).

Gates (anything else is refused with the reason, exit 1):
* every target: the version exists and is READY;
* ``candidate``: the version has not failed validation and is not already challenger/champion;
* ``challenger``: tag ``validation_status=passed``; not the current champion;
* ``champion``: the version *is* the current challenger and still ``validation_status=passed``;
  no champion yet is fine.

Unlike the guide, the champion alias is moved with one ``set_registered_model_alias`` call
(MLflow reassigns an alias atomically) instead of delete-then-set, so serving code never sees
a model without a champion. The previous champion is tagged ``archived_at`` (and
``superseded_by_version``) after the move; the promoted version loses ``challenger``; a version
promoted to challenger loses ``candidate``. A rollback (an archived version promoted to champion
again) loses both archive tags, so no tag claims it is still superseded. Moving an alias away
from another version names that version in the report, so an operator sees who lost it. Every
promotion writes ``promoted_to_<alias>_at`` with a timezone-aware timestamp.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from . import cli, registry
from .timeutil import utc_now_iso

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TARGETS = ("candidate", "challenger", "champion")
VALIDATION_TAG = "validation_status"
ARCHIVED_TAG = "archived_at"
SUPERSEDED_TAG = "superseded_by_version"


@dataclass(frozen=True)
class Step:
    action: str
    """``set_alias``, ``delete_alias``, ``set_tag`` or ``delete_tag``."""
    version: str
    key: str
    value: str | None = None
    replaces: str | None = None
    """For ``set_alias``: the version that held the alias until now and loses it."""

    def describe(self, model: str) -> str:
        match self.action:
            case "set_alias":
                moved = f" (moved from v{self.replaces})" if self.replaces else ""
                return f"set alias {self.key} -> {model} v{self.version}{moved}"
            case "delete_alias":
                return f"remove alias {self.key} (was v{self.version})"
            case "set_tag":
                return f"tag v{self.version} {self.key}={self.value}"
            case _:
                return f"remove tag {self.key} from v{self.version}"


@dataclass(frozen=True)
class VersionState:
    """What the gates look at, read once (so the plan is a pure function of it)."""

    version: str
    status: str
    tags: Mapping[str, str]
    aliases: Mapping[str, str]
    """alias -> version for the whole registered model."""


def plan(state: VersionState, target: str, now: str) -> list[Step]:
    """The steps that promote ``state.version`` to ``target``; raises :class:`cli.Refused`."""
    v, tags, aliases = state.version, state.tags, state.aliases
    if target not in TARGETS:
        raise cli.ConfigError(f"--target-alias must be one of {', '.join(TARGETS)}")
    if state.status != "READY":
        raise cli.Refused(f"version {v} is not READY (status {state.status})")
    if aliases.get(target) == v:
        return []
    validation = tags.get(VALIDATION_TAG)
    audit = Step("set_tag", v, f"promoted_to_{target}_at", now)
    if target == "candidate":
        if validation == "failed":
            raise cli.Refused(f"version {v} failed validation: {tags.get('validation_reasons', 'no reason recorded')}")
        for later in ("champion", "challenger"):
            if aliases.get(later) == v:
                raise cli.Refused(f"version {v} is already the {later}; it cannot go back to candidate")
        return [_set_alias(aliases, v, "candidate"), audit]
    if target == "challenger":
        if validation != "passed":
            status = f"{VALIDATION_TAG}={validation or 'unset'}"
            raise cli.Refused(f"version {v} has not passed validation ({status}); run validate.py first")
        if aliases.get("champion") == v:
            raise cli.Refused(f"version {v} is the current champion; it cannot become challenger")
        steps = [_set_alias(aliases, v, "challenger"), audit]
        if aliases.get("candidate") == v:
            steps.append(Step("delete_alias", v, "candidate"))
        return steps
    challenger = aliases.get("challenger")
    if challenger is None:
        raise cli.Refused("there is no challenger; promote a validated version to challenger first")
    if challenger != v:
        raise cli.Refused(f"version {v} is not the current challenger (the challenger is version {challenger})")
    if validation != "passed":
        raise cli.Refused(f"challenger version {v} no longer has {VALIDATION_TAG}=passed ({validation or 'unset'})")
    steps = [_set_alias(aliases, v, "champion"), audit]
    previous = aliases.get("champion")
    if previous is not None:
        steps += [Step("set_tag", previous, ARCHIVED_TAG, now), Step("set_tag", previous, SUPERSEDED_TAG, v)]
    steps.append(Step("delete_alias", v, "challenger"))
    # A rollback to an archived version: both archive tags go, or the champion would still
    # claim to be superseded by the version it replaced.
    steps += [Step("delete_tag", v, tag) for tag in (ARCHIVED_TAG, SUPERSEDED_TAG) if tag in tags]
    return steps


def _set_alias(aliases: Mapping[str, str], version: str, alias: str) -> Step:
    """Moving an alias is one call that silently takes it from its holder: record the holder."""
    return Step("set_alias", version, alias, replaces=aliases.get(alias))


def apply(client: MlflowClient, model: str, steps: Sequence[Step]) -> None:
    """Run the steps in order. A failure part-way reports which steps already happened, since
    aliases and tags are separate, non-transactional calls."""
    done: list[str] = []
    for step in steps:
        try:
            match step.action:
                case "set_alias":
                    client.set_registered_model_alias(model, step.key, step.version)
                case "delete_alias":
                    client.delete_registered_model_alias(model, step.key)
                case "set_tag":
                    client.set_model_version_tag(model, step.version, step.key, step.value)
                case _:
                    client.delete_model_version_tag(model, step.version, step.key)
        except Exception as error:
            reason, _ = cli.describe(error)
            finished = "; ".join(done) or "nothing"
            raise cli.OpsError(f"failed at '{step.describe(model)}' ({reason}); already done: {finished}") from None
        done.append(step.describe(model))


def build_parser() -> cli.Parser:
    parser = cli.new_parser(
        "promote.py",
        "Promote a model version to candidate, challenger or champion, enforcing the lifecycle gates.",
        epilog="exit status: 0 promoted (or already there), 1 refused by a gate, 2 usage, 3 server error",
    )
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--version", required=True, help="model version number")
    parser.add_argument("--target-alias", required=True, choices=TARGETS, help="alias to promote to")
    cli.add_dry_run(parser)
    cli.add_tracking_uri(parser)
    return parser


def run(args: argparse.Namespace) -> cli.Report:
    name, version = args.model_name, str(args.version)
    if not name.strip():
        raise cli.ConfigError("--model-name must not be empty: give the registered model's name")
    if not version.isdigit() or int(version) < 1:
        raise cli.ConfigError(f"--version must be a version number (1, 2, ...), got {version!r}")
    client = registry.make_client(cli.tracking_uri(args.tracking_uri))
    aliases = registry.get_aliases(client, name)
    mv = registry.get_version(client, name, version)
    state = VersionState(version, str(mv.status), dict(mv.tags), aliases)
    data = {
        "model": name,
        "version": version,
        "target_alias": args.target_alias,
        "dry_run": args.dry_run,
        "aliases_before": aliases,
    }
    try:
        steps = plan(state, args.target_alias, utc_now_iso())
    except cli.OpsError as refusal:
        refusal.data = {**data, "refused": refusal.reason}
        raise
    data.update(steps=[asdict(s) for s in steps], changed=bool(steps) and not args.dry_run)
    if not steps:
        return cli.Report([f"{name} v{version} is already {args.target_alias}: no changes"], data)
    prefix = "would " if args.dry_run else ""
    lines = [f"{prefix}{s.describe(name)}" for s in steps]
    if not args.dry_run:
        apply(client, name, steps)
        lines += [f"{name} v{s.replaces} lost the {s.key} alias" for s in steps if s.replaces]
        lines.append(f"{name} v{version} promoted to {args.target_alias}")
    return cli.Report(lines, data)


def main(argv: Sequence[str] | None = None) -> int:
    return cli.run_tool(build_parser(), run, argv)

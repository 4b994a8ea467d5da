"""What the mocked program registers, as stable JSON: every resource's URN and its inputs.

Why: a refactor that moves a child to another parent or renames it changes its URN, and Pulumi
then replaces the live object (a database, a bucket, a key) unless the new resource carries an
alias. Inputs that change by a byte are a behaviour change. ``tests/cloud/test_urn_stability.py``
compares the URN sets with the committed ``tests/cloud/urns/``; this module also writes and
compares full snapshots between two trees (``--write DIR`` on each, then ``--compare A B``)::

    .venv/bin/python -m tests.program_snapshot --write /tmp/before
    .venv/bin/python -m tests.program_snapshot --compare /tmp/before /tmp/after
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tests.pulumi_harness import ROOT, captured_program

VARIANTS: tuple[tuple[str, str], ...] = (("dev", "create"), ("prod", "create"), ("dev", "reuse"), ("prod", "reuse"))
"""Each stack file in both cluster modes: together they register every resource type we render."""

URN_DIR = ROOT / "tests" / "cloud" / "urns"


def variant_name(stack: str, mode: str) -> str:
    return f"{stack}-{mode}"


def snapshot(stack: str, mode: str) -> dict[str, Any]:
    """URN → inputs (secrets unwrapped, as the provider would receive them), plus the aliases
    each URN declares."""
    mocks, outputs, _ = captured_program(stack, mode)
    duplicated = sorted({urn for urn in mocks.engine_urns if mocks.engine_urns.count(urn) > 1})
    assert not duplicated, f"the engine refuses two resources with one URN: {duplicated}"
    return {
        "urns": sorted(mocks.engine_urns),
        "aliases": {urn: sorted(set(aliases)) for urn, aliases in mocks.aliases.items()},
        "resources": {r.urn: r.inputs for r in mocks.resources},
        "dependencies": mocks.engine_dependencies,
        "ignore_changes": mocks.engine_ignore_changes,
        "outputs": outputs,
    }


def urn_changes(committed: set[str], current: set[str], aliases: dict[str, list[str]]) -> list[str]:
    """What a ``pulumi up`` from the committed URNs to the current ones would do that a review
    must see: a URN that is gone and that no current resource names as an alias is a delete (and
    for a replaced child, a create of something new); a new URN is a create."""
    aliased = {alias for names in aliases.values() for alias in names}
    changes = [f"deleted (no alias names it): {urn}" for urn in sorted(committed - current - aliased)]
    changes += [f"created: {urn}" for urn in sorted(current - committed)]
    return changes


def urn_file(stack: str, mode: str) -> Path:
    return URN_DIR / f"{variant_name(stack, mode)}.txt"


def write_urns() -> None:
    URN_DIR.mkdir(parents=True, exist_ok=True)
    for stack, mode in VARIANTS:
        urn_file(stack, mode).write_text("\n".join(snapshot(stack, mode)["urns"]) + "\n")


def write(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stack, mode in VARIANTS:
        text = json.dumps(snapshot(stack, mode), indent=1, sort_keys=True, default=str)
        (directory / f"{variant_name(stack, mode)}.json").write_text(text + "\n")


def compare(before: Path, after: Path) -> list[str]:
    """Human-readable differences between two snapshot directories (empty: identical)."""
    problems: list[str] = []
    for stack, mode in VARIANTS:
        name = variant_name(stack, mode)
        old = json.loads((before / f"{name}.json").read_text())
        new = json.loads((after / f"{name}.json").read_text())
        for urn in sorted(set(old["urns"]) - set(new["urns"])):
            covered = [u for u, aliases in new["aliases"].items() if urn in aliases]
            problems.append(f"{name}: URN gone{' (aliased by ' + covered[0] + ')' if covered else ''}: {urn}")
        for urn in sorted(set(new["urns"]) - set(old["urns"])):
            problems.append(f"{name}: URN new: {urn}")
        for urn in sorted(set(old["resources"]) & set(new["resources"])):
            if old["resources"][urn] != new["resources"][urn]:
                problems.append(f"{name}: inputs differ: {urn}")
        for part in ("dependencies", "ignore_changes"):
            for urn in sorted(set(old[part]) | set(new[part])):
                if urn in new["urns"] and old[part].get(urn) != new[part].get(urn):
                    problems.append(f"{name}: {part.replace('_', ' ')} differ: {urn}")
        if old["outputs"] != new["outputs"]:
            keys = set(old["outputs"]) | set(new["outputs"])
            changed = sorted(k for k in keys if old["outputs"].get(k) != new["outputs"].get(k))
            problems.append(f"{name}: stack outputs differ: {', '.join(changed)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", type=Path, metavar="DIR", help="write one JSON snapshot per stack and mode")
    group.add_argument("--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"))
    group.add_argument("--update-urns", action="store_true", help=f"rewrite {URN_DIR.relative_to(ROOT)}/")
    args = parser.parse_args(argv)
    if args.write:
        write(args.write)
        return 0
    if args.update_urns:
        write_urns()
        return 0
    problems = compare(*args.compare)
    identical = "identical: URNs, inputs, dependencies, ignore_changes and outputs of every stack and mode"
    print("\n".join(problems) if problems else identical)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

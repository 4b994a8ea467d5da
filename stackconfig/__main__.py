"""``python -m stackconfig check Pulumi.<stack>.yaml``: validate a stack file without Pulumi.

The same validation ``pulumi preview`` runs (``load_stack_config``, given the keys of the other
namespaces too, as ``infra/config_source.py`` does), usable in CI or before a commit. Each
problem is one line on stderr — ``error: mlflow-platform:<key>: got <value>; expected <what>``
— all problems at once, exit status 2; a valid file prints one ``ok`` line.

From any directory: ``scripts/check_stack_config.py`` (it puts the project on ``sys.path``),
and a bare stack name (``dev``) means the project's ``Pulumi.dev.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import yaml

from .errors import ConfigError
from .load import load_stack_config, load_stack_file
from .namespaces import read_other_namespaces

EXIT_OK = 0
EXIT_INVALID = 2


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _Usage(f"{self.prog}: {message} (see --help)")


def check(path: Path) -> list[str]:
    """The problems of one stack file, one line each (empty: valid)."""
    if not path.is_file():
        return [f"{path}: no such file" if not path.exists() else f"{path}: not a file"]
    try:
        values = load_stack_file(path)
        other_namespaces = read_other_namespaces(path)
    except yaml.YAMLError as error:
        return [f"{path}: invalid YAML: {' '.join(str(error).split())}"]
    except (AttributeError, TypeError):
        return [f"{path}: expected a Pulumi stack file (a mapping with a 'config:' mapping)"]
    except (OSError, UnicodeDecodeError) as error:
        return [f"{path}: cannot read: {error}"]
    try:
        load_stack_config(values, other_namespaces=other_namespaces)
    except ConfigError as error:
        return [" ".join(str(problem).split()) for problem in error.problems]
    return []


PROJECT_ROOT = Path(__file__).resolve().parent.parent


def stack_path(given: Path) -> Path:
    """A bare stack name (no directory, no ``.yaml``) names the project's ``Pulumi.<name>.yaml``,
    so the check works from any directory; anything else is a path."""
    if given.parent == Path() and given.suffix not in (".yaml", ".yml") and not given.exists():
        return PROJECT_ROOT / f"Pulumi.{given.name}.yaml"
    return given


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m stackconfig", description="Validate a Pulumi.<stack>.yaml without Pulumi.")
    parser.add_argument("command", choices=["check"])
    parser.add_argument(
        "stack_file", type=Path, help="a Pulumi.<stack>.yaml, or a stack name (dev) for the project's Pulumi.dev.yaml"
    )
    try:
        args = parser.parse_args(argv)
    except _Usage as usage:
        print(f"error: {usage}", file=sys.stderr)
        return EXIT_INVALID
    path = stack_path(args.stack_file)
    problems = check(path)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return EXIT_INVALID
    print(f"ok: {path} is a valid mlflow-platform stack configuration")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

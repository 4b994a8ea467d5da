"""``python -m stackconfig check Pulumi.<stack>.yaml``: validate a stack file without Pulumi.

The same validation ``pulumi preview`` runs (``load_stack_config``), usable in CI or before a
commit. Each problem is one line on stderr — ``error: mlflow-platform:<key>: got <value>;
expected <what>`` — all problems at once, exit status 2; a valid file prints one ``ok`` line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

import yaml

from .errors import ConfigError
from .load import load_stack_config, load_stack_file

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
    except yaml.YAMLError as error:
        return [f"{path}: invalid YAML: {' '.join(str(error).split())}"]
    except (AttributeError, TypeError):
        return [f"{path}: expected a Pulumi stack file (a mapping with a 'config:' mapping)"]
    except (OSError, UnicodeDecodeError) as error:
        return [f"{path}: cannot read: {error}"]
    try:
        load_stack_config(values)
    except ConfigError as error:
        return [" ".join(str(problem).split()) for problem in error.problems]
    return []


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m stackconfig", description="Validate a Pulumi.<stack>.yaml without Pulumi.")
    parser.add_argument("command", choices=["check"])
    parser.add_argument("stack_file", type=Path, help="a Pulumi.<stack>.yaml")
    try:
        args = parser.parse_args(argv)
    except _Usage as usage:
        print(f"error: {usage}", file=sys.stderr)
        return EXIT_INVALID
    problems = check(args.stack_file)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        return EXIT_INVALID
    print(f"ok: {args.stack_file} is a valid mlflow-platform stack configuration")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

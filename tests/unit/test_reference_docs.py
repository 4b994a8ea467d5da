"""Stack keys and outputs declared once (issue 19): every key on its schema field, the loader
reading exactly the declared keys, the reference pages generated from the declarations and not
stale, no hand-written copy of a key's range or default left in the README or docs/, and each
enum and tuning default defined once."""

from __future__ import annotations

import ast
import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rendering.postgres import (
    DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT_MS,
    DEFAULT_LOG_MIN_DURATION_STATEMENT_MS,
    PostgresTuning,
)
from stackconfig import ConfigError, load_stack_config
from stackconfig.declare import METADATA, declaration, declared
from stackconfig.load import SECTIONS, load_stack_file
from stackconfig.schema import DatabaseConfig, StackConfig

ROOT = Path(__file__).resolve().parents[2]
GENERATED = {ROOT / "docs" / "configuration.md", ROOT / "docs" / "outputs.md"}


def _sections(cls: type[Any] = StackConfig, prefix: str = "") -> list[tuple[str, type[Any]]]:
    """Every section dataclass reachable from StackConfig, with its dotted key path."""
    found = []
    for item in declared(cls):
        if isinstance(item.hint, type) and dataclasses.is_dataclass(item.hint):
            path = f"{prefix}{item.name}"
            found.append((path, item.hint))
            found += _sections(item.hint, path + ".")
    return found


def _all_keys() -> list[str]:
    keys = [item.name for item in declared(StackConfig)]
    for path, cls in _sections():
        keys += [f"{path}.{item.name}" for item in declared(cls)]
    return keys


def test_every_field_of_every_section_is_a_declared_key() -> None:
    """A key added as a bare field (no range, no description) fails here, not in review."""
    bare = [
        f"{cls.__name__}.{f.name}"
        for cls in [StackConfig, *(cls for _, cls in _sections())]
        for f in dataclasses.fields(cls)
        if METADATA not in f.metadata
    ]
    assert bare == []


def test_the_sections_the_loader_knows_are_the_declared_ones() -> None:
    assert tuple(item.name for item in declared(StackConfig)) == SECTIONS


@pytest.mark.parametrize(("path", "cls"), _sections())
def test_the_loader_accepts_every_declared_key_and_no_other(path: str, cls: type[Any]) -> None:
    """Each declared key, set to a value of the wrong type, is judged (never 'no such key'); an
    undeclared one is refused with the declared keys listed."""
    values = load_stack_file(ROOT / "Pulumi.dev.yaml")
    section, *nested = path.split(".")
    target: dict[str, Any] = values.setdefault(section, {})  # type: ignore[assignment]
    for name in nested:
        target = target.setdefault(name, {})
    for item in declared(cls):
        # cluster.mode stays valid: with a wrong mode nothing else in the section can be judged.
        if not (isinstance(item.hint, type) and dataclasses.is_dataclass(item.hint)) and item.name != "mode":
            target[item.name] = object()
    target["notAKey"] = 1
    with pytest.raises(ConfigError) as caught:
        load_stack_config(values)
    unknown = [p for p in caught.value.problems if p.expected.startswith("no such key")]
    assert [p.key for p in unknown] == [f"mlflow-platform:{path}.notAKey"]
    listed = set(re.search(r"known keys: ([^)]*)\)", unknown[0].expected)[1].split(", "))  # type: ignore[index]
    assert listed == {item.name for item in declared(cls)}


def test_the_committed_reference_pages_are_what_the_declarations_give() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "reference_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_configuration_page_has_a_row_per_key_with_its_declared_range() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    rows = {m[1] for m in re.finditer(r"^\| \[?`([\w.]+)`", page, re.MULTILINE)}
    assert set(_all_keys()) <= rows
    backups = declaration(DatabaseConfig, "backup_retention_days").key
    (row,) = [line for line in page.splitlines() if line.startswith("| `database.backupRetentionDays`")]
    assert f"| `14` | {backups.low}–{backups.high} |" in row


def _reference_rows(text: str) -> list[str]:
    """The first cells of the rows of tables whose header names a default: key reference tables
    (not, e.g., a dev-versus-prod comparison that mentions a key)."""
    cells, in_reference = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_reference = False
        elif not in_reference and "default" in line.lower() and "---" not in line:
            in_reference = True
        elif in_reference and (match := re.match(r"^\| `([\w.]+)`", line)):
            cells.append(match[1])
    return cells


def test_no_page_but_the_generated_one_restates_a_key_in_a_table() -> None:
    """The README and docs/ link to docs/configuration.md; a hand-written row for a key (its
    default, its range) would go stale the day the declaration changes."""
    keys = set(_all_keys())
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    restated = [
        f"{page.relative_to(ROOT)}: {key}"
        for page in pages
        if page not in GENERATED
        for key in _reference_rows(page.read_text())
        if key in keys
    ]
    assert restated == []


def _literal_aliases(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Subscript)
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "Literal"
        for target in node.targets
        if isinstance(target, ast.Name)
    }


def test_each_enum_is_defined_once() -> None:
    """``ArtifactAccessMode`` was spelled in rendering/ and stackconfig/: a value added to one
    would have been refused by the other."""
    modules = [*ROOT.glob("rendering/*.py"), *ROOT.glob("stackconfig/**/*.py")]
    seen: dict[str, list[str]] = {}
    for module in modules:
        for name in _literal_aliases(module):
            seen.setdefault(name, []).append(str(module.relative_to(ROOT)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}
    values = [
        node
        for module in modules
        for node in ast.walk(ast.parse(module.read_text()))
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Literal"
    ]
    assert sum(ast.unparse(v) == "Literal['direct', 'proxied']" for v in values) == 1


def test_the_tuning_defaults_are_the_declared_ones() -> None:
    """The local target builds a PostgresTuning without a stack config: it must get the defaults
    a stack gets, from one definition."""
    tuning, database = PostgresTuning(memory_bytes=1), DatabaseConfig()
    assert tuning.log_min_duration_statement_ms == database.log_min_duration_statement_ms
    assert database.log_min_duration_statement_ms == DEFAULT_LOG_MIN_DURATION_STATEMENT_MS
    assert tuning.idle_in_transaction_session_timeout_ms == database.idle_in_transaction_session_timeout_ms
    assert database.idle_in_transaction_session_timeout_ms == DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT_MS

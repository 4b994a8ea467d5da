"""``rendering/`` and ``stackconfig/`` import no Pulumi SDK, directly or through another module.

Why it matters: the local target, the ops tools and the pure tests import these packages, and
the parity test's claim (the local platform and the EKS pod render the same files) holds only
while the rendering functions are plain functions of plain values. A Pulumi import there would
bring ``Output`` values into the layer and make every local start pay for the SDKs.

Two checks: an AST scan names the file and line of a direct import (also one inside a function,
which an import check would not execute), and a fresh interpreter imports every module of both
packages and reports the first module after whose import a Pulumi SDK is in ``sys.modules``
(an import through a helper module or a third-party package).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ("rendering", "stackconfig")
FORBIDDEN = ("pulumi", "pulumi_aws", "pulumi_kubernetes")


def _modules(package: str) -> list[tuple[str, Path]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _forbidden(name: str) -> bool:
    return name.split(".", 1)[0] in FORBIDDEN


def direct_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line name`` for each import of a Pulumi SDK in the file's source."""
    hits = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        hits += [f"{path.relative_to(root)}:{node.lineno} {name}" for name in names if _forbidden(name)]
    return hits


_PROBE = """
import importlib, json, sys
forbidden = set(json.loads(sys.argv[1]))
culprits = {}
for module in json.loads(sys.argv[2]):
    importlib.import_module(module)
    loaded = sorted(name for name in sys.modules if name.split(".", 1)[0] in forbidden)
    if loaded:
        culprits[module] = loaded[:3]
        for name in list(sys.modules):
            if name.split(".", 1)[0] in forbidden:
                del sys.modules[name]
print(json.dumps(culprits))
"""


def transitive_imports(modules: list[str], cwd: Path = ROOT) -> dict[str, list[str]]:
    """Module → the Pulumi modules loaded by importing it (after what earlier modules loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(FORBIDDEN), json.dumps(modules)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    culprits: dict[str, list[str]] = json.loads(result.stdout)
    return culprits


def test_the_pure_packages_are_found() -> None:
    names = {name for package in PURE_PACKAGES for name, _ in _modules(package)}
    assert {"rendering.server_side", "rendering.names", "stackconfig.load", "stackconfig.schema"} <= names


def test_no_pure_module_imports_pulumi_directly() -> None:
    hits = [hit for package in PURE_PACKAGES for _, path in _modules(package) for hit in direct_imports(path)]
    assert hits == []


def test_no_pure_module_loads_pulumi_when_imported() -> None:
    modules = [name for package in PURE_PACKAGES for name, _ in _modules(package)]
    assert transitive_imports(modules) == {}


def test_the_checks_see_an_import(tmp_path: Path) -> None:
    """Both checks report a Pulumi import when there is one (so a pass is not vacuous): one inside
    a function (only the AST sees it) and one a module away (only the import check sees it)."""
    (tmp_path / "lazy.py").write_text("def f():\n    from pulumi import Output\n    return Output\n")
    (tmp_path / "helper.py").write_text("import pulumi_kubernetes\n")
    (tmp_path / "innocent.py").write_text("from helper import *  # noqa\n")
    assert direct_imports(tmp_path / "lazy.py", tmp_path) == ["lazy.py:2 pulumi"]
    assert direct_imports(tmp_path / "innocent.py", tmp_path) == []
    culprits = transitive_imports(["lazy", "innocent"], cwd=tmp_path)
    assert list(culprits) == ["innocent"]
    assert culprits["innocent"][0].startswith("pulumi")

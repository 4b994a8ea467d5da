"""The shape issue 19 gave ``components/``: modules small enough to read, workloads built from the
public pod toolkit rather than from each other's private helpers, outputs combined by name, and a
parity test that runs without a Pulumi SDK. Read from the source (``ast``), nothing is run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "components"
WORKLOADS = [*sorted((COMPONENTS / "tracking_server").glob("*.py")), COMPONENTS / "garbage_collection.py"]
"""The modules that build pods from ``components.pod_toolkit``."""
PULUMI_SDKS = ("pulumi", "pulumi_aws", "pulumi_kubernetes", "pulumi_random")


def _modules() -> list[Path]:
    return sorted(COMPONENTS.rglob("*.py"))


def test_no_component_module_is_over_500_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}


def test_no_component_imports_another_modules_private_names() -> None:
    """A shared helper is public (the pod toolkit); ``from components.x import _helper`` is how
    the gc CronJob used to copy the tracking server's security contexts."""
    private = [
        f"{path.relative_to(ROOT)}: from {node.module} import {alias.name}"
        for path in _modules()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("components")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def _positional_output_all(source: str) -> list[int]:
    """Lines of ``Output.all(a, b, …)`` calls, whose values are read back as ``v[0]``, ``v[1]``…"""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "all"):
            continue
        if ast.unparse(node.func.value).split(".")[-1] != "Output":
            continue
        # One starred list (``Output.all(*subnet_ids)``) is a list of alike values, not positions.
        if node.args and not (len(node.args) == 1 and isinstance(node.args[0], ast.Starred)):
            found.append(node.lineno)
    return sorted(found)


def test_workloads_combine_outputs_by_name() -> None:
    positional = {
        str(p.relative_to(ROOT)): lines for p in WORKLOADS if (lines := _positional_output_all(p.read_text()))
    }
    assert positional == {}


def test_the_output_all_check_tells_positions_from_names() -> None:
    source = "pulumi.Output.all(a, b).apply(f)\npulumi.Output.all(*xs)\nOutput.all(a=a, b=b)\nOutput.all(a)\n"
    assert _positional_output_all(source) == [1, 4]


def test_the_parity_test_imports_no_pulumi_sdk() -> None:
    """The parity of the EKS pod and the local target is a property of pure rendering: its test
    must not need the provider SDKs (``pod_target`` lives in ``rendering.eks_pod``)."""
    code = (
        "import sys, tests.unit.test_parity; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PULUMI_SDKS!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"

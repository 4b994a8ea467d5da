"""Runs a GitHub Actions workflow file's ``run:`` steps locally, in job order, the way a runner
would: ``bash --noprofile --norc -eo pipefail {0}`` (GitHub's default ``run`` shell on Linux,
docs.github.com "Workflow syntax", ``jobs.<job_id>.steps[*].shell``); workflow, job and step
``env`` with the ``${{ ... }}`` expressions substituted; ``$GITHUB_OUTPUT``/``$GITHUB_ENV``
files between steps; step and job outputs into ``steps.*``/``needs.*``.

Deliberately small: the templates may only use dotted lookups, ``'literals'`` and ``||`` in
expressions (anything else fails the test, which keeps the templates simple to read), and no
step-level ``if:``. What is not executed is explicit: ``uses:`` steps (the test prepares the
workspace they would), the dependency install (the test's venv has the pinned set), and steps
named ``PLACEHOLDER: ...`` (the team's own deployment), for which the test may pass a hook.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
LITERAL = re.compile(r"^'((?:[^']|'')*)'$")
PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)*$")
INSTALL_STEP = "Install the pinned client and tools"
PLACEHOLDER = "PLACEHOLDER: "
ALLOWED_ACTIONS = ("actions/checkout@", "actions/setup-python@")

Hook = Callable[[dict[str, str]], None]
"""Called instead of a placeholder step, with the environment the step would have had."""


@dataclass
class StepResult:
    job: str
    name: str
    code: int
    out: str
    err: str


@dataclass
class WorkflowRun:
    results: list[StepResult] = field(default_factory=list)
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """``job/step`` of placeholder steps (hooked or not)."""

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.results if r.code != 0), None)


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def evaluate(text: str, context: Mapping[str, Any]) -> str:
    """Substitute every ``${{ expr }}`` in ``text``."""

    def operand(token: str) -> str:
        literal = LITERAL.match(token)
        if literal is not None:
            return literal.group(1).replace("''", "'")
        if PATH.match(token) is None:
            raise ValueError(f"unsupported expression operand {token!r} in {text!r}")
        value: Any = context
        for part in token.split("."):
            if not isinstance(value, Mapping) or part not in value:
                if token.startswith("github.event.inputs."):
                    return ""  # absent on a push, as on GitHub
                raise KeyError(f"{token!r} is not provided by the test (in {text!r})")
            value = value[part]
        return str(value)

    def one(match: re.Match[str]) -> str:
        for token in (t.strip() for t in match.group(1).split("||")):
            value = operand(token)
            if value:
                return value
        return ""

    return EXPRESSION.sub(one, text)


def job_order(jobs: Mapping[str, Any]) -> list[str]:
    order: list[str] = []
    while len(order) < len(jobs):
        ready = [name for name, job in jobs.items() if name not in order and all(n in order for n in _needs(job))]
        if not ready:
            raise ValueError(f"cyclic or unknown needs in {list(jobs)}")
        order.append(ready[0])
    return order


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _read_pairs(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            pairs[key] = value
    return pairs


def run_workflow(
    path: Path,
    *,
    workspace: Path,
    runner_env: Mapping[str, str],
    secrets: Mapping[str, str],
    variables: Mapping[str, str],
    github: Mapping[str, Any],
    hooks: Mapping[str, Hook] | None = None,
) -> WorkflowRun:
    """Run the workflow's jobs in ``needs`` order; stop at the first failing step."""
    document = load(path)
    run = WorkflowRun()
    context: dict[str, Any] = {"secrets": dict(secrets), "vars": dict(variables), "github": dict(github), "needs": {}}
    base_env = {k: evaluate(str(v), context) for k, v in (document.get("env") or {}).items()}
    for job_name in job_order(document["jobs"]):
        job = document["jobs"][job_name]
        runner_temp = Path(tempfile.mkdtemp(prefix=f"runner-temp-{path.stem}-{job_name}-", dir=workspace.parent))
        steps: dict[str, dict[str, dict[str, str]]] = {}
        context["steps"] = steps
        job_env = {**base_env, **{k: evaluate(str(v), context) for k, v in (job.get("env") or {}).items()}}
        exported: dict[str, str] = {}
        for index, step in enumerate(job["steps"]):
            name = step.get("name", step.get("uses", f"step {index}"))
            if "uses" in step:
                if not str(step["uses"]).startswith(ALLOWED_ACTIONS):
                    raise ValueError(f"{job_name}: action {step['uses']} is not prepared by the test")
                continue
            if "if" in step:
                raise ValueError(f"{job_name}/{name}: step-level if: is not supported by the runner")
            step_env = {k: evaluate(str(v), context) for k, v in (step.get("env") or {}).items()}
            env = {
                **runner_env,
                **job_env,
                **exported,
                **step_env,
                "GITHUB_WORKSPACE": str(workspace),
                "RUNNER_TEMP": str(runner_temp),
                "CI": "true",
            }
            if name == INSTALL_STEP:
                continue
            if str(name).startswith(PLACEHOLDER):
                run.skipped.append(f"{job_name}/{name}")
                hook = (hooks or {}).get(str(name))
                if hook is not None:
                    hook(env)
                continue
            output_file, env_file = runner_temp / f"output-{index}", runner_temp / f"env-{index}"
            output_file.touch()
            env_file.touch()
            env.update(GITHUB_OUTPUT=str(output_file), GITHUB_ENV=str(env_file))
            script = runner_temp / f"step-{index}.sh"
            script.write_text(str(step["run"]))
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=str(workspace),
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            run.results.append(StepResult(job_name, str(name), done.returncode, done.stdout, done.stderr))
            if done.returncode != 0:
                return run
            exported.update(_read_pairs(env_file))
            if "id" in step:
                steps[str(step["id"])] = {"outputs": _read_pairs(output_file)}
        outputs = {k: evaluate(str(v), context) for k, v in (job.get("outputs") or {}).items()}
        context["needs"][job_name] = {"outputs": outputs}
        run.outputs[job_name] = outputs
    return run


def python_path_env() -> dict[str, str]:
    """PATH with this interpreter's directory first, so ``python`` in a step is the test's venv
    (with the pinned set the template's install step would have installed)."""
    import sys

    bin_dir = str(Path(sys.executable).parent)
    return {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": os.environ.get("HOME", "/tmp")}

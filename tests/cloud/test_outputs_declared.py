"""Every output the program exports is declared once in ``infra/outputs.py`` (which writes
docs/outputs.md), with the right secret flag and the right condition: the mocked program is run for
both stack files in both cluster modes and in the first phase of a first deployment."""

from __future__ import annotations

import asyncio

import pytest

from infra.outputs import OUTPUTS, When
from stackconfig.load import load_stack_config, load_stack_file
from tests.program_snapshot import VARIANTS
from tests.pulumi_harness import ROOT, captured_program, run_program, stack_file_config


def _expected(stack: str, mode: str, *, kubernetes: bool = True) -> set[str]:
    ingress = load_stack_config(load_stack_file(ROOT / f"Pulumi.{stack}.yaml")).server.ingress
    applies: dict[When, bool] = {
        "always": True,
        "kubernetes": kubernetes,
        "created-host": kubernetes and mode == "create",
        "created-alb": kubernetes and mode == "create" and ingress.class_name == "alb",
    }
    return {name for name, output in OUTPUTS.items() if applies[output.when]}


def _secret(secrets: dict[str, bool]) -> set[str]:
    return {name for name, is_secret in secrets.items() if is_secret}


@pytest.mark.parametrize(("stack", "mode"), VARIANTS)
def test_the_exported_outputs_are_the_declared_ones(stack: str, mode: str) -> None:
    _, outputs, secrets = captured_program(stack, mode)
    assert set(outputs) == _expected(stack, mode)
    assert _secret(secrets) == {name for name in outputs if OUTPUTS[name].secret}


def test_every_condition_is_met_by_some_stack() -> None:
    """A declared output no variant exports would be documented but never there."""
    exported = set().union(*(set(captured_program(stack, mode)[1]) for stack, mode in VARIANTS))
    assert exported == set(OUTPUTS)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_first_phase_exports_only_the_aws_outputs(stack: str) -> None:
    previous = asyncio.get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        config = {**stack_file_config(stack), "mlflow-platform:kubernetes": "false"}
        _, outputs, secrets = run_program(stack, config)
    finally:
        asyncio.set_event_loop(previous)
        loop.close()
    assert set(outputs) == _expected(stack, "create", kubernetes=False)
    assert _secret(secrets) == {name for name in outputs if OUTPUTS[name].secret}

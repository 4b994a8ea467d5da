"""``mlflow-platform:rotation``: credential generations, validated like every other key."""

from __future__ import annotations

from typing import Any

import pytest

from stackconfig import ConfigError, load_stack_config
from stackconfig.schema import RotationConfig
from tests.unit.test_stack_config import stack_values


def test_rotation_defaults_to_generation_zero_and_reads_each_key():
    assert load_stack_config(stack_values("dev")).rotation == RotationConfig(0, 0, 0)
    values = {**stack_values("dev"), "rotation": {"adminPassword": 2, "databasePassword": 1, "flaskSecretKey": 7}}
    assert load_stack_config(values).rotation == RotationConfig(
        admin_password=2, database_password=1, flask_secret_key=7
    )


@pytest.mark.parametrize(
    ("rotation", "message"),
    [
        ({"adminPasword": 1}, "mlflow-platform:rotation.adminPasword: got 1; expected no such key (known keys: "),
        (
            {"databasePassword": -1},
            "mlflow-platform:rotation.databasePassword: got -1; expected an integer from 0 to 9999",
        ),
        (
            {"flaskSecretKey": "2"},
            "mlflow-platform:rotation.flaskSecretKey: got '2'; expected an integer from 0 to 9999",
        ),
        ([1], "mlflow-platform:rotation: got [1]; expected an object"),
    ],
)
def test_bad_rotation_input_is_refused_with_the_key_named(rotation: Any, message: str):
    with pytest.raises(ConfigError) as caught:
        load_stack_config({**stack_values("dev"), "rotation": rotation})
    assert any(str(problem).startswith(message) for problem in caught.value.problems), caught.value.problems

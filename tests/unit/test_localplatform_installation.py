"""The local platform's entry-point check (``localplatform.installation.require_entry_point``): one
function for the store plugin and the server app, whose sources are ``Path``s."""

from __future__ import annotations

import sys

import pytest

from localplatform.errors import PlatformError
from localplatform.installation import require_entry_point
from rendering.mlflow_server import PLATFORM_APP, PLATFORM_APP_SOURCE
from rendering.tracking_store import STORE_SCHEME, STORE_SOURCE


@pytest.mark.parametrize(
    ("group", "name", "source"),
    [("mlflow.app", PLATFORM_APP, PLATFORM_APP_SOURCE), ("mlflow.tracking_store", STORE_SCHEME, STORE_SOURCE)],
)
def test_the_installed_plugins_pass(group: str, name: str, source: object) -> None:
    """``make setup`` installs both plugins into the venv the tests run in."""
    require_entry_point(sys.executable, group, name, "plugin", str(source))


def test_a_missing_entry_point_names_the_install_command() -> None:
    with pytest.raises(PlatformError) as raised:
        require_entry_point(sys.executable, "mlflow.app", "no-such-app", "MLflow app", PLATFORM_APP_SOURCE)
    message = str(raised.value)
    assert "lacks the MLflow app 'no-such-app'" in message
    assert f"-m pip install --no-deps {PLATFORM_APP_SOURCE}`" in message

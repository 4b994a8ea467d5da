"""The server's tracking store: selected by the rendered URI, installed, and the registry, the
migrations and gc left on the database URI.

The store's behaviour is proved against MLflow's own store on PostgreSQL in tests/store; these
tests pin down what the server and the EKS pod are given."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib.metadata import entry_points

import pytest

from rendering.server_side import PlatformSettings, ServerSide, TargetParameters, render_server_side
from rendering.tracking_store import DATABASE_SCHEME, STORE_SCHEME, STORE_SOURCE, tracking_store_uri
from tests.unit.test_parity import SECRETS, SETTINGS, eks, local

TARGETS = {"local": local, "cloud": eks}
DATABASE_URI_SCHEMES = ("postgresql", "mysql", "sqlite", "mssql")
"""``mlflow/utils/uri.py``'s DATABASE_ENGINES: a scheme starting with one is MLflow's store."""


def argument(side: ServerSide, flag: str) -> str:
    argv = list(side.launch.argv)
    assert argv.count(flag) == 1, f"{flag} given {argv.count(flag)} times"
    return argv[argv.index(flag) + 1]


def render(target: TargetParameters, settings: PlatformSettings = SETTINGS) -> ServerSide:
    return render_server_side(target, settings, SECRETS)


def test_the_plugin_source_declares_the_entry_point_the_rendering_names() -> None:
    project = tomllib.loads((STORE_SOURCE / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"]["mlflow.tracking_store"]
    assert list(declared) == [STORE_SCHEME]
    installed = {e.name: e.value for e in entry_points(group="mlflow.tracking_store")}
    assert installed.get(STORE_SCHEME) == declared[STORE_SCHEME], "run make setup: the plugin is not installed"


def test_the_scheme_is_not_one_mlflow_takes_for_a_database() -> None:
    assert not STORE_SCHEME.startswith(DATABASE_URI_SCHEMES)


@pytest.mark.parametrize("target", ["local", "cloud"])
def test_the_server_runs_the_set_based_store_and_the_registry_the_database(target: str) -> None:
    side = render(TARGETS[target]())
    backend, registry = argument(side, "--backend-store-uri"), argument(side, "--registry-store-uri")
    assert backend.startswith(f"{STORE_SCHEME}://mlflow@")
    assert registry.startswith(f"{DATABASE_SCHEME}://mlflow@")
    assert backend.split("://", 1)[1] == registry.split("://", 1)[1], "same database, user and options"
    # The migrations run on the database URI, never on the plugin's.
    assert STORE_SCHEME not in side.bootstrap_document
    assert "plugin=" not in backend, "the SQLAlchemy engine plugin is gone"


def test_mlflow_resolves_the_rendered_uri_to_the_plugin_and_the_registry_uri_to_its_own_store() -> None:
    from mlflow.server.handlers import ModelRegistryStoreRegistryWrapper, TrackingStoreRegistryWrapper
    from mlflow_platform_store import build_store

    side = render(local())
    assert TrackingStoreRegistryWrapper().get_store_builder(argument(side, "--backend-store-uri")) is build_store
    registry_builder = ModelRegistryStoreRegistryWrapper().get_store_builder(argument(side, "--registry-store-uri"))
    assert registry_builder.__name__ == "_get_sqlalchemy_store"


def test_stock_renders_the_database_uri_and_no_registry_flag() -> None:
    side = render(local(), replace(SETTINGS, tracking_store="stock"))
    assert argument(side, "--backend-store-uri").startswith(f"{DATABASE_SCHEME}://")
    assert "--registry-store-uri" not in side.launch.argv


def test_a_uri_that_is_not_postgresql_psycopg2_is_refused() -> None:
    with pytest.raises(ValueError, match=r"must start with postgresql\+psycopg2://"):
        tracking_store_uri("postgresql+psycopg://u@h/db", "set-based")


def test_the_plugin_maps_its_uri_back_to_the_database_uri() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow_platform_store import database_uri

    assert database_uri(f"{STORE_SCHEME}://u@h:1/db?sslmode=disable") == f"{DATABASE_SCHEME}://u@h:1/db?sslmode=disable"
    with pytest.raises(MlflowException, match="needs a mlflow-platform://"):
        database_uri("postgresql://u@h/db")

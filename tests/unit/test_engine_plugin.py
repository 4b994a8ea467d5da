"""The tracking store's SQLAlchemy plugin: named by the rendered URI, installed, and effective.

The benchmark measures what it buys; these tests pin down that the URI the server and the EKS pod
are given really selects psycopg2's batched executemany, and nothing else about the connection."""

from __future__ import annotations

import tomllib
from dataclasses import replace
from importlib.metadata import entry_points

import pytest
import sqlalchemy

from rendering.engine_plugin import BATCHED_EXECUTEMANY_PLUGIN, PLUGIN_SOURCE
from rendering.server_side import PlatformSettings, ServerSide, TargetParameters, render_server_side
from tests.unit.test_parity import SECRETS, SETTINGS, eks, local

TARGETS = {"local": local, "cloud": eks}


def tracking_uri(side: ServerSide) -> str:
    argv = list(side.launch.argv)
    return argv[argv.index("--backend-store-uri") + 1]


def render(target: TargetParameters, settings: PlatformSettings = SETTINGS) -> ServerSide:
    return render_server_side(target, settings, SECRETS)


def test_the_plugin_source_declares_the_entry_point_the_rendering_names() -> None:
    project = tomllib.loads((PLUGIN_SOURCE / "pyproject.toml").read_text())
    declared = project["project"]["entry-points"]["sqlalchemy.plugins"]
    assert list(declared) == [BATCHED_EXECUTEMANY_PLUGIN]
    installed = {e.name: e.value for e in entry_points(group="sqlalchemy.plugins")}
    assert installed.get(BATCHED_EXECUTEMANY_PLUGIN) == declared[BATCHED_EXECUTEMANY_PLUGIN]


@pytest.mark.parametrize("target", ["local", "cloud"])
def test_the_rendered_tracking_uri_batches_executemany(target: str) -> None:
    uri = tracking_uri(render(TARGETS[target]()))
    assert f"plugin={BATCHED_EXECUTEMANY_PLUGIN}" in uri
    engine = sqlalchemy.create_engine(uri)  # does not connect
    assert engine.dialect.driver == "psycopg2"
    assert engine.dialect.executemany_mode == sqlalchemy.dialects.postgresql.psycopg2.EXECUTEMANY_VALUES_PLUS_BATCH
    assert engine.dialect.executemany_batch_page_size == 1000  # one log_batch's updates in one round trip
    # psycopg2 never sees the plugin name; sslmode and the rest reach it unchanged.
    assert "plugin" not in engine.url.query
    assert engine.url.query["sslmode"] in ("disable", "verify-full")


def test_switching_it_off_renders_the_plain_uri() -> None:
    uri = tracking_uri(render(local(), replace(SETTINGS, batched_executemany=False)))
    assert "plugin=" not in uri
    engine = sqlalchemy.create_engine(uri)
    assert engine.dialect.executemany_mode != sqlalchemy.dialects.postgresql.psycopg2.EXECUTEMANY_VALUES_PLUS_BATCH


def test_the_auth_store_uri_is_left_alone() -> None:
    """Only the tracking store writes in bulk; the auth store keeps SQLAlchemy's defaults."""
    server_side = render(eks())
    assert "plugin=" not in server_side.auth_ini


def test_on_another_driver_it_refuses_with_the_reason() -> None:
    with pytest.raises(
        ValueError, match=r"needs the psycopg2 driver \(postgresql\+psycopg2://\), got sqlite\+pysqlite"
    ):
        sqlalchemy.create_engine(f"sqlite://?plugin={BATCHED_EXECUTEMANY_PLUGIN}")

"""Fixtures for the reliability tests: ONE local platform (proxied artifacts, PgBouncer,
basic-auth, TLS through nginx) shared by the whole package — faults under load, the CVE probes
and the backup/restore drill all run against it, in that file order or any other: every test
leaves it healthy (the drill rebuilds it in the same state dir).

Its state dir is a fresh ``mkdtemp`` directory outside pytest's tmp tree (see
``tests.integration.conftest.module_platform``); its logs are kept in ``test-artifacts/logs/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localplatform import LocalPlatform
from tests.integration.conftest import Edge, artifacts_dir, module_platform

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.local)


@pytest.fixture(scope="package")
def platform() -> Iterator[LocalPlatform]:
    yield from module_platform("reliability", access_mode="proxied")


@pytest.fixture
def edge(platform: LocalPlatform) -> Edge:
    """Read per test: the drill regenerates nothing secret, but a restart may move nothing
    either — reading the env file again costs nothing and never goes stale."""
    return Edge.of(platform)


@pytest.fixture(scope="package")
def artifacts() -> Path:
    return artifacts_dir()

"""One local platform (PostgreSQL and PgBouncer from the rendered configs, the server on the
set-based store) for the store suite, and both tracking stores opened on its tracking database
through PgBouncer as the application role — the connection the server itself uses."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from mlflow_platform_store import build_store

from localplatform import LocalPlatform
from rendering.tracking_store import STORE_SCHEME
from tests.local.conftest import start_platform

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.local)


@dataclass(frozen=True)
class Stores:
    stock: SqlAlchemyStore
    set_based: SqlAlchemyStore
    database_uri: str
    """``postgresql+psycopg2://`` through PgBouncer, password included (this process only)."""


@pytest.fixture(scope="session")
def store_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    yield from start_platform(tmp_path_factory, "store")


@pytest.fixture(scope="session")
def stores(store_platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory) -> Stores:
    db = store_platform.database_params("mlflow", role="app", via_pgbouncer=True)
    uri = f"{db['user']}:{db['password']}@{db['host']}:{db['port']}/{db['dbname']}?sslmode={db['sslmode']}"
    artifacts = str(tmp_path_factory.mktemp("store-artifacts"))
    return Stores(
        stock=SqlAlchemyStore(f"postgresql+psycopg2://{uri}", artifacts),
        set_based=build_store(f"{STORE_SCHEME}://{uri}", artifacts),
        database_uri=f"postgresql+psycopg2://{uri}",
    )

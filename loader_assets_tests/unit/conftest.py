"""Fixtures of the unit tests: a SQLite catalog file in tmp_path, a registered sample case, a fake cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.register import Registration, register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.sample import write_sample_case
from loader_assets_tests.unit.fakes import FakeCluster
from loader_assets_tests.unit.helpers import CASE


@pytest.fixture
def db(tmp_path: Path) -> Iterator[CatalogDB]:
    catalog = CatalogDB(f"sqlite:///{tmp_path / 'c.sqlite'}")
    yield catalog
    catalog.dispose()


@pytest.fixture
def store(db: CatalogDB) -> Store:
    return Store(db, lease_seconds=60)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two chunks: Object (director, with overlaps) and Filter at level 1, Source and ForcedSource at level 3."""
    return write_sample_case(tmp_path_factory.mktemp("sample") / CASE, chunks=2, rows_per_chunk=5, database=CASE)


@pytest.fixture
def sample(store: Store, sample_root: Path) -> Registration:
    return register_case(store, sample_root, CASE)


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()

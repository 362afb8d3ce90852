"""Identity: a catalog never writes into worker databases of another catalog, and workers keep their names."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Owner, Store
from loader_assets.engine.load import Loader
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers.cluster import Cluster, ClusterConfig, ClusterIdentityError
from loader_assets_tests.conftest import Platform

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def test_a_new_catalog_refuses_to_load_into_a_database_another_catalog_made(platform: Platform, tmp_path: Path) -> None:
    database = f"d{uuid.uuid4().hex[:8]}"
    root = write_sample_case(tmp_path / "case", chunks=2, rows_per_chunk=5, database=database)
    register_case(platform.store, root, "first")
    first = Loader(platform.store, platform.cluster).load(
        notice_ids(platform.store.db, "first", level=1), Owner.current("run-1")
    )
    assert first.loaded and not first.failed

    other = Store(CatalogDB(f"sqlite:///{tmp_path / 'other.sqlite'}"))  # a new catalog: attempt ids restart at 1
    register_case(other, root, "again")
    report = Loader(other, platform.cluster).load(notice_ids(other.db, "again", level=1), Owner.current("run-2"))

    assert not report.loaded and report.failed
    error = next(iter(report.failed.values()))
    assert f"database {database} " in error and platform.store.db.catalog_id in error and other.db.catalog_id in error


def test_workers_renamed_or_reordered_are_refused(platform: Platform) -> None:
    config = platform.cluster.config
    Cluster(config).ensure_meta()  # the names as the czar knows them
    (one, url_one), (two, url_two) = sorted(config.workers.items())
    swapped = ClusterConfig(czar_url=config.czar_url, workers={one: url_two, two: url_one})
    with pytest.raises(ClusterIdentityError, match=re.escape(f"worker {one} is {url_one} at the czar, not {url_two}:")):
        Cluster(swapped).ensure_meta()

"""A file that changes while it loads is loaded again, never left `done` with its old rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import select

from loader_assets.catalog.layout import case_layout
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.register import register_case
from loader_assets.catalog.schema import attempts, notices
from loader_assets.catalog.store import Owner
from loader_assets.engine import load as engine_load
from loader_assets.engine.load import Loader
from loader_assets.workers.attempt_partitions import partitions_of
from loader_assets.workers.ddl import chunk_table_name
from loader_assets_tests.conftest import Platform

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


@pytest.mark.parametrize("registered", [False, True], ids=["changed on disk", "changed and registered"])
def test_a_file_changed_during_its_load_ends_ready_and_changed(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, registered: bool
) -> None:
    case = platform.sample_case(chunks=1, rows_per_chunk=5).case
    layout = case_layout(platform.store.db, case)
    [notice] = [i for i in notice_ids(platform.store.db, case, table="Object") if True][:1]
    with platform.store.db.read() as connection:
        path = connection.execute(select(notices.c.path).where(notices.c.id == notice)).scalar_one()
    real_load = engine_load.load_file

    def load_then_change(url, database, table, file, *args, **options):  # type: ignore[no-untyped-def]
        result = real_load(url, database, table, file, *args, **options)
        if Path(file) == layout.root / path:  # the partitioner rewrites the file while it loads
            Path(file).write_bytes(Path(file).read_bytes() + Path(file).read_bytes().splitlines(keepends=True)[0])
            os.utime(file, (2, 2))
            if registered:
                register_case(platform.store, layout.root, case)
        return result

    monkeypatch.setattr(engine_load, "load_file", load_then_change)
    Loader(platform.store, platform.cluster).load([notice], Owner.current("run-changed"))

    with platform.store.db.read() as connection:
        row = connection.execute(select(notices).where(notices.c.id == notice)).one()
        outcome, error = connection.execute(
            select(attempts.c.outcome, attempts.c.error).where(attempts.c.notice == notice)
        ).one()
    assert (row.status, row.changed) == ("ready", True), "to be loaded again, with its new content"
    assert outcome == "failed" and "changed during its load" in error
    placement = platform.cluster.placement(layout.database)
    worker = platform.cluster.worker(placement[row.chunk])
    assert partitions_of(worker, layout.database, chunk_table_name("Object", row.chunk)) == [], "its rows dropped"

"""Reconciliation: a late writer's partition is dropped, a done attempt's missing partition reloads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from loader_assets.catalog.gates import gate
from loader_assets.catalog.layout import case_layout
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.retire import start_dropping
from loader_assets.catalog.schema import attempts, notices
from loader_assets.catalog.store import Owner
from loader_assets.catalog.time import utcnow
from loader_assets.engine.load import Loader
from loader_assets.problems import WorkerDown
from loader_assets.workers.attempt_partitions import count_rows, drop_attempt_partitions, partitions_of
from loader_assets.workers.ddl import chunk_table_name
from loader_assets.workers.load_data import load_file
from loader_assets_tests.conftest import Platform
from loader_assets_tests.recovery.helpers import sweep_now

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def director_notice(platform: Platform, case: str):  # type: ignore[no-untyped-def]
    [notice_id] = [i for i in notice_ids(platform.store.db, case, table="Object")][:1]
    with platform.store.db.read() as connection:
        return connection.execute(select(notices).where(notices.c.id == notice_id)).one()


def test_a_late_writers_partition_is_dropped_by_the_next_sweep(platform: Platform) -> None:
    case = platform.sample_case(chunks=1, rows_per_chunk=5).case
    layout, notice = case_layout(platform.store.db, case), director_notice(platform, case)
    # A claims and records its worker, then freezes before writing; its lease lapses.
    [late] = platform.store.claim([notice.id], Owner.current("run-late"), now=utcnow() - timedelta(hours=1))
    # B takes the lapsed lease, loads and finishes done.
    report = Loader(platform.store, platform.cluster).load([notice.id], Owner.current("run-b"))
    assert [item.notice_id for item in report.loaded] == [notice.id]
    worker = report.loaded[0].worker
    url, table = platform.cluster.worker(worker), chunk_table_name("Object", notice.chunk)
    # A wakes and writes its partition: rows no later claim drops, since the notice is done.
    table_layout = layout.tables["Object"]
    load_file(url, layout.database, table, layout.root / notice.path, notice.format, layout.dialect_of(notice.format),
              layout.charset, late.attempt_id, table_layout.column_names)  # fmt: skip
    assert count_rows(url, layout.database, table) == 2 * report.loaded[0].rows, "the late rows are there"

    sweep_now(platform)

    assert partitions_of(url, layout.database, table) == [report.loaded[0].attempt_id]
    assert count_rows(url, layout.database, table) == report.loaded[0].rows
    with platform.store.db.read() as connection:
        history = connection.execute(select(attempts.c.error).where(attempts.c.id == late.attempt_id)).scalar()
    assert "dropped from" in history and "by reconciliation" in history


def test_a_done_attempts_missing_partition_fails_its_notice_to_load_again(platform: Platform) -> None:
    case = platform.sample_case(chunks=1, rows_per_chunk=5).case
    layout, notice = case_layout(platform.store.db, case), director_notice(platform, case)
    report = Loader(platform.store, platform.cluster).load([notice.id], Owner.current("run-a"))
    loaded = report.loaded[0]
    url, table = platform.cluster.worker(loaded.worker), chunk_table_name("Object", notice.chunk)
    generation = gate(platform.store.db, case, 2, "Object").generation
    drop_attempt_partitions(url, layout.database, table, [loaded.attempt_id])  # gone behind the catalog's back

    sweep_now(platform)

    after = director_notice(platform, case)
    assert (
        after.status == "failed"
        and f"partition p{loaded.attempt_id} of {table} missing on {loaded.worker}" in after.error
    )
    assert gate(platform.store.db, case, 2, "Object").generation > generation


def test_a_case_being_dropped_is_left_alone_by_the_sweep(platform: Platform) -> None:
    """Its tables are going: the partitions a drop already removed are not "missing", its done notices stay done."""
    case = platform.sample_case(chunks=1, rows_per_chunk=5).case
    layout, notice = case_layout(platform.store.db, case), director_notice(platform, case)
    loaded = Loader(platform.store, platform.cluster).load([notice.id], Owner.current("run-a")).loaded[0]
    url, table = platform.cluster.worker(loaded.worker), chunk_table_name("Object", notice.chunk)
    start_dropping(platform.store.db, case)
    drop_attempt_partitions(url, layout.database, table, [loaded.attempt_id])  # as the drop goes on

    sweep_now(platform)

    after = director_notice(platform, case)
    assert (after.status, after.error) == ("done", None)


def test_a_run_resumed_past_its_lease_whose_connection_broke_blames_the_lease_not_the_worker(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = platform.sample_case(chunks=1, rows_per_chunk=5).case
    notice = director_notice(platform, case)
    loader = Loader(platform.store, platform.cluster)

    def frozen_then_broken(*_args: object) -> None:
        # Frozen past its lease: B takes the notice; A's half-open handshake is then reset by the worker.
        assert platform.store.claim([notice.id], Owner.current("run-b"), now=utcnow() + timedelta(hours=1))
        raise WorkerDown("worker worker1 does not answer (connection reset by peer)", "start it", "worker1")

    monkeypatch.setattr(loader, "_load_everywhere", frozen_then_broken)
    report = loader.load([notice.id], Owner.current("run-a"))

    assert report.problem is None, "the worker answers: nothing to tell the operator about it"
    with platform.store.db.read() as connection:
        history = connection.execute(
            select(attempts.c.run_id, attempts.c.outcome).where(attempts.c.notice == notice.id).order_by(attempts.c.id)
        ).all()
    assert [tuple(row) for row in history] == [("run-a", "lost"), ("run-b", "running")]

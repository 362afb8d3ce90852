"""Reads of notices: tallies, narrowed ids, done chunks and the first unfinished notice of a level."""

from __future__ import annotations

from datetime import timedelta

from loader_assets.catalog import notices
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.time import utcnow
from loader_assets_tests.unit.helpers import CASE, ids


def load(store: Store, notice_ids: list[int], run_id: str, outcome: str = "done", error: str | None = None) -> None:
    for claim in store.claim(notice_ids, Owner.current(run_id)):
        store.finish(claim.attempt_id, outcome, rows=5 if outcome == "done" else None, error=error)


def test_status_tally_counts_per_status_by_table_or_level(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    load(store, objects[:3], "run-a")
    assert notices.status_tally(store.db, CASE) == {"done": 3, "ready": 6}
    assert notices.status_tally(store.db, CASE, table="Object") == {"done": 3, "ready": 1}
    assert notices.status_tally(store.db, CASE, level=3) == {"ready": 4}
    assert notices.status_tally(store.db, "nope") == {}


def test_notice_ids_narrow_by_table_level_chunk_and_status(store: Store, sample: Registration) -> None:
    first_chunk = sample.chunks[0]
    assert len(notices.notice_ids(store.db, CASE, level=1)) == 5
    assert len(notices.notice_ids(store.db, CASE, level=3, chunks=[first_chunk])) == 2
    objects = ids(store.db, "Object")
    load(store, objects[:1], "run-a")
    assert notices.notice_ids(store.db, CASE, table="Object", statuses=("done",)) == objects[:1]


def test_plan_rows_carry_chunk_size_and_attempts(store: Store, sample: Registration) -> None:
    [filter_id] = ids(store.db, "Filter")
    [first, *_] = ids(store.db, "Object")
    load(store, [first], "run-a", "failed", "boom")
    rows = {row[0]: row for row in notices.plan_rows(store.db, [filter_id, first, first])}
    assert sorted(rows) == [first, filter_id]
    _id, case, level, chunk, _size, priority, attempts = rows[first]
    assert (case, level, chunk, priority, attempts) == (CASE, 1, sample.chunks[0], 0, 1)
    _id, _case, level, chunk, size, _priority, _attempts = rows[filter_id]
    assert (chunk, level, size > 0) == (None, 1, True)


def test_done_files_keep_a_chunk_and_its_overlap_apart_with_their_attempts(store: Store, sample: Registration) -> None:
    load(store, ids(store.db, "Object"), "run-a")
    done = notices.done_files(store.db, CASE, "Object")
    assert [(f.chunk, f.overlap, f.rows) for f in done] == [
        (sample.chunks[0], False, 5),
        (sample.chunks[0], True, 5),
        (sample.chunks[1], False, 5),
        (sample.chunks[1], True, 5),
    ]
    assert done[1].path == f"step1_1/Object/chunk_{sample.chunks[0]}_overlap.txt"
    assert len({f.attempt_id for f in done}) == 4 and all(f.fingerprint is None for f in done)


def test_first_unfinished_prefers_a_failed_notice_to_a_ready_one(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    first = notices.first_unfinished(store.db, CASE, 1)
    assert (first.id, first.status) == (objects[0], "ready")
    load(store, objects[2:3], "run-a", "failed", "LOAD DATA: bad row 3")
    failed = notices.first_unfinished(store.db, CASE, 1)
    assert (failed.id, failed.status, failed.error) == (objects[2], "failed", "LOAD DATA: bad row 3")
    load(store, notices.notice_ids(store.db, CASE, level=1), "run-b")  # an explicit claim retries the failed one
    assert notices.first_unfinished(store.db, CASE, 1) is None


def test_claimed_by_run_and_held_under_live_lease(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    now = utcnow()
    store.claim(objects[:2], Owner.current("run-a"), now=now)
    store.claim(objects[2:3], Owner.current("run-b"), now=now - timedelta(seconds=120))  # lease lapsed
    assert notices.claimed_by_run(store.db, "run-a", objects) == set(objects[:2])
    assert notices.held_under_live_lease(store.db, CASE, 1) == 2

"""The state machine of notices, on SQLite and PostgreSQL."""

from __future__ import annotations

import multiprocessing
import subprocess
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from loader_assets.catalog import schema
from loader_assets.catalog.database import CatalogDB, CatalogVersionError
from loader_assets.catalog.store import Owner, Store, mark_changed, utcnow
from loader_assets.problems import Unknown
from loader_assets_tests.catalog.rows import add_case, add_table
from loader_assets_tests.gates import decide_gate


@pytest.fixture
def store(catalog_db: CatalogDB) -> Store:
    return Store(catalog_db, lease_seconds=60)


def notice(store: Store, notice_id: int):  # type: ignore[no-untyped-def]
    with store.db.read() as connection:
        return connection.execute(select(schema.notices).where(schema.notices.c.id == notice_id)).one()


def attempts_of(store: Store, notice_id: int) -> list[tuple[str, str | None]]:
    with store.db.read() as connection:
        rows = connection.execute(
            select(schema.attempts.c.outcome, schema.attempts.c.error)
            .where(schema.attempts.c.notice == notice_id)
            .order_by(schema.attempts.c.id)
        )
        return [tuple(row) for row in rows]


def test_claim_takes_free_notices_once_and_finish_releases_them(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=5)
    first = store.claim(ids[:3], Owner.current("run-a"))
    assert [c.notice_id for c in first] == ids[:3]
    assert [c.notice_id for c in store.claim(ids, Owner.current("run-b"))] == ids[3:], "only the free ones"
    row = notice(store, ids[0])
    assert (row.status, row.locked_by, row.attempts) == ("running", "run-a", 1)

    assert store.finish(first[0].attempt_id, "done", rows=42, warnings=0)
    assert store.finish(first[1].attempt_id, "failed", error="LOAD DATA: bad row 3")
    done, failed = notice(store, ids[0]), notice(store, ids[1])
    assert (done.status, done.rows, done.locked_by, done.lease_until) == ("done", 42, None, None)
    assert (failed.status, failed.error, failed.locked_by) == ("failed", "LOAD DATA: bad row 3", None)
    assert failed.retry_after > utcnow()
    assert attempts_of(store, ids[0]) == [("done", None)]
    assert attempts_of(store, ids[1]) == [("failed", "LOAD DATA: bad row 3")]


def test_done_notice_is_reclaimed_only_when_forced_and_its_rows_are_marked_for_discard(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=1)
    [claim] = store.claim(ids, Owner.current("run-a"))
    store.finish(claim.attempt_id, "done", rows=1)
    assert store.claim(ids, Owner.current("run-b")) == []
    [forced] = store.claim(ids, Owner.current("run-b"), force=True)
    assert forced.discard_attempts == (claim.attempt_id,)
    assert attempts_of(store, ids[0])[0] == ("superseded", None)


def test_heartbeat_extends_the_lease_and_reports_what_is_still_held(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=2)
    claims = store.claim(ids, Owner.current("run-a"))
    later = utcnow() + timedelta(seconds=30)
    assert store.heartbeat([c.attempt_id for c in claims], now=later) == set(ids)
    assert notice(store, ids[0]).lease_until == later + timedelta(seconds=60)
    assert store.heartbeat([999_999]) == set()


def test_expired_lease_is_taken_over_and_the_loser_cannot_finish(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=1)
    [old] = store.claim(ids, Owner.current("run-a"))
    [new] = store.claim(ids, Owner.current("run-b"), now=utcnow() + timedelta(seconds=61))
    assert new.discard_attempts == (old.attempt_id,)
    assert store.heartbeat([old.attempt_id]) == set()
    assert not store.finish(old.attempt_id, "done", rows=5)
    assert store.finish(new.attempt_id, "done", rows=5)
    assert [outcome for outcome, _ in attempts_of(store, ids[0])] == ["lost", "done"]
    assert notice(store, ids[0]).attempts == 2


def test_reclaim_frees_locks_of_dead_owners_at_once_and_of_expired_leases(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=2)
    dead = subprocess.Popen(["true"])
    dead.wait()
    store.claim(ids[:1], Owner(run_id="run-dead", host=Owner.current("x").host, pid=dead.pid))
    store.claim(ids[1:], Owner.current("run-alive"))

    released = store.reclaim()
    assert [(r.notice_id, r.run_id) for r in released] == [(ids[0], "run-dead")]
    row = notice(store, ids[0])
    assert row.status == "failed" and row.locked_by is None
    assert row.error == f"owner gone: process {dead.pid} of run run-dead on {Owner.current('x').host} is dead"

    released = store.reclaim(now=utcnow() + timedelta(seconds=61))
    assert [r.notice_id for r in released] == [ids[1]]
    assert notice(store, ids[1]).error.startswith("stale: lease of run run-alive expired at ")
    assert attempts_of(store, ids[1])[0][0] == "lost"


def test_release_by_hand_keeps_an_audit_row(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=3)
    store.claim(ids, Owner.current("run-a"))
    assert len(store.release_run("run-a", "operator: node rebooted")) == 3
    assert attempts_of(store, ids[0]) == [("lost", "released by hand: operator: node rebooted")]
    assert store.reset(ids) == 3
    assert (notice(store, ids[0]).status, notice(store, ids[0]).attempts) == ("ready", 0)


def test_paused_case_and_closed_gate_refuse_claims(store: Store) -> None:
    directors = add_case(store.db, "c1", notices=2)
    store.set_case_state("c1", "paused")
    assert store.claim(directors, Owner.current("run-a")) == []
    store.set_case_state("c1", "active")
    assert len(store.claim(directors, Owner.current("run-a"))) == 2
    with pytest.raises(Unknown, match="no case nope"):
        store.set_case_state("nope", "paused")

    add_case(store.db, "c2", notices=1)
    children = add_table(store.db, "c2", notices=2, level=3, table="Source")
    assert store.claim(children, Owner.current("run-b")) == []
    decide_gate(store, "c2", "Object", "failed", {"failed_checks": ["objectids_on_workers"]})
    assert store.claim(children, Owner.current("run-b")) == []
    decide_gate(store, "c2", "Object", "passed")
    assert len(store.claim(children, Owner.current("run-b"))) == 2


def test_changed_file_becomes_ready_again(store: Store) -> None:
    ids = add_case(store.db, "c1", notices=1)
    [claim] = store.claim(ids, Owner.current("run-a"))
    store.finish(claim.attempt_id, "done", rows=1)
    with store.db.write() as connection:
        mark_changed(connection, ids[0], size=99, mtime=1.5, now=utcnow())
    row = notice(store, ids[0])
    assert (row.status, row.changed, row.size) == ("ready", True, 99)


def _race(url: str, ids: list[int], name: str, start: multiprocessing.synchronize.Barrier, out) -> None:  # type: ignore[name-defined, no-untyped-def]
    """Claim sliding windows of 20 ids, one racer from each end, so both meet over the same notices."""
    store = Store(CatalogDB(url), lease_seconds=600)
    order = ids if name == "run-0" else ids[::-1]
    start.wait()
    began = time.time()
    taken: list[int] = []
    for offset in range(0, len(order), 10):
        taken += [c.notice_id for c in store.claim(order[offset : offset + 20], Owner.current(name))]
    out.put((name, (taken, began, time.time())))


def test_two_processes_racing_on_the_same_notices_claim_each_exactly_once(catalog_url: str) -> None:
    ids = add_case(CatalogDB(catalog_url), "race", notices=1000)
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(2), context.Queue()
    racers = [context.Process(target=_race, args=(catalog_url, ids, f"run-{n}", start, out)) for n in range(2)]
    for racer in racers:
        racer.start()
    results = dict(out.get(timeout=120) for _ in racers)
    for racer in racers:
        racer.join(timeout=30)
    (a, a_began, a_ended), (b, b_began, b_ended) = results["run-0"], results["run-1"]
    assert max(a_began, b_began) < min(a_ended, b_ended), "the claim windows did not overlap"
    assert not set(a) & set(b)
    assert sorted(a + b) == ids


def test_catalog_of_another_schema_version_is_refused(catalog_url: str) -> None:
    db = CatalogDB(catalog_url)
    with db.write() as connection:
        connection.execute(update(schema.catalog_info).values(value="999"))
    db.dispose()
    with pytest.raises(
        CatalogVersionError, match=f"has schema version 999, this loader_assets uses version {schema.SCHEMA_VERSION}"
    ):
        CatalogDB(catalog_url)

"""Store transitions on a SQLite file: leases, finishing, recovery and operator actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from loader_assets.catalog.register import Registration
from loader_assets.catalog.schema import attempts
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.time import utcnow
from loader_assets.problems import Unknown
from loader_assets_tests.unit.helpers import ids, notice


def test_heartbeat_extends_leases_and_returns_what_the_run_still_holds(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    now = utcnow()
    claims = store.claim(objects, Owner.current("run-a"), now=now)
    later = now + timedelta(seconds=30)
    assert store.heartbeat([c.attempt_id for c in claims], now=later) == set(objects)
    assert notice(store.db, objects[0]).lease_until == later + timedelta(seconds=60)
    assert store.heartbeat([999_999]) == set()


def test_set_workers_refuses_an_attempt_whose_lease_lapsed(store: Store, sample: Registration) -> None:
    [first, second, *_] = ids(store.db, "Object")
    now = utcnow()
    [old] = store.claim([first], Owner.current("run-a"), now=now - timedelta(seconds=30))
    [new] = store.claim([second], Owner.current("run-a"), now=now)
    assert store.set_workers({old.attempt_id: "w1", new.attempt_id: "w2"}, now=now + timedelta(seconds=10)) == {
        old.attempt_id, new.attempt_id}  # fmt: skip
    assert (notice(store.db, first).worker, notice(store.db, second).worker) == ("w1", "w2")
    held = store.set_workers({old.attempt_id: "w2", new.attempt_id: "w1"}, now=now + timedelta(seconds=45))
    assert held == {new.attempt_id}, "the lapsed one must not write at all"
    assert notice(store.db, first).worker == "w1"


def test_give_back_makes_a_notice_ready_without_counting_the_attempt(store: Store, sample: Registration) -> None:
    [first, second, *_] = ids(store.db, "Object")
    claims = store.claim([first, second], Owner.current("run-a"))
    store.finish(claims[1].attempt_id, "failed", error="a bad record")
    assert store.give_back([c.attempt_id for c in claims], "worker w2 went away") == {first}, "only held ones"
    row = notice(store.db, first)
    assert (row.status, row.attempts, row.locked_by, row.error) == ("ready", 0, None, "worker w2 went away")
    with store.db.read() as connection:
        outcome = connection.execute(
            select(attempts.c.outcome, attempts.c.error).where(attempts.c.id == claims[0].attempt_id)
        ).one()
    assert tuple(outcome) == ("released", "worker w2 went away")
    assert notice(store.db, second).status == "failed", "a finished notice is left alone"


def test_reclaim_fails_notices_whose_lease_expired(store: Store, sample: Registration) -> None:
    [first, second, *_] = ids(store.db, "Object")
    now = utcnow()
    store.claim([first], Owner("run-old", "elsewhere", 1), now=now - timedelta(seconds=120))
    store.claim([second], Owner("run-live", "elsewhere", 1), now=now)
    [released] = store.reclaim(host="here", now=now)
    assert (released.notice_id, released.run_id) == (first, "run-old")
    row = notice(store.db, first)
    assert (row.status, row.locked_by) == ("failed", None)
    assert row.error.startswith("stale: lease of run run-old expired at ")
    assert notice(store.db, second).status == "running"


def test_release_run_frees_every_lock_of_a_run_by_hand(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    store.claim(objects, Owner.current("run-dead"))
    released = store.release_run("run-dead", "its pod was deleted")
    assert sorted(r.notice_id for r in released) == objects
    assert notice(store.db, objects[0]).error == "released by hand: its pod was deleted"
    assert [c.notice_id for c in store.claim(objects, Owner.current("run-b"))] == objects


def test_reset_makes_failed_and_done_notices_ready_with_a_fresh_budget(store: Store, sample: Registration) -> None:
    [first, second, third, *_] = ids(store.db, "Object")
    claims = store.claim([first, second, third], Owner.current("run-a"))
    store.finish(claims[0].attempt_id, "done", rows=5)
    store.finish(claims[1].attempt_id, "failed", error="boom")
    assert store.reset([first, second, third]) == 2, "a running notice is left alone"
    assert [(notice(store.db, i).status, notice(store.db, i).attempts) for i in (first, second, third)] == [
        ("ready", 0),
        ("ready", 0),
        ("running", 1),
    ]


def test_set_case_state_names_an_unknown_case(store: Store, sample: Registration) -> None:
    with pytest.raises(Unknown, match="no case nope; `loader-assets status` lists them"):
        store.set_case_state("nope", "paused")


@pytest.mark.parametrize("content", [b"not a database at all" * 300, b"SQLite format 3\x00" + b"garbage" * 500])
def test_a_damaged_catalog_file_is_named_with_what_to_do(tmp_path, content: bytes) -> None:
    from loader_assets.catalog.database import CatalogDB
    from loader_assets.problems import CatalogDown

    (tmp_path / "catalog.sqlite").write_bytes(content)
    with pytest.raises(CatalogDown, match=r"catalog.sqlite is damaged \(.*\); restore its file from a backup"):
        CatalogDB(f"sqlite:///{tmp_path / 'catalog.sqlite'}")

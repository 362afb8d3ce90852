"""Interleavings of lease holders, claimers and the sweeper, each forced by a hook at the racy point."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import attempts, notices
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.time import utcnow
from loader_assets_tests.catalog.rows import add_case

LEASE = timedelta(seconds=60)


def holder(db: CatalogDB, notice_id: int) -> tuple[str, str | None]:
    with db.read() as connection:
        row = connection.execute(select(notices.c.status, notices.c.locked_by).where(notices.c.id == notice_id)).one()
    return row.status, row.locked_by


def outcomes(db: CatalogDB, notice_id: int) -> list[tuple[str, str]]:
    with db.read() as connection:
        rows = connection.execute(
            select(attempts.c.run_id, attempts.c.outcome).where(attempts.c.notice == notice_id).order_by(attempts.c.id)
        ).all()
    return [(row.run_id, row.outcome) for row in rows]


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)  # SQLite serialises whole transactions
def test_a_sweep_that_saw_a_lease_expire_leaves_the_fresh_claim_taken_meanwhile(catalog_db: CatalogDB) -> None:
    [notice] = add_case(catalog_db, "c", notices=1)
    store = Store(catalog_db, lease_seconds=LEASE.total_seconds())
    start = utcnow()
    store.claim([notice], Owner("run-a", "host-a", 1), now=start)
    expired = start + 2 * LEASE  # run A went silent; B takes the lapsed lease while the sweeper decides

    def claim_meanwhile() -> None:
        assert store.claim([notice], Owner("run-b", "host-b", 2), now=expired)

    released = store.reclaim(now=expired, after_select=claim_meanwhile)

    assert released == [], "the sweeper released nothing: what it saw expire was already taken over"
    assert holder(catalog_db, notice) == ("running", "run-b")
    assert outcomes(catalog_db, notice) == [("run-a", "lost"), ("run-b", "running")]


def test_heartbeats_renew_per_attempt_so_a_dead_steps_leases_lapse_beside_its_siblings(catalog_db: CatalogDB) -> None:
    dead, alive = add_case(catalog_db, "c", notices=2)
    store = Store(catalog_db, lease_seconds=LEASE.total_seconds())
    start = utcnow()
    # Two steps of one run (a multiprocess executor): same run id, each its own attempt.
    [dead_claim] = store.claim([dead], Owner("run-1", "host", 10), now=start)
    [alive_claim] = store.claim([alive], Owner("run-1", "host", 11), now=start)

    later = start + LEASE / 2
    assert store.heartbeat([alive_claim.attempt_id], now=later) == {alive}, "the live step renews its own only"
    swept = store.reclaim(host="elsewhere", now=start + LEASE + timedelta(seconds=1))

    assert [r.notice_id for r in swept] == [dead], "the dead step's lease lapsed; its sibling's did not"
    assert holder(catalog_db, alive) == ("running", "run-1")
    assert dead_claim.attempt_id != alive_claim.attempt_id

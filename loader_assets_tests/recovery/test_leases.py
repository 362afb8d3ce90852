"""Leases seen from the loader and the sensors: no write under a lost lease, back-off, parking, reset."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.schema import notices
from loader_assets.catalog.store import Owner, utcnow
from loader_assets.cli import main
from loader_assets.defs.jobs import LOAD_JOB
from loader_assets.selection import saved
from loader_assets_tests.conftest import Platform
from loader_assets_tests.defs.test_sensors import requested_ids
from loader_assets_tests.recovery.helpers import (
    ON_POSTGRESQL,
    assert_exact,
    attempt_rows,
    level_notices,
    outcomes,
    sensor_context,
)

pytestmark = ON_POSTGRESQL


def test_an_attempt_whose_lease_was_taken_over_may_not_start_writing(platform: Platform) -> None:
    case = platform.sample_case(chunks=1, rows_per_chunk=2).case
    notice_id = level_notices(platform, case, 1)[0].id
    lease = platform.store.lease
    [frozen] = platform.store.claim([notice_id], Owner.current("frozen"), now=utcnow() - 2 * lease)
    [taker] = platform.store.claim([notice_id], Owner.current("taker"))

    assert platform.store.set_workers({frozen.attempt_id: "worker1", taker.attempt_id: "worker2"}) == {
        taker.attempt_id}  # fmt: skip
    assert [(a.run_id, a.outcome, a.worker) for a in attempt_rows(platform, [notice_id])] == [
        ("frozen", "lost", None),
        ("taker", "running", "worker2"),
    ]
    assert taker.discard_attempts == (frozen.attempt_id,)  # whatever the frozen run wrote goes first


def end_back_off(platform: Platform, notice_id: int) -> None:
    """The retry back-off is over (minutes in real life): the catalog row says so."""
    with platform.store.db.write() as connection:
        connection.execute(update(notices).where(notices.c.id == notice_id).values(retry_after=utcnow()))


def test_a_failing_notice_backs_off_is_parked_after_max_attempts_and_comes_back_after_reset(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOADER_MAX_ATTEMPTS", "2")
    case = platform.sample_case(chunks=2, rows_per_chunk=5, seed=11).case
    level_1 = [n.id for n in level_notices(platform, case, 1)]
    broken = next(n for n in level_notices(platform, case, 1) if n.table == "Object")
    path = case_layouts(platform.store.db, case)[case].root / broken.path
    good = path.read_bytes()
    path.write_bytes(b"1,2\n")  # too few fields: the load is refused, nothing kept
    saved.save(platform.store, "retrying", f"case = '{case}' AND level = 1")
    defs = platform.definitions()
    job, selection = defs.get_job_def(LOAD_JOB), defs.resolve_sensor_def("selection_retrying")

    def tick() -> list[int]:
        """One evaluation of the saved-selection sensor; its runs executed here. Returns the notices requested."""
        requests = selection(sensor_context(platform)).run_requests
        for request in requests:
            job.execute_in_process(
                run_config=request.run_config, instance=platform.instance, tags=request.tags, raise_on_error=False
            )
        return sorted(i for r in requests for i in requested_ids(r))

    def back_off() -> timedelta:
        """From the end of the last attempt to the earliest retry."""
        last = attempt_rows(platform, [broken.id])[-1]
        with platform.store.db.read() as connection:
            retry_after = connection.execute(select(notices.c.retry_after).where(notices.c.id == broken.id)).scalar()
        return retry_after - last.finished_at

    assert tick() == level_1
    assert back_off() == timedelta(minutes=1)
    assert tick() == []  # backing off
    end_back_off(platform, broken.id)
    assert tick() == [broken.id]
    assert back_off() == timedelta(minutes=2)
    end_back_off(platform, broken.id)
    assert tick() == []  # parked: LOADER_MAX_ATTEMPTS failures
    assert outcomes(platform, [broken.id])[broken.id] == ["failed", "failed"]

    path.write_bytes(good)
    capsys.readouterr()
    assert main(["reset", str(broken.id)]) == 0
    assert capsys.readouterr().out.strip() == "1 notice ready again"
    assert tick() == [broken.id]
    assert outcomes(platform, [broken.id])[broken.id] == ["failed", "failed", "done"]
    assert_exact(platform, case, 1)

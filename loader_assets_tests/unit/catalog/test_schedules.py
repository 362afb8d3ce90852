"""Schedules: pending when added, highest priority first, submitted once runs exist for their notices."""

from __future__ import annotations

import pytest

from loader_assets.catalog import schedules
from loader_assets.catalog.database import CatalogDB
from loader_assets.problems import Unknown


def test_a_schedule_goes_from_pending_to_submitted_with_its_run_keys(db: CatalogDB) -> None:
    schedule_id = schedules.add(db, [3, 1, 2], priority=5, force=True, query="table = 'Object'")
    added = schedules.get(db, schedule_id)
    assert (added.state, added.notice_ids, added.priority, added.force) == ("pending", [3, 1, 2], 5, True)
    assert (added.query, added.runs, added.submitted_at) == ("table = 'Object'", None, None)

    schedules.record_runs(db, added, ["run-b", "run-a"], [3, 1, 2])
    submitted = schedules.get(db, schedule_id)
    assert (submitted.state, submitted.runs) == ("submitted", ["run-a", "run-b"])
    assert submitted.submitted_at >= submitted.created_at
    assert schedules.pending(db, limit=10) == []


def test_a_schedule_stays_pending_while_some_of_its_notices_wait(db: CatalogDB) -> None:
    schedule_id = schedules.add(db, [1, 2, 3, 4])
    schedules.record_runs(db, schedules.get(db, schedule_id), ["level-1-run"], [1, 2, 99])
    waiting = schedules.get(db, schedule_id)
    assert (waiting.state, waiting.waiting_ids, waiting.runs) == ("pending", [3, 4], ["level-1-run"])
    assert waiting.submitted_ids == [1, 2], "a run's notices outside the schedule are not its own"

    schedules.record_runs(db, waiting, ["level-1-run", "level-3-run"], [1, 2, 3, 4])
    submitted = schedules.get(db, schedule_id)
    assert (submitted.state, submitted.waiting_ids) == ("submitted", [])
    assert submitted.runs == ["level-1-run", "level-3-run"]


def test_pending_lists_highest_priority_first_then_oldest(db: CatalogDB) -> None:
    low = schedules.add(db, [1])
    high = schedules.add(db, [2], priority=9)
    also_low = schedules.add(db, [3])
    assert [s.id for s in schedules.pending(db, limit=10)] == [high, low, also_low]
    assert [s.id for s in schedules.pending(db, limit=2)] == [high, low]


def test_get_of_an_unknown_schedule_names_it(db: CatalogDB) -> None:
    with pytest.raises(Unknown, match="no schedule 42"):
        schedules.get(db, 42)

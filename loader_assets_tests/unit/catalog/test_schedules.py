"""Schedules: pending when added, highest priority first, submitted with their run keys."""

from __future__ import annotations

import pytest

from loader_assets.catalog import schedules
from loader_assets.catalog.engine import CatalogDB


def test_a_schedule_goes_from_pending_to_submitted_with_its_run_keys(db: CatalogDB) -> None:
    schedule_id = schedules.add(db, [3, 1, 2], priority=5, force=True, query="table = 'Object'")
    added = schedules.get(db, schedule_id)
    assert (added.state, added.notice_ids, added.priority, added.force) == ("pending", [3, 1, 2], 5, True)
    assert (added.query, added.runs, added.submitted_at) == ("table = 'Object'", None, None)

    schedules.submit(db, added, ["load:c1:1:w1:abc", "load:c1:1:w2:def"], [3, 1, 2])
    submitted = schedules.get(db, schedule_id)
    assert (submitted.state, submitted.runs) == ("submitted", ["load:c1:1:w1:abc", "load:c1:1:w2:def"])
    assert submitted.submitted_at >= submitted.created_at
    assert schedules.pending(db, limit=10) == []


def test_a_schedule_stays_pending_while_some_of_its_notices_wait(db: CatalogDB) -> None:
    schedule_id = schedules.add(db, [1, 2, 3, 4])
    schedules.submit(db, schedules.get(db, schedule_id), ["level-1-run"], [1, 2])
    waiting = schedules.get(db, schedule_id)
    assert (waiting.state, waiting.waiting_ids, waiting.runs) == ("pending", [3, 4], ["level-1-run"])

    schedules.submit(db, waiting, ["level-3-run"], [3, 4])
    submitted = schedules.get(db, schedule_id)
    assert (submitted.state, submitted.waiting_ids) == ("submitted", [])
    assert submitted.runs == ["level-1-run", "level-3-run"]


def test_pending_lists_highest_priority_first_then_oldest(db: CatalogDB) -> None:
    low = schedules.add(db, [1])
    high = schedules.add(db, [2], priority=9)
    also_low = schedules.add(db, [3])
    assert [s.id for s in schedules.pending(db, limit=10)] == [high, low, also_low]
    assert [s.id for s in schedules.pending(db, limit=2)] == [high, low]


def test_get_of_an_unknown_schedule_raises_key_error(db: CatalogDB) -> None:
    with pytest.raises(KeyError, match="no schedule 42"):
        schedules.get(db, 42)

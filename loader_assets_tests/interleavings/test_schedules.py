"""A schedule whose planning fails never loses another: each row is submitted with its own run requests."""

from __future__ import annotations

import pytest

from loader_assets.catalog import schedules
from loader_assets.defs import sensors
from loader_assets.defs.sensors import scheduled_loads
from loader_assets.selection import select as select_notices
from loader_assets_tests.conftest import Platform
from loader_assets_tests.defs.test_sensors import sensor_context

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def test_a_schedule_that_fails_to_plan_leaves_the_others_submitted_with_their_runs(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=2).case
    good = select_notices(f"case = '{case}' AND table = 'Object'", store=platform.store).schedule(priority=5)
    bad = select_notices(f"case = '{case}' AND table = 'Filter'", store=platform.store).schedule(priority=1)
    plan = sensors.plan_runs

    def planning_fails_for_the_second(store, cluster, notice_ids, **options):  # type: ignore[no-untyped-def]
        if set(notice_ids) == set(bad.notice_ids):
            raise ConnectionError("czar went away while placing chunks")
        return plan(store, cluster, notice_ids, **options)

    with monkeypatch.context() as patched:
        patched.setattr(sensors, "plan_runs", planning_fails_for_the_second)
        result = scheduled_loads(sensor_context(platform))

    requested = {i for r in result.run_requests for i in r.run_config["ops"]["load_notices_op"]["config"]["notice_ids"]}
    assert requested == set(good.notice_ids), "the good schedule's runs are requested"
    submitted = schedules.get(platform.store.db, good.schedule_id)
    assert (submitted.state, sorted(submitted.runs)) == ("submitted", sorted(r.run_key for r in result.run_requests))
    assert schedules.get(platform.store.db, bad.schedule_id).state == "pending", "the failed one waits for a retry"

    retry = scheduled_loads(sensor_context(platform))
    retried = {i for r in retry.run_requests for i in r.run_config["ops"]["load_notices_op"]["config"]["notice_ids"]}
    assert retried == set(bad.notice_ids) and schedules.get(platform.store.db, bad.schedule_id).state == "submitted"

"""A schedule whose planning fails never holds back another: each row is requested, then submitted, on its own."""

from __future__ import annotations

import pytest

from loader_assets.catalog import schedules
from loader_assets.defs import sensors
from loader_assets.defs.sensors import scheduled_loads
from loader_assets.problems import CzarDown
from loader_assets.selection import select as select_notices
from loader_assets_tests.conftest import Platform
from loader_assets_tests.defs.test_sensors import create_runs, requested_ids, sensor_context

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
            raise CzarDown("the czar (127.0.0.1:1) went away while placing chunks", "start it", "czar")
        return plan(store, cluster, notice_ids, **options)

    with monkeypatch.context() as patched:
        patched.setattr(sensors, "plan_runs", planning_fails_for_the_second)
        result = scheduled_loads(sensor_context(platform))

    requested = {i for r in result.run_requests for i in requested_ids(r)}
    assert requested == set(good.notice_ids), "the good schedule's runs are requested"
    good_runs = create_runs(platform, result.run_requests)

    retry = scheduled_loads(sensor_context(platform))
    retried = {i for r in retry.run_requests for i in requested_ids(r)}
    assert retried == set(bad.notice_ids), "the failed one is planned again, the good one not"
    submitted = schedules.get(platform.store.db, good.schedule_id)
    assert (submitted.state, submitted.runs) == ("submitted", sorted(good_runs))
    create_runs(platform, retry.run_requests)
    scheduled_loads(sensor_context(platform))
    assert schedules.get(platform.store.db, bad.schedule_id).state == "submitted"

"""Through the run queue: the daemon's sensors launch runs from saved selections and schedules."""

from __future__ import annotations

import time

import pytest

from loader_assets.catalog.views import status_counts
from loader_assets.selection import saved, select
from loader_assets_tests.conftest import Platform


def wait_until_done(platform: Platform, case: str, level: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = status_counts(platform.store, case).xs(level, level="level").sum()
        if counts["done"] == counts["total"]:
            return
        time.sleep(2)
    raise AssertionError(f"level {level} of {case} not done: {status_counts(platform.store, case)}")


@pytest.mark.parametrize("catalog_url", ["postgresql"], indirect=True)
def test_a_saved_selection_loads_through_the_daemon_and_the_gate_sensor_validates(
    platform: Platform, dagster_daemon
) -> None:  # type: ignore[no-untyped-def]
    case = platform.sample_case(chunks=3, rows_per_chunk=50).case
    saved.save(platform.store, "everything_ready", f"case = '{case}'", priority=5)
    wait_until_done(platform, case, 1)
    wait_until_done(platform, case, 3)
    assert set(select(f"case = '{case}'", store=platform.store).frame["status"]) == {"done"}

"""A frozen selection of scattered chunks loads exactly those chunks, in a handful of `load_notices` runs."""

from __future__ import annotations

import dagster as dg
import pytest
from sqlalchemy import select

from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.schema import notices
from loader_assets.engine.plan import plan_runs
from loader_assets_tests.conftest import Platform


def notice_states(platform: Platform, case: str) -> dict[int, tuple]:
    """Everything a load changes on a notice, by id."""
    n = notices.c
    with platform.store.db.read() as connection:
        rows = connection.execute(
            select(n.id, n.status, n.attempts, n.attempt_id, n.worker, n.rows, n.updated_at).where(n.case == case)
        ).all()
    return {row.id: tuple(row[1:]) for row in rows}


def spread(items: list[int], count: int) -> list[int]:
    """`count` items evenly spaced over the sorted list, first and last included."""
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


@pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)
def test_notices_of_five_chunks_scattered_over_a_thousand_load_alone(platform: Platform) -> None:
    registration = platform.sample_case(chunks=1000, rows_per_chunk=1)
    case = registration.case
    chosen = spread(sorted(registration.chunks), 5)
    wanted = notice_ids(platform.store.db, case, table="Object", chunks=chosen)  # each chunk and its overlap
    before = notice_states(platform, case)

    plans, _ = plan_runs(platform.store, platform.cluster, wanted)
    outcomes = [platform.run_plan(plan) for plan in plans]

    assert all(platform.succeeded(outcome.run_id) for outcome in outcomes)
    assert len(plans) <= len(platform.cluster.workers)  # one run per worker, not one per chunk
    after = notice_states(platform, case)
    assert {i for i in after if after[i] != before[i]} == set(wanted)
    assert {after[i][0] for i in wanted} == {"done"}
    materialized = platform.instance.get_materialized_partitions(dg.AssetKey([case, "Object"]))
    assert materialized == {str(chunk) for chunk in chosen}

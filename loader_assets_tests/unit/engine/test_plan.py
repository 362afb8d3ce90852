"""Plans of runs: grouping by case, level and worker, cutting into runs, and stable run keys."""

from __future__ import annotations

from loader_assets import tags
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Store
from loader_assets.engine.plan import RunPlan, plan_runs, split_groups
from loader_assets.engine.targets import ALL_WORKERS
from loader_assets_tests.catalog.rows import add_case
from loader_assets_tests.unit.fakes import FakeCluster
from loader_assets_tests.unit.helpers import CASE, ids


def test_run_key_is_stable_for_the_same_attempts_and_changes_with_an_attempt() -> None:
    plan = RunPlan("c1", 1, "w1", (4, 5, 6))
    key = plan.run_key("load", {4: 0, 5: 1, 6: 0})
    assert key == plan.run_key("load", {6: 0, 5: 1, 4: 0})
    assert key.startswith("load:c1:1:w1:")
    assert key != plan.run_key("load", {4: 0, 5: 2, 6: 0}), "a retry gets a new run"
    assert key != RunPlan("c1", 1, "w2", (4, 5, 6)).run_key("load", {4: 0, 5: 1, 6: 0})


def test_split_groups_cuts_at_max_per_run_in_chunk_order_with_the_best_priority() -> None:
    members = [(30, 1, 0), (10, 2, 7), (20, 3, 0), (10, 4, 0), (40, 5, 1)]  # (chunk, notice id, priority)
    plans = split_groups({("c1", 1, "w1"): members}, priority=0, force=False, max_per_run=2)
    assert [p.notice_ids for p in plans] == [(2, 4), (3, 1), (5,)]
    assert [p.priority for p in plans] == [7, 0, 1]
    assert split_groups({("c1", 1, "w1"): members}, 3, True, 10)[0].priority == 7
    assert split_groups({("c1", 1, "w1"): [(1, 9, 0)]}, 3, True, 10)[0] == RunPlan("c1", 1, "w1", (9,), 3, True)


def test_split_groups_orders_groups_and_puts_regular_tables_first() -> None:
    groups = {("c2", 1, "w1"): [(5, 20, 0)], ("c1", 3, "w1"): [(5, 11, 0)], ("c1", 1, ALL_WORKERS): [(None, 1, 0)]}
    plans = split_groups(groups, 0, False, 10)
    assert [(p.case, p.level, p.worker) for p in plans] == [("c1", 1, ALL_WORKERS), ("c1", 3, "w1"), ("c2", 1, "w1")]


def test_plan_runs_groups_a_case_by_level_and_worker_with_its_tags(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    everything = notice_ids(store.db, CASE)
    plans, attempts = plan_runs(store, cluster, everything, priority=2)
    assert cluster.databases == {CASE: (340, 3, 0.01667)}
    first, second = sample.chunks
    assert cluster.placement == {first: "w1", second: "w2"}
    assert [(p.level, p.worker, len(p.notice_ids)) for p in plans] == [
        (1, ALL_WORKERS, 1),
        (1, "w1", 2),
        (1, "w2", 2),
        (3, "w1", 2),
        (3, "w2", 2),
    ]
    assert plans[0].notice_ids == tuple(ids(store.db, "Filter"))
    described = f"load case {CASE} level 1 on w1: {len(plans[1].notice_ids)} notices"
    assert plans[1].tags == {tags.CASE: CASE, tags.LEVEL: "1", tags.WORKER: "w1", tags.PRIORITY: "2",
                             tags.DESCRIPTION: described}  # fmt: skip
    assert attempts == dict.fromkeys(everything, 0)


def test_plan_runs_keeps_cases_apart_and_placed_chunks_in_place(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    other = add_case(store.db, "c2", notices=3)  # chunks 0, 1, 2 of database db_c2
    plan_runs(store, cluster, ids(store.db, "Object"))
    placed = dict(cluster.placement)
    plans, _ = plan_runs(store, cluster, [*other, *notice_ids(store.db, CASE)], max_per_run=1)
    assert {k: cluster.placement[k] for k in placed} == placed, "placed chunks never move"
    assert {p.case for p in plans} == {CASE, "c2"}
    assert all(len(p.notice_ids) == 1 for p in plans)
    assert sorted(i for p in plans if p.case == "c2" for i in p.notice_ids) == other

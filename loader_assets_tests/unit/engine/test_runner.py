"""`load_case` level by level with a fake executor and a fake cluster over a registered sample case."""

from __future__ import annotations

import pytest

from loader_assets.catalog.gates import gate
from loader_assets.catalog.notices import status_tally
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Store
from loader_assets.engine.runner import LevelFailed, RunOutcome, load_case
from loader_assets.problems import CasePaused, Unknown
from loader_assets_tests.unit.fakes import FakeCluster, FakeExecutor, Told
from loader_assets_tests.unit.helpers import CASE


def test_the_four_levels_pass_in_order(store: Store, sample: Registration, cluster: FakeCluster) -> None:
    executor = FakeExecutor(store)
    told = Told()
    results = load_case(CASE, executor, store, cluster, progress=told)
    assert [r.level for r in results] == [1, 2, 3, 4]
    assert [r.message for r in results] == [
        "5 notices done in 1 run",
        "1 table validated",
        "4 notices done in 1 run",
        "2 tables validated",
    ]
    # Each level in one run over every worker (its loader loads into all of them at once).
    assert [(p.level, p.worker) for p in executor.plans] == [(1, "all"), (3, "all")]
    assert executor.validated == [(2, "Object"), (4, "ForcedSource"), (4, "Source")]
    assert executor.load_follows == [(2, True), (4, False)], "level 3's run may be prepared while level 2 runs"
    assert status_tally(store.db, CASE) == {"done": 9}
    assert gate(store.db, CASE, 4, "Source").status == "passed"
    assert told.lines[0] == "level 1: 5 notices done in 1 run"
    assert told.started == [(1, 5), (2, 1), (3, 4), (4, 2)], "each level says how much it has before it starts"


def test_a_load_that_ends_with_a_validation_prepares_no_run_after_it(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    executor = FakeExecutor(store)
    load_case(CASE, executor, store, cluster, levels_to_run=(1, 2))
    assert executor.load_follows == [(2, False)], "`load --level 2` loads nothing after it"


def test_a_failed_director_check_stops_the_case_before_level_3(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    executor = FakeExecutor(store, failing_checks={"Object": ["objectids_unique"]})
    with pytest.raises(LevelFailed, match="level 2 of case c1 failed for Object: check objectids_unique failed"):
        load_case(CASE, executor, store, cluster)
    assert {p.level for p in executor.plans} == {1}, "level 3 never ran"
    assert executor.validated == [(2, "Object")]
    assert status_tally(store.db, CASE, level=3) == {"ready": 4}


def test_a_validation_that_records_nothing_fails_the_level(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    executor = FakeExecutor(store)
    executor.run_validation = lambda *_, **__: RunOutcome("crashed")  # type: ignore[method-assign]  # nothing recorded
    with pytest.raises(LevelFailed, match="failed for Object: validation did not run to the end"):
        load_case(CASE, executor, store, cluster)


def test_loading_children_before_the_director_gate_fails_naming_the_gate(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    executor = FakeExecutor(store)
    with pytest.raises(LevelFailed) as failure:
        load_case(CASE, executor, store, cluster, levels_to_run=(3,))
    assert failure.value.cause.startswith("level 3 of case c1 is not done: 4 ready; first: step3_1/")
    assert failure.value.cause.endswith(": level 2 of case c1 (Object) is pending")


def test_failed_notices_fail_the_level_with_the_first_error(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    executor = FakeExecutor(store, load_error="on w1: LOAD DATA: bad row 3")
    with pytest.raises(LevelFailed, match=r"5 failed; first: step1_1/Object/.*: on w1: LOAD DATA: bad row 3"):
        load_case(CASE, executor, store, cluster, levels_to_run=(1,))


def test_a_paused_case_fails_before_anything_runs(store: Store, sample: Registration, cluster: FakeCluster) -> None:
    store.set_case_state(CASE, "paused")
    executor = FakeExecutor(store)
    with pytest.raises(CasePaused, match=r"case c1 is paused: nothing is claimed; `loader-assets resume c1`"):
        load_case(CASE, executor, store, cluster)
    assert executor.plans == []


def test_an_unknown_case_is_refused_before_any_level(store: Store, cluster: FakeCluster) -> None:
    with pytest.raises(Unknown, match="no case nope"):
        load_case("nope", FakeExecutor(store), store, cluster)


def test_running_a_loaded_case_again_loads_nothing(store: Store, sample: Registration, cluster: FakeCluster) -> None:
    load_case(CASE, FakeExecutor(store), store, cluster)
    again = FakeExecutor(store)
    results = load_case(CASE, again, store, cluster, levels_to_run=(1, 3))
    assert [r.message for r in results] == ["5 notices done in 0 runs", "4 notices done in 0 runs"]
    assert again.plans == []

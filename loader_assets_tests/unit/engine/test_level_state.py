"""Where a level stands: loaded, described, and due for validation."""

from __future__ import annotations

from datetime import datetime

import pytest

from loader_assets.catalog.gates import Validator, begin_validation, gate, renew_validation
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.time import utcnow
from loader_assets.engine.level_state import (
    LevelNotLoaded,
    describe,
    is_loaded,
    require_loaded,
    validation_due,
    validator_alive,
)
from loader_assets_tests.gates import decide_gate
from loader_assets_tests.unit.helpers import CASE, ids


def load_at(store: Store, notice_ids: list[int], when: datetime, *, force: bool = False) -> None:
    for claim in store.claim(notice_ids, Owner.current("run-a"), force=force, now=when):
        store.finish(claim.attempt_id, "done", rows=5, now=when)


def test_a_tally_is_loaded_when_nothing_but_done_is_left() -> None:
    assert is_loaded({"done": 4})
    assert is_loaded({}), "a table without notices has nothing to load"
    assert not is_loaded({"done": 3, "running": 1})


def test_describe_lists_statuses_in_order_or_says_no_notices() -> None:
    assert describe({"ready": 1, "done": 3, "failed": 2}) == "3 done, 2 failed, 1 ready"
    assert describe({"ready": 1, "done": 3}, without_done=True) == "1 ready"
    assert describe({}) == "no notices"


def test_require_loaded_names_what_is_left(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    load_at(store, objects[:1], utcnow())
    with pytest.raises(LevelNotLoaded, match="level 1 of case c1 is not finished for Object: 3 ready"):
        require_loaded(store.db, CASE, "Object", 1)
    load_at(store, objects, utcnow())
    require_loaded(store.db, CASE, "Object", 1)


def due_key(store: Store, table: str = "Object", level: int = 2, **options: object) -> tuple[int, int] | None:
    """What the gate sensor's run key is built from: the gate's generation and validations started."""
    verdict = validation_due(store.db, CASE, table, level, **options)  # type: ignore[arg-type]
    return None if verdict is None else (verdict.generation, verdict.validations)


def test_validation_is_due_at_each_new_generation_of_the_gate(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    assert due_key(store) is None, "not loaded yet"
    load_at(store, objects, utcnow())
    first = due_key(store)
    assert first is not None, "loaded, gate pending"
    assert due_key(store) == first, "asked twice: the same run key"

    decide_gate(store, CASE, "Object", "passed")
    assert due_key(store) is None, "the verdict judged this load"

    load_at(store, objects[:1], utcnow(), force=True)
    again = due_key(store)
    assert again is not None and again != first, "a reload reopens the gate at a new generation"


def test_a_dead_validation_is_asked_again_under_a_new_key(store: Store, sample: Registration) -> None:
    load_at(store, ids(store.db, "Object"), utcnow())
    first = due_key(store)
    begin_validation(store.db, CASE, 2, "Object", Validator("run-v", "elsewhere", 1), store.lease)
    assert due_key(store) is None, "a live validation holds the gate"
    retry = due_key(store, holder_alive=lambda gate: gate.validating_run != "run-v")
    assert retry is not None and retry != first, "its holder died: the lock is released, the key moved on"
    assert gate(store.db, CASE, 2, "Object").validating_run is None


def test_a_validation_on_another_host_holds_the_gate_while_it_renews_its_lease(
    store: Store, sample: Registration
) -> None:
    load_at(store, ids(store.db, "Object"), utcnow())
    start = utcnow()
    holder = Validator("load-elsewhere", "another-host", 1)  # its process cannot be seen from here
    begin_validation(store.db, CASE, 2, "Object", holder, store.lease, now=start)
    later = start + store.lease * 0.75
    assert renew_validation(store.db, CASE, 2, "Object", holder.run_id, store.lease, now=later)
    assert validator_alive(gate(store.db, CASE, 2, "Object"), now=start + store.lease * 1.5), "renewed: held"
    held = due_key(store, holder_alive=lambda verdict: validator_alive(verdict, now=start + store.lease * 1.5))
    assert held is None and gate(store.db, CASE, 2, "Object").validating_run == holder.run_id

    # It stops renewing (killed): a lease after its last renewal, the lock is dead and taken back.
    assert not validator_alive(gate(store.db, CASE, 2, "Object"), now=later + store.lease * 1.01)
    assert due_key(store, holder_alive=lambda verdict: validator_alive(verdict, now=later + store.lease * 2))
    assert gate(store.db, CASE, 2, "Object").validating_run is None
    assert not renew_validation(store.db, CASE, 2, "Object", holder.run_id, store.lease), "resumed: it lost the lock"


def test_a_child_is_due_only_once_its_directors_gate_passed(store: Store, sample: Registration) -> None:
    load_at(store, ids(store.db, "Object"), utcnow())
    decide_gate(store, CASE, "Object", "passed")
    load_at(store, ids(store.db, "Source"), utcnow())
    assert due_key(store, "Source", 4, director="Object") is not None
    load_at(store, ids(store.db, "Object")[:1], utcnow(), force=True)  # the director reloads: its gate reopens
    assert due_key(store, "Source", 4, director="Object") is None, "not against a director that is not passed"


def test_a_failed_verdict_is_not_due_again_without_a_new_load(store: Store, sample: Registration) -> None:
    start = utcnow()
    load_at(store, ids(store.db, "Object"), start)
    decide_gate(store, CASE, "Object", "failed", {"failed_checks": ["objectids_unique"]})
    assert due_key(store) is None

"""The claim rules: every refusal with its message, and what automatic scheduling honours on top."""

from __future__ import annotations

from datetime import timedelta

from loader_assets.catalog.claims import ClaimContext, Refusal, claimable, schedulable
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.time import utcnow
from loader_assets_tests.gates import decide_gate
from loader_assets_tests.unit.helpers import CASE, ids, label, passing


def test_a_notice_held_under_a_live_lease_is_refused_naming_its_holder(store: Store, sample: Registration) -> None:
    [first, *_] = ids(store.db, "Object")
    store.claim([first], Owner("run-a", "host-a", 4242))
    assert store.claim([first], Owner.current("run-b")) == []
    refused = store.why_not_claimed([first])[first]
    assert refused.reason is Refusal.HELD
    assert refused.message.startswith("held by run run-a (host-a:4242) since ")
    assert "lease until" in str(refused)


def test_a_done_notice_is_refused_unless_forced(store: Store, sample: Registration) -> None:
    [first, *_] = ids(store.db, "Object")
    [claim] = store.claim([first], Owner.current("run-a"))
    store.finish(claim.attempt_id, "done", rows=5)
    assert store.claim([first], Owner.current("run-b")) == []
    refused = store.why_not_claimed([first])[first]
    assert (refused.reason, refused.message) == (Refusal.DONE, "already done by run run-a (force to load it again)")
    no_rule = store.why_not_claimed([first], force=True)[first]  # no rule refuses a forced claim: a race took it
    assert (no_rule.reason, no_rule.message) == (Refusal.RACED, "changed while claiming; try again")
    [forced] = store.claim([first], Owner.current("run-b"), force=True)
    assert forced.discard_attempts == (claim.attempt_id,), "the done attempt's rows go before reloading"


def test_a_paused_case_gives_no_claims(store: Store, sample: Registration) -> None:
    objects = ids(store.db, "Object")
    store.set_case_state(CASE, "paused")
    assert store.claim(objects, Owner.current("run-a"), force=True) == []
    refused = store.why_not_claimed(objects)[objects[0]]
    assert (refused.reason, refused.message) == (Refusal.PAUSED, "case c1 is paused")
    store.set_case_state(CASE, "active")
    assert len(store.claim(objects, Owner.current("run-a"))) == len(objects)


def test_children_are_refused_until_the_director_gate_passed(store: Store, sample: Registration) -> None:
    sources = ids(store.db, "Source")
    assert store.claim(sources, Owner.current("run-a")) == []
    refused = store.why_not_claimed(sources)[sources[0]]
    assert (refused.reason, refused.message) == (Refusal.GATE_CLOSED, "level 2 of case c1 (Object) is pending")
    decide_gate(store, CASE, "Object", "passed")
    assert [c.notice_id for c in store.claim(sources, Owner.current("run-a"))] == sources


def test_a_level_1_notice_does_not_wait_for_any_gate(store: Store, sample: Registration) -> None:
    filters = ids(store.db, "Filter")
    assert [c.notice_id for c in store.claim(filters, Owner.current("run-a"))] == filters


def test_an_unknown_id_is_refused_as_no_such_notice(store: Store, sample: Registration) -> None:
    refused = store.why_not_claimed([999_999])[999_999]
    assert (refused.reason, refused.message) == (Refusal.UNKNOWN, "no such notice")


def test_a_claim_takes_over_an_expired_lease_but_scheduling_leaves_it_to_the_sweeper(
    store: Store, sample: Registration
) -> None:
    [first, *_] = ids(store.db, "Object")
    now = utcnow()
    [old] = store.claim([first], Owner.current("run-a"), now=now - timedelta(seconds=120))  # lease is 60 s
    assert first in passing(store.db, claimable(ClaimContext(now)))
    assert first not in passing(store.db, schedulable(now, max_attempts=5))
    [new] = store.claim([first], Owner.current("run-b"), now=now)
    assert new.discard_attempts == (old.attempt_id,), "the old attempt's rows are dropped before loading"
    assert not store.finish(old.attempt_id, "done"), "the loser cannot finish"


def test_parked_and_backing_off_only_refuse_automatic_scheduling(store: Store, sample: Registration) -> None:
    [first, *_] = ids(store.db, "Object")
    now = utcnow()
    [claim] = store.claim([first], Owner.current("run-a"), now=now)
    store.finish(claim.attempt_id, "failed", error="LOAD DATA: bad row", now=now)  # retry after 1 minute
    automatic = ClaimContext(now, automatic=True, max_attempts=5)
    assert label(store.db, first, automatic) == Refusal.BACKING_OFF.value
    assert label(store.db, first, ClaimContext(now + timedelta(minutes=2), automatic=True, max_attempts=5)) is None
    assert label(store.db, first, ClaimContext(now + timedelta(minutes=2), automatic=True, max_attempts=1)) == "parked"
    assert label(store.db, first, ClaimContext(now)) is None, "an explicit claim ignores both"
    assert [c.notice_id for c in store.claim([first], Owner.current("run-b"), now=now)] == [first]


def test_first_refusal_orders_paused_gate_closed_parked_backing_off(store: Store, sample: Registration) -> None:
    [source, *_] = ids(store.db, "Source")
    now = utcnow()
    decide_gate(store, CASE, "Object", "passed")
    [claim] = store.claim([source], Owner.current("run-a"), now=now)
    store.finish(claim.attempt_id, "failed", error="boom", now=now)  # attempts 1, backing off
    decide_gate(store, CASE, "Object", "failed", {"failed_checks": ["objectids_unique"]})
    store.set_case_state(CASE, "paused")
    ctx = ClaimContext(now, automatic=True, max_attempts=1)
    seen = [label(store.db, source, ctx)]
    store.set_case_state(CASE, "active")
    seen.append(label(store.db, source, ctx))
    decide_gate(store, CASE, "Object", "passed")
    seen.append(label(store.db, source, ctx))
    seen.append(label(store.db, source, ClaimContext(now, automatic=True, max_attempts=5)))
    assert seen == ["case paused", "gate closed", "parked", "backing off"]

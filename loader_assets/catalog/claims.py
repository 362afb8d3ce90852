"""May this notice be claimed? One ordered list of rules, each with the refusal it gives.

Everything that asks derives from `RULES`: the claim statement (`claimable`), what sensors may hand to runs
(`schedulable`, which also honours back-off and parking), the reason a notice was not taken
(`refusal_of`, for the operator) and the per-reason counts of a selection's summary (`first_refusal`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, not_, or_, select, true
from sqlalchemy import case as sql_case

from loader_assets import levels
from loader_assets.catalog.gates import closed_gate_reason, director_gate_passed
from loader_assets.catalog.schema import attempts, case_state, cases, notices

FREE_STATUSES = ("ready", "failed")


class Refusal(enum.Enum):
    """Why a notice was not claimed; the value is the short label selections count by."""

    HELD = "held"
    DONE = "done"
    LOCKED = "locked"
    PAUSED = "case paused"
    GATE_CLOSED = "gate closed"
    PARKED = "parked"
    BACKING_OFF = "backing off"
    RACED = "changed while claiming"
    UNKNOWN = "no such notice"


@dataclass(frozen=True)
class ClaimContext:
    """Who asks: a claim (`force` also takes done notices) or a sensor choosing what to request (`automatic`)."""

    now: datetime
    force: bool = False
    automatic: bool = False
    max_attempts: int = 0  # automatic only: after this many failures a notice is parked


@dataclass(frozen=True)
class Rule:
    refusal: Refusal
    allows: Callable[[ClaimContext], ColumnElement[bool]]  # SQL on `notices`: the rule lets the notice through


def _not_held(ctx: ClaimContext) -> ColumnElement[bool]:
    # A claim may take over a lapsed lease; a sensor leaves that to the sweeper.
    if ctx.automatic:
        return notices.c.status != "running"
    return or_(notices.c.status != "running", notices.c.lease_until < ctx.now)


def _not_done(ctx: ClaimContext) -> ColumnElement[bool]:
    return true() if ctx.force and not ctx.automatic else notices.c.status != "done"


def _unlocked(_ctx: ClaimContext) -> ColumnElement[bool]:
    return or_(notices.c.locked_by.is_(None), notices.c.status == "running")


def _case_active(_ctx: ClaimContext) -> ColumnElement[bool]:
    return case_active()


def case_active() -> ColumnElement[bool]:
    """The notice's case is `active` (not paused, registering or being dropped)."""
    return notices.c.case.in_(select(cases.c.case).where(case_state() == "active"))


def _gate_open(_ctx: ClaimContext) -> ColumnElement[bool]:
    gated = [level for level in levels.LOAD_LEVELS if levels.waits_for_director_gate(level)]
    return or_(notices.c.level.not_in(gated), director_gate_passed())


def _not_parked(ctx: ClaimContext) -> ColumnElement[bool]:
    return notices.c.attempts < ctx.max_attempts if ctx.automatic else true()


def _not_backing_off(ctx: ClaimContext) -> ColumnElement[bool]:
    if not ctx.automatic:
        return true()
    return or_(notices.c.retry_after.is_(None), notices.c.retry_after <= ctx.now)


RULES = (
    Rule(Refusal.HELD, _not_held),
    Rule(Refusal.DONE, _not_done),
    # What only an operator can fix comes before what passes by itself.
    Rule(Refusal.PAUSED, _case_active),
    Rule(Refusal.GATE_CLOSED, _gate_open),
    Rule(Refusal.PARKED, _not_parked),
    Rule(Refusal.BACKING_OFF, _not_backing_off),
    Rule(Refusal.LOCKED, _unlocked),
)


def claimable(ctx: ClaimContext) -> ColumnElement[bool]:
    """SQL on `notices`: every rule lets the notice through."""
    return and_(*(rule.allows(ctx) for rule in RULES))


def schedulable(now: datetime, max_attempts: int) -> ColumnElement[bool]:
    """SQL on `notices`: what automatic scheduling (sensors) may hand to a run now."""
    return claimable(ClaimContext(now, automatic=True, max_attempts=max_attempts))


def first_refusal(ctx: ClaimContext) -> ColumnElement[str | None]:
    """SQL: the label of the first rule that refuses the notice; NULL when every rule lets it through."""
    return sql_case(*((not_(rule.allows(ctx)), rule.refusal.value) for rule in RULES), else_=None)


class Refused(str):
    """A notice a claim did not take: the sentence naming the holder or the closed gate, and its `reason`."""

    reason: Refusal

    def __new__(cls, reason: Refusal, message: str) -> Refused:
        refused = super().__new__(cls, message)
        refused.reason = reason
        return refused

    @property
    def message(self) -> str:
        return str(self)


def gate_closed() -> ColumnElement[bool]:
    """SQL on `notices`: the notice's level waits for a gate that has not passed."""
    return not_(_gate_open(ClaimContext(datetime.min)))


def parked(max_attempts: int) -> ColumnElement[bool]:
    """SQL on `notices`: failed as often as automatic scheduling allows; waits for an operator's reset."""
    return and_(notices.c.status == "failed", not_(_not_parked(ClaimContext(datetime.min, automatic=True,
                                                                             max_attempts=max_attempts))))  # fmt: skip


def held_back(connection: Connection, ids: Iterable[int]) -> set[int]:
    """Of `ids`, the notices a schedule holds back: their level waits for a gate that has not passed, or their case
    is not active (a run requested now would claim nothing, and the schedule would count them as handed out)."""
    ids = list(ids)
    if not ids:
        return set()
    waiting = or_(gate_closed(), not_(case_active()))
    return set(connection.execute(select(notices.c.id).where(notices.c.id.in_(ids), waiting)).scalars())


def refusals(connection: Connection, ids: Iterable[int], ctx: ClaimContext) -> dict[int, Refused]:
    """Why each of `ids` is not claimable now (a notice every rule lets through was taken by a racing claim)."""
    ids = list(ids)
    rows = connection.execute(
        select(
            notices,
            case_state().label("case_state"),
            attempts.c.run_id.label("attempt_run"),
            first_refusal(ctx).label("refusal"),
        )
        .join(cases, cases.c.case == notices.c.case)
        .outerjoin(attempts, attempts.c.id == notices.c.attempt_id)
        .where(notices.c.id.in_(ids))
    ).all()
    gates: dict[tuple[str, str], str | None] = {}  # (case, child table) -> its gate's reason, asked once each
    found = {row.id: _explain(connection, row, gates) for row in rows}
    return {i: found.get(i, Refused(Refusal.UNKNOWN, Refusal.UNKNOWN.value)) for i in ids}


def _explain(connection: Connection, row, gates: dict[tuple[str, str], str | None]) -> Refused:  # type: ignore[no-untyped-def]
    reason = Refusal(row.refusal) if row.refusal else Refusal.RACED
    if reason is Refusal.HELD:
        message = (
            f"held by run {row.locked_by} ({row.owner_host}:{row.owner_pid}) since {row.locked_at:%Y-%m-%d %H:%M:%S}, "
            f"lease until {row.lease_until:%H:%M:%S}"
        )
    elif reason is Refusal.DONE:
        message = f"already done by run {row.attempt_run} (force to load it again)"
    elif reason is Refusal.PAUSED:
        message = f"case {row.case} is {row.case_state}"
    elif reason is Refusal.GATE_CLOSED:
        key = (row.case, row.table)
        if key not in gates:
            gates[key] = closed_gate_reason(connection, row.case, row.table)
        message = gates[key] or Refusal.RACED.value
    elif reason is Refusal.LOCKED:
        message = f"locked by {row.locked_by}"
    else:
        message = f"{reason.value}; try again" if reason is Refusal.RACED else reason.value
    return Refused(reason, message)

"""Schedules: a frozen list of notices handed to the run queue, from creation to submission.

    pending ──(scheduled_loads sensor: a run exists for every notice)──► submitted
       └──(`loader-assets schedule cancel`: what is not submitted yet stays unloaded)──► cancelled

`Selection.schedule()` and `loader-assets schedule` add one; the sensor reads the pending ones, plans runs
for the notices whose level may start (a child level waits for its director's gate: those notices stay in
the schedule until it passes, so a whole case scheduled at once goes level by level). A notice counts as
submitted only once the Dagster instance holds a run for it (`record_runs`): a daemon that dies between its
tick and the runs' creation loses nothing — the next tick asks again, under the same run keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import select, update

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import schedules
from loader_assets.catalog.time import utcnow
from loader_assets.problems import BadInput, Unknown


@dataclass(frozen=True)
class Schedule:
    id: int
    notice_ids: list[int]
    priority: int
    force: bool
    selection: str | None
    query: str | None
    state: str
    runs: list[str] | None
    submitted_ids: list[int] | None
    created_at: datetime
    submitted_at: datetime | None

    @property
    def waiting_ids(self) -> list[int]:
        """Notices not handed to a run yet."""
        submitted = set(self.submitted_ids or ())
        return [i for i in self.notice_ids if i not in submitted]


def add(
    db: CatalogDB, notice_ids: Sequence[int], *, priority: int = 0, force: bool = False, query: str | None = None
) -> int:
    """A pending schedule of these notices; returns its id."""
    with db.write() as connection:
        return connection.execute(
            schedules.insert()
            .values(
                notice_ids=list(notice_ids),
                priority=priority,
                force=force,
                query=query,
                state="pending",
                created_at=utcnow(),
            )
            .returning(schedules.c.id)
        ).scalar_one()


def get(db: CatalogDB, schedule_id: int) -> Schedule:
    with db.read() as connection:
        row = connection.execute(select(schedules).where(schedules.c.id == schedule_id)).first()
    if row is None:
        raise Unknown.named("schedule", schedule_id, "schedule list")
    return Schedule(**row._mapping)


def pending(db: CatalogDB, limit: int) -> list[Schedule]:
    """Pending schedules, highest priority first, then oldest."""
    with db.read() as connection:
        rows = connection.execute(
            select(schedules)
            .where(schedules.c.state == "pending")
            .order_by(schedules.c.priority.desc(), schedules.c.id)
            .limit(limit)
        ).all()
    return [Schedule(**row._mapping) for row in rows]


def record_runs(db: CatalogDB, schedule: Schedule, run_ids: Sequence[str], notice_ids: Sequence[int]) -> Schedule:
    """The instance holds these runs of the schedule, covering these notices: they are submitted; the schedule
    is once none waits."""
    submitted = sorted(set(schedule.notice_ids) & set(notice_ids))
    done = not set(schedule.notice_ids) - set(submitted)
    values = {"state": "submitted" if done else "pending", "runs": sorted(set(run_ids)), "submitted_ids": submitted,
              "submitted_at": utcnow()}  # fmt: skip
    with db.write() as connection:
        connection.execute(update(schedules).where(schedules.c.id == schedule.id, schedules.c.state == "pending")
                           .values(**values))  # fmt: skip
    return replace(schedule, **values)


def listing(db: CatalogDB, limit: int = 50) -> list[Schedule]:
    """The newest schedules first."""
    with db.read() as connection:
        rows = connection.execute(select(schedules).order_by(schedules.c.id.desc()).limit(limit)).all()
    return [Schedule(**row._mapping) for row in rows]


def cancel(db: CatalogDB, schedule_id: int) -> Schedule:
    """A pending schedule hands out nothing more (runs already requested go on); `Unknown` if there is none."""
    with db.write() as connection:
        changed = connection.execute(
            update(schedules)
            .where(schedules.c.id == schedule_id, schedules.c.state == "pending")
            .values(state="cancelled")
        ).rowcount
    schedule = get(db, schedule_id)
    if not changed and schedule.state != "cancelled":
        raise BadInput(f"schedule {schedule_id} is {schedule.state}: its runs were all requested already",
                       "cancel its runs in the UI (Runs), or leave it")  # fmt: skip
    return schedule

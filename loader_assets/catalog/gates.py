"""Level gates: the verdict of a validation level on one table, which every later claim reads.

A blocking Dagster check stops only its own run, so the catalog carries the gate across runs: a child
notice is claimable only while its director's level-2 gate is `passed`.

Gates are fenced: every event that invalidates a verdict (new or changed files, a claim, reset, release or
reclaim of one of the table's notices — or of its director's, for a child) bumps the gate's `generation` and
sets it `pending`, in the same transaction. A validation takes the gate's lock (`begin_validation`: one at a
time per table, for a lease it renews, `renew_validation`), remembers the generation it started from, and records
its verdict only if the generation is unchanged and every notice of the table is still done (`finish_validation`);
otherwise it is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, or_, select, update

from loader_assets import levels
from loader_assets.catalog import schema
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import level_gates, notices, tables
from loader_assets.catalog.time import utcnow
from loader_assets.problems import Failed


@dataclass(frozen=True)
class Gate:
    case: str
    level: int
    table: str
    status: str  # pending | passed | failed
    check_run: str | None
    details: dict[str, Any] | None
    updated_at: datetime
    generation: int = 0
    validations: int = 0  # validations started at this generation
    validating_run: str | None = None
    validating_host: str | None = None
    validating_pid: int | None = None
    validating_since: datetime | None = None
    validating_until: datetime | None = None  # the lock's lease (None: taken by a loader before the lease)

    @property
    def failed_checks(self) -> list[str]:
        return list((self.details or {}).get("failed_checks", []))


def director_gate_passed() -> ColumnElement[bool]:
    """SQL on `notices`: the validation gate of the notice's director table has passed."""
    return exists(
        select(1)
        .select_from(
            tables.join(
                level_gates, and_(level_gates.c.case == tables.c.case, level_gates.c.table == tables.c.director_table)
            )
        )
        .where(
            tables.c.case == notices.c.case,
            tables.c.name == notices.c.table,
            level_gates.c.level == levels.VALIDATE_DIRECTOR,
            level_gates.c.status == "passed",
        )
    )


def gate(db: CatalogDB, case: str, level: int, table: str) -> Gate | None:
    with db.read() as connection:
        row = connection.execute(
            select(level_gates).where(
                level_gates.c.case == case, level_gates.c.level == level, level_gates.c.table == table
            )
        ).first()
    return Gate(**row._mapping) if row is not None else None


def closed_gate_reason(connection: Connection, case: str, child: str) -> str | None:
    """Why the gate of a child's director refuses the child's notices, or None when it has passed."""
    row = connection.execute(
        select(level_gates)
        .join(tables, and_(tables.c.case == level_gates.c.case, tables.c.director_table == level_gates.c.table))
        .where(tables.c.case == case, tables.c.name == child, level_gates.c.level == levels.VALIDATE_DIRECTOR)
    ).first()
    found = Gate(**row._mapping) if row is not None else None
    if found is not None and found.status == "passed":
        return None
    failed = ", ".join(found.failed_checks) if found else ""
    return (
        f"level {levels.VALIDATE_DIRECTOR} of case {case} ({found.table if found else 'director'}) is "
        f"{found.status if found else 'missing'}" + (f": failed check {failed}" if failed else "")
    )


def open_gate(connection: Connection, case: str, table: str, kind: str, now: datetime) -> None:
    """A new table that is validated gets a pending gate."""
    level = levels.validation_level(kind)
    if level is not None:
        connection.execute(
            level_gates.insert().values(case=case, level=level, table=table, status="pending", updated_at=now)
        )


def bump(connection: Connection, case: str, table_names: Iterable[str], now: datetime) -> None:
    """The data behind these tables' verdicts changed: their gates, and their children's, are pending again
    at a new generation (a validation that started before drops its verdict)."""
    names = sorted(set(table_names))
    if not names:
        return
    children = select(tables.c.name).where(tables.c.case == case, tables.c.director_table.in_(names))
    connection.execute(
        update(level_gates)
        .where(level_gates.c.case == case, or_(level_gates.c.table.in_(names), level_gates.c.table.in_(children)))
        .values(status="pending", generation=level_gates.c.generation + 1, validations=0, updated_at=now)
    )


def bump_notices(connection: Connection, notice_ids: Sequence[int], now: datetime) -> None:
    """`bump` the gates of the tables these notices belong to."""
    if not notice_ids:
        return
    rows = connection.execute(
        select(notices.c.case, notices.c.table).where(notices.c.id.in_(list(notice_ids))).distinct()
    ).all()
    by_case: dict[str, set[str]] = {}
    for row in rows:
        by_case.setdefault(row.case, set()).add(row.table)
    for case, names in sorted(by_case.items()):
        bump(connection, case, names, now)


@dataclass(frozen=True)
class Validator:
    """Who validates: a run and its process (the lock's owner)."""

    run_id: str
    host: str
    pid: int


class ValidationBusy(Failed):
    """Another validation of the table holds its gate's lock."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "wait for it: its verdict opens or closes the gate")


def _key(case: str, level: int, table: str) -> ColumnElement[bool]:
    return and_(level_gates.c.case == case, level_gates.c.level == level, level_gates.c.table == table)


def begin_validation(
    db: CatalogDB, case: str, level: int, table: str, who: Validator, lease: timedelta, *, now: datetime | None = None
) -> int:
    """Take the gate's lock for a lease (`renew_validation` extends it); returns the generation the validation
    starts from. ValidationBusy when held."""
    now = now or utcnow()
    with db.write() as connection:
        taken = connection.execute(
            update(level_gates)
            .where(_key(case, level, table), level_gates.c.validating_run.is_(None))
            .values(
                validating_run=who.run_id,
                validating_host=who.host,
                validating_pid=who.pid,
                validating_since=now,
                validating_until=now + lease,
                validations=level_gates.c.validations + 1,
            )
            .returning(level_gates.c.generation)
        ).first()
        if taken is not None:
            return taken.generation
        holder = connection.execute(select(level_gates).where(_key(case, level, table))).first()
    if holder is None:
        raise LookupError(f"case {case} has no level-{level} gate for table {table}")
    raise ValidationBusy(
        f"level {level} of case {case} ({table}) is being validated by {holder.validating_run} "
        f"(process {holder.validating_pid} on {holder.validating_host})"
    )


def renew_validation(
    db: CatalogDB, case: str, level: int, table: str, run_id: str, lease: timedelta, *, now: datetime | None = None
) -> bool:
    """Extend the lock's lease; False when `run_id` no longer holds it (taken back once its lease lapsed)."""
    now = now or utcnow()
    with db.write() as connection:
        return bool(
            connection.execute(
                update(level_gates)
                .where(_key(case, level, table), _held_by(run_id))
                .values(validating_until=now + lease)
            ).rowcount
        )


def finish_validation(
    db: CatalogDB,
    case: str,
    level: int,
    table: str,
    who: Validator,
    seen: int,
    status: str,
    details: dict | None,
    *,
    director: tuple[str, int] | None = None,
    now: datetime | None = None,
) -> bool:
    """Record the verdict and release the lock; False (verdict dropped) when the gate moved on meanwhile.

    `director` (name, generation seen) fences a child's verdict by its director's gate too: it holds only
    while the director is still passed at that generation (a director reloading invalidates the child's
    checks against it)."""
    assert status in schema.GATE_STATUSES, f"gate status must be one of {schema.GATE_STATUSES}, got {status!r}"
    now = now or utcnow()
    unfinished = exists(select(1).where(notices.c.case == case, notices.c.table == table, notices.c.status != "done"))
    fences = [_key(case, level, table), _held_by(who.run_id), level_gates.c.generation == seen]
    if director is not None:
        held = level_gates.alias("director")
        fences.append(
            exists(
                select(1).where(
                    held.c.case == case,
                    held.c.level == levels.VALIDATE_DIRECTOR,
                    held.c.table == director[0],
                    held.c.status == "passed",
                    held.c.generation == director[1],
                )
            )
        )
    with db.write() as connection:
        recorded = connection.execute(
            update(level_gates)
            .where(*fences, ~unfinished)
            .values(status=status, check_run=who.run_id, details=details, updated_at=now, **_UNLOCKED)
        ).rowcount
    return bool(recorded)


def release_validation(db: CatalogDB, case: str, level: int, table: str, run_id: str) -> None:
    """Release the lock if `run_id` still holds it (a validation that raised)."""
    with db.write() as connection:
        connection.execute(update(level_gates).where(_key(case, level, table), _held_by(run_id)).values(**_UNLOCKED))


def release_dead_holder(db: CatalogDB, dead: Gate) -> None:
    """Release the lock of a validation found dead, if it has not renewed its lease since it was judged."""
    until = level_gates.c.validating_until
    unchanged = until.is_(None) if dead.validating_until is None else until == dead.validating_until
    with db.write() as connection:
        connection.execute(
            update(level_gates)
            .where(_key(dead.case, dead.level, dead.table), _held_by(dead.validating_run), unchanged)
            .values(**_UNLOCKED)
        )


def _held_by(run_id: str | None) -> ColumnElement[bool]:
    return level_gates.c.validating_run == run_id


_UNLOCKED = {
    "validating_run": None,
    "validating_host": None,
    "validating_pid": None,
    "validating_since": None,
    "validating_until": None,
}

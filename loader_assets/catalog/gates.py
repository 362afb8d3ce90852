"""Level gates: the verdict of a validation level on one table, which every later claim reads.

A blocking Dagster check stops only its own run, so the catalog carries the gate across runs: a child
notice is claimable only while its director's level-2 gate is `passed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, select, update

from loader_assets import levels
from loader_assets.catalog import schema
from loader_assets.catalog.engine import CatalogDB
from loader_assets.catalog.schema import level_gates, notices, tables
from loader_assets.catalog.time import utcnow


@dataclass(frozen=True)
class Gate:
    case: str
    level: int
    table: str
    status: str  # pending | passed | failed
    check_run: str | None
    details: dict[str, Any] | None
    updated_at: datetime

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


def record_gate(
    db: CatalogDB,
    case: str,
    level: int,
    table: str,
    status: str,
    check_run: str | None,
    details: dict | None = None,
    *,
    now: datetime | None = None,
) -> None:
    """Record the outcome of a level's validation: the single record a later level asks."""
    if status not in schema.GATE_STATUSES:
        raise ValueError(f"gate status must be one of {schema.GATE_STATUSES}, got {status!r}")
    values = {"status": status, "check_run": check_run, "details": details, "updated_at": now or utcnow()}
    with db.write() as connection:
        key = and_(level_gates.c.case == case, level_gates.c.level == level, level_gates.c.table == table)
        if connection.execute(update(level_gates).where(key).values(**values)).rowcount == 0:
            connection.execute(level_gates.insert().values(case=case, level=level, table=table, **values))


def open_gate(connection: Connection, case: str, table: str, kind: str, now: datetime) -> None:
    """A new table that is validated gets a pending gate."""
    level = levels.validation_level(kind)
    if level is not None:
        connection.execute(
            level_gates.insert().values(case=case, level=level, table=table, status="pending", updated_at=now)
        )


def reopen_gate(connection: Connection, case: str, table: str, kind: str, now: datetime) -> None:
    """New or changed data in a validated table must be validated again before the next level starts."""
    if levels.validation_level(kind) is not None:
        connection.execute(
            update(level_gates)
            .where(level_gates.c.case == case, level_gates.c.table == table, level_gates.c.status != "pending")
            .values(status="pending", updated_at=now)
        )

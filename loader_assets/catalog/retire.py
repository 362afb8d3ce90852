"""Retiring a case: every catalog row of it goes, once none of its notices is held (the inverse of `register`)."""

from __future__ import annotations

from sqlalchemy import delete, select

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import attempts, batches, cases, chunk_checks, level_gates, notices, tables
from loader_assets.catalog.time import utcnow
from loader_assets.problems import Failed


class CaseHeld(Failed):
    """A notice of the case is held by a run under a live lease: nothing was retired."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "wait for the run, or `loader-assets release --run <run>`")


def start_dropping(db: CatalogDB, case: str) -> None:
    """Mark the case `dropping` (paused: no new claim; only `drop` ends it) in the same transaction that finds none
    of its notices held."""
    with db.write() as connection:
        held = connection.execute(
            select(notices.c.id, notices.c.locked_by)
            .where(notices.c.case == case, notices.c.status == "running", notices.c.lease_until >= utcnow())
            .limit(1)
        ).first()
        if held is not None:
            raise CaseHeld(f"notice {held.id} of case {case} is held by run {held.locked_by}: nothing retired")
        connection.execute(cases.update().where(cases.c.case == case).values(state="paused", dropping=True))


def delete_case(db: CatalogDB, case: str) -> None:
    """Every row of the case: attempts, notices, batches, gates, chunk censuses, tables, the case."""
    with db.write() as connection:
        ids = select(notices.c.id).where(notices.c.case == case).scalar_subquery()
        connection.execute(delete(attempts).where(attempts.c.notice.in_(ids)))
        for table in (notices, batches, level_gates, chunk_checks, tables):
            connection.execute(delete(table).where(table.c.case == case))
        connection.execute(delete(cases).where(cases.c.case == case))

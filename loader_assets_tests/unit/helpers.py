"""Reads the unit tests share: notice ids and rows, and the refusal label SQL gives a notice."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, select

from loader_assets.catalog.claims import ClaimContext, first_refusal
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.schema import notices

CASE = "c1"  # the sample case's name and database


def ids(db: CatalogDB, table: str, case: str = CASE) -> list[int]:
    """Notice ids of one table of a case."""
    return notice_ids(db, case, table=table)


def notice(db: CatalogDB, notice_id: int) -> Any:
    with db.read() as connection:
        return connection.execute(select(notices).where(notices.c.id == notice_id)).one()


def passing(db: CatalogDB, condition: ColumnElement[bool]) -> set[int]:
    """Ids of the notices an SQL condition on `notices` lets through."""
    with db.read() as connection:
        return set(connection.execute(select(notices.c.id).where(condition)).scalars())


def label(db: CatalogDB, notice_id: int, ctx: ClaimContext) -> str | None:
    """The label of the first rule refusing the notice (None: every rule lets it through)."""
    with db.read() as connection:
        return connection.execute(select(first_refusal(ctx)).where(notices.c.id == notice_id)).scalar_one()

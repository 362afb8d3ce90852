"""The census of each child chunk, kept with the version of the data it judged (see `engine.chunk_census`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select, update

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import chunk_checks
from loader_assets.catalog.time import utcnow


def kept(db: CatalogDB, case: str, table: str) -> dict[int, tuple[str, dict[str, Any]]]:
    """chunk -> (version, census) of every kept census of the table."""
    c = chunk_checks.c
    with db.read() as connection:
        rows = connection.execute(select(c.chunk, c.version, c.census).where(c.case == case, c.table == table)).all()
    return {row.chunk: (row.version, row.census) for row in rows}


def keep(db: CatalogDB, case: str, table: str, chunk: int, version: str, census: dict[str, Any]) -> None:
    c = chunk_checks.c
    values = {"version": version, "census": census, "updated_at": utcnow()}
    with db.write() as connection:
        key = and_(c.case == case, c.table == table, c.chunk == chunk)
        if connection.execute(update(chunk_checks).where(key).values(**values)).rowcount == 0:
            connection.execute(chunk_checks.insert().values(case=case, table=table, chunk=chunk, **values))

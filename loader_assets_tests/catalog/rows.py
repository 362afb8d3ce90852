"""Minimal catalog rows for tests of the store, written straight to the real tables."""

from __future__ import annotations

from loader_assets.catalog import schema
from loader_assets.catalog.engine import CatalogDB
from loader_assets.catalog.store import utcnow


def add_case(db: CatalogDB, case: str, *, notices: int, level: int = 1, table: str = "Object") -> list[int]:
    """A case with one table, one batch and `notices` ready notices (chunks 0..n-1); returns their ids."""
    now = utcnow()
    with db.write() as connection:
        connection.execute(
            schema.cases.insert().values(
                case=case, database=f"db_{case}", charset="latin1", dialect={}, root="/data", created_at=now
            )
        )
        connection.execute(
            schema.tables.insert().values(
                case=case,
                name=table,
                kind="director" if level == 1 else "child",
                level=level,
                director_table=None if level == 1 else "Object",
                columns=[],
                indexes=[],
            )
        )
        batch = connection.execute(
            schema.batches.insert()
            .values(case=case, table=table, directory=f"step{level}_1/{table}", step=level, task=1, level=level)
            .returning(schema.batches.c.id)
        ).scalar_one()
        rows = [
            {
                "case": case,
                "batch": batch,
                "table": table,
                "level": level,
                "chunk": chunk,
                "path": f"step{level}_1/{table}/chunk_{chunk}.txt",
                "format": "txt",
                "size": 10,
                "mtime": 0.0,
                "created_at": now,
                "updated_at": now,
            }
            for chunk in range(notices)
        ]
        connection.execute(schema.notices.insert(), rows)
        ids = connection.execute(schema.notices.select().where(schema.notices.c.case == case)).all()
    return sorted(row.id for row in ids)

"""Minimal catalog rows for tests of the store, written straight to the real tables."""

from __future__ import annotations

from loader_assets.catalog import schema
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.gates import open_gate
from loader_assets.catalog.store import utcnow


def add_case(db: CatalogDB, case: str, *, notices: int, level: int = 1, table: str = "Object") -> list[int]:
    """A case with one table, one batch and `notices` ready notices (chunks 0..n-1); returns their ids."""
    with db.write() as connection:
        connection.execute(
            schema.cases.insert().values(
                case=case, database=f"db_{case}", charset="latin1", dialect={}, root="/data", created_at=utcnow()
            )
        )
    return add_table(db, case, notices=notices, level=level, table=table)


def add_table(db: CatalogDB, case: str, *, notices: int, level: int = 1, table: str = "Object") -> list[int]:
    """One more table of a case (a director at level 1, else a child of `Object`) with its pending gate, one batch
    and `notices` ready notices; returns their ids."""
    now = utcnow()
    kind = "director" if level == 1 else "child"
    with db.write() as connection:
        open_gate(connection, case, table, kind, now)
        connection.execute(
            schema.tables.insert().values(
                case=case,
                name=table,
                kind=kind,
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
        ids = connection.execute(
            schema.notices.select().where(schema.notices.c.case == case, schema.notices.c.table == table)
        ).all()
    return sorted(row.id for row in ids)

"""What is on the workers and at the czar, counted for validation: rows per chunk table, key values."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from loader_assets.workers.cluster import META_DB
from loader_assets.workers.connection import connection, quote_name, quote_table
from loader_assets.workers.schema import director_index_table

_NO_SUCH_TABLE = 1146


def row_counts(url: str, database: str, table_names: Iterable[str]) -> dict[str, int | None]:
    """`COUNT(*)` of each table; None for a table that does not exist."""
    counts: dict[str, int | None] = {}
    with connection(url) as conn, conn.cursor() as cursor:
        for name in table_names:
            try:
                cursor.execute(f"SELECT COUNT(*) FROM {quote_table(database, name)}")
                counts[name] = int(cursor.fetchone()[0])
            except Exception as error:  # pymysql.err.ProgrammingError carries the code in args[0]
                if getattr(error, "args", [None])[0] != _NO_SUCH_TABLE:
                    raise
                counts[name] = None
    return counts


def key_values(url: str, database: str, table_name: str, key: str) -> np.ndarray:
    """Every non-NULL value of `key` in one table (int64), duplicates kept."""
    with connection(url) as conn, conn.cursor() as cursor:
        cursor.execute(
            f"SELECT {quote_name(key)} FROM {quote_table(database, table_name)} WHERE {quote_name(key)} IS NOT NULL"
        )
        return np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64)


def index_keys_by_chunk(czar_url: str, database: str, director: str, key: str) -> dict[int, np.ndarray]:
    """The director index at the czar, as chunk -> sorted key values."""
    table = f"{META_DB}.{quote_name(director_index_table(database, director))}"
    with connection(czar_url) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT chunkId, {quote_name(key)} FROM {table} ORDER BY chunkId, {quote_name(key)}")
        rows = np.array(cursor.fetchall(), dtype=np.int64).reshape(-1, 2)
    if rows.size == 0:
        return {}
    chunks, starts = np.unique(rows[:, 0], return_index=True)
    return {int(c): part for c, part in zip(chunks, np.split(rows[:, 1], starts[1:]), strict=True)}

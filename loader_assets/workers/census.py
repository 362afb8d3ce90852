"""What is on the workers and at the czar, counted in SQL where the data is: rows per table, key fingerprints
per attempt partition, duplicate keys, child keys absent from their director chunk, the director index.

Only counts and the first offending keys travel; absent keys stream in bounded batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pymysql
from pymysql.constants import ER

from loader_assets.workers import fingerprint
from loader_assets.workers.attempt_partitions import partition_name
from loader_assets.workers.cluster import META_DB
from loader_assets.workers.connection import Server, quote_name, quote_table
from loader_assets.workers.ddl import concatenated, director_index_table, director_index_tables
from loader_assets.workers.fingerprint import Fingerprint

KEY_BATCH = 10_000  # absent child keys per round trip to the czar's index
JOIN_BUFFER = 128 * 1024 * 1024  # allocated as needed, up to this (benchmarks/validation.py: 7x at 200k rows)


def row_count(cursor: pymysql.cursors.Cursor, database: str, table_name: str) -> int | None:
    """`COUNT(*)` of one table; None when it does not exist."""
    try:
        cursor.execute(f"SELECT COUNT(*) FROM {quote_table(database, table_name)}")
    except pymysql.err.ProgrammingError as error:
        if error.args[0] != ER.NO_SUCH_TABLE:
            raise
        return None
    return int(cursor.fetchone()[0])


def row_counts(server: Server, database: str, table_names: Iterable[str]) -> dict[str, int | None]:
    """`COUNT(*)` of each table; None for a table that does not exist."""
    with server.connect() as conn, conn.cursor() as cursor:
        return {name: row_count(cursor, database, name) for name in table_names}


def partition_fingerprint(
    cursor: pymysql.cursors.Cursor, database: str, table_name: str, key: str, attempt_id: int, kind: str
) -> Fingerprint:
    """The key fingerprint (its hash of `kind`) of what one attempt wrote (an absent partition counts as empty)."""
    try:
        cursor.execute(fingerprint.sql(database, table_name, key, partition_name(attempt_id), kind))
    except pymysql.err.OperationalError as error:
        if error.args[0] != 1735:  # Unknown partition: the attempt's rows are not there
            raise
        return fingerprint.empty(kind)
    return fingerprint.from_row(cursor.fetchone(), kind)


def partition_keys(
    cursor: pymysql.cursors.Cursor, database: str, table_name: str, key: str, attempt_id: int
) -> list[int]:
    """The non-NULL keys one attempt wrote (a diagnosis of one file, never the whole table)."""
    k = quote_name(key)
    cursor.execute(
        f"SELECT {k} FROM {quote_table(database, table_name)} PARTITION ({partition_name(attempt_id)}) "
        f"WHERE {k} IS NOT NULL"
    )
    return [int(row[0]) for row in cursor.fetchall()]


def duplicate_keys(cursor: pymysql.cursors.Cursor, database: str, table_name: str, key: str, shown: int) -> list[int]:
    """The first keys present more than once in one table."""
    k = quote_name(key)
    cursor.execute(
        f"SELECT {k} FROM {quote_table(database, table_name)} WHERE {k} IS NOT NULL "
        f"GROUP BY {k} HAVING COUNT(*) > 1 ORDER BY {k} LIMIT {int(shown)}"
    )
    return [int(row[0]) for row in cursor.fetchall()]


def null_keys(cursor: pymysql.cursors.Cursor, database: str, table_name: str, key: str) -> int:
    cursor.execute(f"SELECT COUNT(*) FROM {quote_table(database, table_name)} WHERE {quote_name(key)} IS NULL")
    return int(cursor.fetchone()[0])


def absent_keys(
    conn: pymysql.Connection, database: str, child: str, director: str | None, child_key: str, director_key: str
) -> Iterator[list[tuple[int, int]]]:
    """(key, rows) of the child table whose key is not in the director's chunk table on the same worker,
    in batches of KEY_BATCH. An anti-join where the data is: the director key's index when it has one, else a
    hash join. `director` None: the chunk has no director table on this worker, every key is absent."""
    c = quote_name(child_key)
    if director is None:
        sql = (
            f"SELECT c.{c}, COUNT(*) FROM {quote_table(database, child)} AS c WHERE c.{c} IS NOT NULL "
            f"GROUP BY c.{c} ORDER BY c.{c}"
        )
    else:
        sql = anti_join_sql(database, child, director, child_key, director_key)
    with conn.cursor(pymysql.cursors.SSCursor) as cursor:
        cursor.execute("SET SESSION join_cache_level = 4")  # hash joins (BNLH) for an unindexed director key
        # A buffer for a whole chunk's keys: with the defaults (256 KB) the director is scanned once per refill.
        cursor.execute(f"SET SESSION join_buffer_size = {JOIN_BUFFER}, join_buffer_space_limit = {2 * JOIN_BUFFER}")
        cursor.execute(sql)
        while batch := cursor.fetchmany(KEY_BATCH):
            yield [(int(key), int(rows)) for key, rows in batch]


def anti_join_sql(database: str, child: str, director: str, child_key: str, director_key: str) -> str:
    c, d = quote_name(child_key), quote_name(director_key)
    return (
        f"SELECT c.{c}, COUNT(*) FROM {quote_table(database, child)} AS c "
        f"LEFT JOIN {quote_table(database, director)} AS d ON d.{d} = c.{c} "
        f"WHERE c.{c} IS NOT NULL AND d.{d} IS NULL GROUP BY c.{c} ORDER BY c.{c}"
    )


def table_exists(cursor: pymysql.cursors.Cursor, database: str, table_name: str) -> bool:
    cursor.execute(
        "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (database, table_name)
    )
    return cursor.fetchone() is not None


def index_table(database: str, director: str) -> str:
    return f"{META_DB}.{quote_name(director_index_table(database, director))}"


def index_chunks_of(cursor: pymysql.cursors.Cursor, index: str, key: str, keys: list[int]) -> dict[int, int]:
    """Chunk of each of `keys` that the director index holds (a key absent from it is absent here)."""
    if not keys:
        return {}
    cursor.execute(
        f"SELECT {quote_name(key)}, chunkId FROM {index} WHERE {quote_name(key)} IN ({','.join(['%s'] * len(keys))})",
        keys,
    )
    return {int(k): int(chunk) for k, chunk in cursor.fetchall()}


def table_keys(cursor: pymysql.cursors.Cursor, database: str, table_name: str, key: str, dtype: np.dtype) -> np.ndarray:
    """The non-NULL keys of one table (a director chunk on its worker), as `dtype`; none when it does not exist."""
    k = quote_name(key)
    try:
        blobs = concatenated(
            cursor, f"GROUP_CONCAT({k} SEPARATOR '\\n')", f"{quote_table(database, table_name)} WHERE {k} IS NOT NULL"
        )
    except pymysql.err.ProgrammingError as error:
        if error.args[0] != ER.NO_SUCH_TABLE:
            raise
        return np.empty(0, dtype)
    parsed = [fingerprint.integer_lines(text, dtype) for text, _count, _ in blobs]
    keys = np.concatenate(parsed) if parsed else np.empty(0, dtype)
    if len(keys) != sum(count for _text, count, _ in blobs):
        raise ValueError(f"{database}.{table_name}: its keys read back incomplete")
    return keys


def index_rows_per_chunk(
    cursor: pymysql.cursors.Cursor, database: str, director: str, chunks: list[int]
) -> dict[int, int]:
    """Rows of each chunk in the director index: as recorded when each chunk went in, when every chunk's is
    recorded and they add up to the index's rows (MyISAM counts them for free); else counted in the index."""
    if not chunks:
        return {}
    index, indexed = (f"{META_DB}.{quote_name(name)}" for name in director_index_tables(database, director))
    cursor.execute(f"SELECT chunkId, index_rows FROM {indexed}")
    recorded = {int(chunk): rows for chunk, rows in cursor.fetchall()}
    cursor.execute(f"SELECT COUNT(*) FROM {index}")
    total = int(cursor.fetchone()[0])
    if None not in recorded.values() and sum(recorded.values()) == total:
        return {chunk: int(recorded[chunk]) for chunk in chunks if chunk in recorded}
    cursor.execute(  # a full scan: the index has no key by chunk
        f"SELECT chunkId, COUNT(*) FROM {index} WHERE chunkId IN ({','.join(map(str, map(int, chunks)))}) "
        "GROUP BY chunkId"
    )
    return {int(chunk): int(rows) for chunk, rows in cursor.fetchall()}

"""Per-attempt partitions of a worker table: each attempt writes into its own partition `p<attempt>` (rows
tagged `qserv_trans_id = <attempt>`), so the rows of an attempt that failed, died or was retried are dropped
exactly, whatever the engine (MyISAM has no rollback). `p0` is the empty placeholder every table is created with.
"""

from __future__ import annotations

from collections.abc import Sequence

import pymysql

from loader_assets.workers.connection import Server, quote_table


def partition_name(attempt_id: int) -> str:
    assert attempt_id > 0, f"attempt ids are positive (p0 is the placeholder partition), got {attempt_id}"
    return f"p{attempt_id}"


def drop_attempt_partitions(worker: Server, database: str, table_name: str, attempt_ids: Sequence[int]) -> list[int]:
    """Drop the partitions of these attempts (aborted, dead, superseded); absent ones are ignored.

    Returns the attempt ids whose partition was dropped.
    """
    with worker.connect() as conn, conn.cursor() as cursor:
        return drop_partitions(cursor, database, table_name, [int(a) for a in attempt_ids])


def partitions_of(worker: Server, database: str, table_name: str) -> list[int]:
    """Attempt ids that have a partition in the table (the placeholder p0 excluded)."""
    with worker.connect() as conn, conn.cursor() as cursor:
        return attempts_in(cursor, database, table_name)


def count_rows(worker: Server, database: str, table_name: str, attempt_id: int | None = None) -> int:
    """Rows of the table, or of one attempt's partition."""
    table = quote_table(database, table_name)
    where = f" PARTITION ({partition_name(attempt_id)})" if attempt_id is not None else ""
    with worker.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}{where}")
        return int(cursor.fetchone()[0])


def reset_partition(cursor: pymysql.cursors.Cursor, database: str, table_name: str, attempt_id: int) -> None:
    """A fresh, empty p<attempt>: a retried attempt id must not add to what its earlier run left."""
    drop_partitions(cursor, database, table_name, [attempt_id])
    cursor.execute(
        f"ALTER TABLE {quote_table(database, table_name)} "
        f"ADD PARTITION (PARTITION {partition_name(attempt_id)} VALUES IN ({int(attempt_id)}))"
    )


def drop_partitions(
    cursor: pymysql.cursors.Cursor, database: str, table_name: str, attempt_ids: Sequence[int]
) -> list[int]:
    """Drop those of the attempts' partitions that exist, in one statement; returns the ids seen present.

    `IF EXISTS`: another cleaner (the sweeper, the next claimer) may drop one between the read and the drop."""
    wanted = set(attempt_ids)
    present = [a for a in attempts_in(cursor, database, table_name) if a in wanted]
    if present:
        names = ", ".join(partition_name(a) for a in present)
        cursor.execute(f"ALTER TABLE {quote_table(database, table_name)} DROP PARTITION IF EXISTS {names}")
    return present


def attempts_in(cursor: pymysql.cursors.Cursor, database: str, table_name: str) -> list[int]:
    cursor.execute(
        "SELECT PARTITION_NAME FROM information_schema.PARTITIONS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (database, table_name),
    )
    names = [row[0] for row in cursor.fetchall() if row[0]]
    return sorted(int(name[1:]) for name in names if name != "p0")


def partitions_by_table(worker: Server, database: str) -> dict[str, list[int]]:
    """Attempt ids with a partition, per table of the database (one query for the whole database)."""
    with worker.connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, PARTITION_NAME FROM information_schema.PARTITIONS "
            "WHERE TABLE_SCHEMA = %s AND PARTITION_NAME IS NOT NULL AND PARTITION_NAME <> 'p0'",
            (database,),
        )
        found: dict[str, list[int]] = {}
        for table_name, partition in cursor.fetchall():
            found.setdefault(table_name, []).append(int(partition[1:]))
    return found

"""The fingerprint of a key column, taken from the file (numpy) and on the worker (SQL), agree for every key a
BIGINT or BIGINT UNSIGNED column can hold: negative, extreme, beyond int64, NULL."""

from __future__ import annotations

import pyarrow as pa
import pytest

from loader_assets.workers import fingerprint
from loader_assets.workers.connection import Server, quote_table
from loader_assets.workers.ddl import create_database

SIGNED = [0, 1, -1, 4294967295, 4294967296, -4294967296, 2**63 - 1, -(2**63), 1000000000012345, None]
UNSIGNED = [0, 1, 4294967295, 2**63, 2**64 - 1, 18000000000000000000, None]


@pytest.mark.parametrize(("kind", "sql_type", "keys"), [
    (pa.int64(), "BIGINT", SIGNED), (pa.uint64(), "BIGINT UNSIGNED", UNSIGNED),
])  # fmt: skip
def test_the_files_fingerprint_equals_the_workers(
    worker: Server, database: str, kind: pa.DataType, sql_type: str, keys: list[int | None]
) -> None:
    with worker.connect() as conn, conn.cursor() as cursor:
        create_database(conn, database, "latin1")
        cursor.execute(f"CREATE TABLE {quote_table(database, 't')} (k {sql_type} NULL) ENGINE=MyISAM")
        cursor.executemany(f"INSERT INTO {quote_table(database, 't')} VALUES (%s)", [(k,) for k in keys])
        cursor.execute(fingerprint.sql(database, "t", "k"))
        on_worker = fingerprint.from_row(cursor.fetchone())
    from_file = fingerprint.of_keys(pa.array(keys, kind), len(keys))
    assert from_file == on_worker
    assert (from_file.rows, from_file.keys) == (len(keys), len(keys) - 1)

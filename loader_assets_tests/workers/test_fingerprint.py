"""The fingerprint of a key column, taken from the file (numpy) and on the worker (SQL), agree for every key a
BIGINT or BIGINT UNSIGNED column can hold: negative, extreme, beyond int64, NULL."""

from __future__ import annotations

import pyarrow as pa
import pymysql
import pytest

from loader_assets.workers import fingerprint
from loader_assets.workers.connection import Server, quote_table
from loader_assets.workers.ddl import create_database

SIGNED = [0, 1, -1, 4294967295, 4294967296, -4294967296, 2**63 - 1, -(2**63), 1000000000012345, None]
UNSIGNED = [0, 1, 4294967295, 2**63, 2**64 - 1, 18000000000000000000, None]


def key_table(conn: pymysql.Connection, database: str, sql_type: str, keys: list[int | None]) -> None:
    """Table `t` of `database` on the worker, its one column `k` of `sql_type` holding `keys`."""
    create_database(conn, database, "latin1")
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {quote_table(database, 't')} (k {sql_type} NULL) ENGINE=MyISAM")
        cursor.executemany(f"INSERT INTO {quote_table(database, 't')} VALUES (%s)", [(k,) for k in keys])


@pytest.mark.parametrize(("kind", "sql_type", "keys"), [
    (pa.int64(), "BIGINT", SIGNED), (pa.uint64(), "BIGINT UNSIGNED", UNSIGNED),
])  # fmt: skip
def test_the_files_fingerprint_equals_the_workers(
    worker: Server, database: str, kind: pa.DataType, sql_type: str, keys: list[int | None]
) -> None:
    with worker.connect() as conn, conn.cursor() as cursor:
        key_table(conn, database, sql_type, keys)
        cursor.execute(fingerprint.sql(database, "t", "k"))
        on_worker = fingerprint.from_row(cursor.fetchone())
    from_file = fingerprint.of_keys(pa.array(keys, kind), len(keys))
    assert from_file == on_worker
    assert (from_file.rows, from_file.keys) == (len(keys), len(keys) - 1)


def _hash_sum(keys: list[int | None]) -> int:
    """The hash of the fingerprints catalogs kept before 2026-12-05, by its definition: each 32-bit half of a key
    (two's complement) times an odd constant modulo 2^32, summed."""
    mask = (1 << 32) - 1
    words = [k % (1 << 64) for k in keys if k is not None]
    return sum((w & mask) * 2654435761 % (1 << 32) + (w >> 32) * 2246822519 % (1 << 32) for w in words)


@pytest.mark.parametrize(("sql_type", "keys"), [("BIGINT", SIGNED), ("BIGINT UNSIGNED", UNSIGNED)])
def test_a_fingerprint_an_older_catalog_kept_is_still_verified_on_the_worker(
    worker: Server, database: str, sql_type: str, keys: list[int | None]
) -> None:
    stored = {"rows": str(len(keys)), "keys": str(len(keys) - 1),
              "key_sum": str(sum(k for k in keys if k is not None)), "hash_sum": str(_hash_sum(keys))}  # fmt: skip
    expected = fingerprint.Fingerprint.from_json(stored)
    with worker.connect() as conn, conn.cursor() as cursor:
        key_table(conn, database, sql_type, keys)
        cursor.execute(fingerprint.sql(database, "t", "k", kind=expected.kind))
        assert fingerprint.from_row(cursor.fetchone(), expected.kind) == expected
    assert expected.to_json() == stored, "kept as it was stored"


def test_repeated_keys_moved_by_opposite_amounts_on_a_worker_are_seen(worker: Server, database: str) -> None:
    """A child table repeats its keys: every row of one object moved up, every row of another down by as much
    keeps the count and the sum of the keys."""
    loaded = [10**15 + 40] * 2 + [10**15 + 70] * 2
    with worker.connect() as conn, conn.cursor() as cursor:
        key_table(conn, database, "BIGINT", loaded)
        cursor.execute(fingerprint.sql(database, "t", "k"))
        assert fingerprint.from_row(cursor.fetchone()) == fingerprint.of_keys(pa.array(loaded, pa.int64()), 4)
        cursor.execute(f"UPDATE {quote_table(database, 't')} SET k = k + IF(k = {10**15 + 40}, 1, -1)")
        cursor.execute(fingerprint.sql(database, "t", "k"))
        on_worker = fingerprint.from_row(cursor.fetchone())
    assert on_worker != fingerprint.of_keys(pa.array(loaded, pa.int64()), 4)
    assert (on_worker.rows, on_worker.keys) == (4, 4)

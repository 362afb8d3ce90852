"""Parquet files: streamed as text from memory (`local_infile`), nulls and non-finite floats as NULL, bytes exact."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loader_assets.problems import WorkerDown
from loader_assets.workers import load_data
from loader_assets.workers.attempt_partitions import count_rows, partitions_of
from loader_assets.workers.formats import batch_as_text, parquet_text_blocks
from loader_assets.workers.load_data import LoadError, load_file
from loader_assets_tests.workers.conftest import OBJECT_NAMES
from loader_assets_tests.workers.test_loader import fetch


def object_table(rows: int, start: int = 1) -> pa.Table:
    ids = list(range(start, start + rows))
    return pa.table(
        {
            "objectId": pa.array(ids, pa.int64()),
            "chunkId": pa.array([6630] * rows, pa.int32()),
            "subChunkId": pa.array([i % 7 for i in ids], pa.int32()),
            "ra": pa.array([i * 0.1 for i in ids], pa.float64()),
            "decl": pa.array([-i / 3 for i in ids], pa.float64()),
            "name": pa.array([f"n{i}" for i in ids], pa.string()),
            "payload": pa.array([i.to_bytes(4, "little") for i in ids], pa.binary()),
        }
    )


def load_parquet(worker: str, database: str, table: str, path: Path, attempt: int = 11):
    return load_file(worker, database, table, path, "parquet", None, "latin1", attempt, OBJECT_NAMES)


def test_parquet_values_round_trip_exactly(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    source = pa.table(
        {
            "objectId": pa.array([1, 2, 3, 4, 5], pa.int64()),
            "chunkId": pa.array([6630] * 5, pa.int32()),
            "subChunkId": pa.array([0, 1, 2, 3, 4], pa.int32()),
            "ra": pa.array([0.1, math.nan, math.inf, -math.inf, None], pa.float64()),
            "decl": pa.array([1e-300, -2.5, 123456789.123456789, 0.0, 7.0], pa.float64()),
            "name": pa.array(["léon", "tab\there", "back\\slash", None, "new\nline"], pa.string()),
            "payload": pa.array([b"a\nb", b"\t\\\x00\xff", b"\\N", None, b"\r\n"], pa.binary()),
        }
    )
    path = tmp_path / "exact.parquet"
    pq.write_table(source, path)
    result = load_parquet(worker, database, table, path)
    assert (result.rows, result.warnings) == (5, 0)
    rows = fetch(worker, database, table)
    assert [row[3] for row in rows] == [0.1, None, None, None, None]
    assert [row[4] for row in rows] == [1e-300, -2.5, 123456789.123456789, 0.0, 7.0]
    assert [row[5] for row in rows] == ["léon", "tab\there", "back\\slash", None, "new\nline"]
    assert [row[6] for row in rows] == [b"a\nb", b"\t\\\x00\xff", b"\\N", None, b"\r\n"]


def test_finite_numbers_with_nulls_round_trip_exactly(worker, database, chunk_table, tmp_path):
    """Floats without NaN or ±inf take the fast formatting (orjson); their nulls and extremes load exactly (the
    text of int nulls: below)."""
    table = chunk_table()
    extremes = [5e-324, None, 1.7976931348623157e308, -0.0, 1e16]
    source = object_table(5).set_column(3, "ra", pa.array(extremes, pa.float64()))
    path = tmp_path / "finite.parquet"
    pq.write_table(source, path)
    assert (load_parquet(worker, database, table, path).rows, count_rows(worker, database, table)) == (5, 5)
    rows = fetch(worker, database, table)
    assert [row[3] for row in rows] == extremes


def test_batch_text_of_every_number_type():
    batch = pa.record_batch(
        {
            "i8": pa.array([-128, None, 127], pa.int8()),
            "u64": pa.array([0, 2**64 - 1, None], pa.uint64()),
            "i64": pa.array([-(2**63), 0, 2**63 - 1], pa.int64()),
            "f32": pa.array([0.1, 3.4028235e38, None], pa.float32()),
            "f64": pa.array([0.1, float("nan"), 1e-7], pa.float64()),
            "flag": pa.array([True, False, None], pa.bool_()),
            "band": pa.array(["g", "r", "g"], pa.dictionary(pa.int8(), pa.string())),
        }
    )
    lines = batch_as_text(batch).to_pybytes().split(b"\n")
    assert lines[-1] == b""
    fields = [line.split(b"\t") for line in lines[:-1]]
    assert [row[:3] for row in fields] == [
        [b"-128", b"0", b"-9223372036854775808"],
        [b"\\N", b"18446744073709551615", b"0"],
        [b"127", b"\\N", b"9223372036854775807"],
    ]
    assert [row[3] for row in fields][2] == b"\\N"
    assert [np.float32(float(row[3])) for row in fields[:2]] == [np.float32(0.1), np.float32(3.4028235e38)]
    assert [row[4] for row in fields][1] == b"\\N"
    assert [float(row[4]) for row in fields[::2]] == [0.1, 1e-7]
    assert [row[5:] for row in fields] == [[b"1", b"g"], [b"0", b"r"], [b"\\N", b"g"]]


def test_parquet_in_several_batches(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    path = tmp_path / "big.parquet"
    pq.write_table(object_table(200_000), path, row_group_size=30_000)
    assert load_parquet(worker, database, table, path).rows == 200_000
    assert count_rows(worker, database, table) == 200_000


def test_truncated_parquet_is_refused_and_leaves_nothing(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    whole = tmp_path / "whole.parquet"
    pq.write_table(object_table(1000), whole)
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(LoadError, match=re.escape(str(truncated))):
        load_parquet(worker, database, table, truncated)
    assert count_rows(worker, database, table) == 0


def test_parquet_corrupt_mid_file_drops_what_was_streamed(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    path = tmp_path / "corrupt.parquet"
    pq.write_table(object_table(200_000), path, row_group_size=20_000, compression="none")
    data = bytearray(path.read_bytes())
    middle = len(data) * 3 // 4
    data[middle : middle + 4096] = b"\xff" * 4096  # garbage inside a late row group, footer intact
    path.write_bytes(bytes(data))
    with pytest.raises(LoadError, match=re.escape(str(path))):
        load_parquet(worker, database, table, path)
    assert partitions_of(worker, database, table) == []
    assert count_rows(worker, database, table) == 0


def test_null_in_not_null_column_is_refused_with_its_row(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    source = object_table(3).set_column(2, "subChunkId", pa.array([1, None, 3], pa.int32()))
    path = tmp_path / "null.parquet"
    pq.write_table(source, path)
    with pytest.raises(LoadError, match=r"null.parquet.*row 2"):
        load_parquet(worker, database, table, path)
    assert count_rows(worker, database, table) == 0


def test_a_load_whose_connection_is_killed_mid_send_names_the_lost_link(
    worker, database, chunk_table, tmp_path, monkeypatch
):
    """pymysql ends a broken LOCAL exchange on the socket it closed (an AttributeError): the worker's line says
    the link was lost, not that."""
    table = chunk_table()
    path = tmp_path / "killed.parquet"
    pq.write_table(object_table(1_000), path)

    def blocks(parquet, columns):
        first = next(parquet_text_blocks(parquet, columns))
        yield first
        with worker.connect() as conn, conn.cursor() as cursor:  # the LOAD DATA is running: it asked for its data
            cursor.execute("SELECT id FROM information_schema.processlist WHERE info LIKE 'LOAD DATA LOCAL%'")
            for (thread,) in cursor.fetchall():
                cursor.execute(f"KILL CONNECTION {thread}")
        for _ in range(256):  # far more than socket buffers hold: a send meets the closed link
            yield first

    monkeypatch.setattr(load_data, "parquet_text_blocks", blocks)
    with pytest.raises(WorkerDown) as raised:
        load_parquet(worker, database, table, path)
    assert "gone away" in str(raised.value) or "Lost connection" in str(raised.value)
    assert "NoneType" not in str(raised.value), str(raised.value)

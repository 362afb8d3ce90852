"""Loading text files into per-attempt partitions, and refusing bad input without leaving rows behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from loader_assets.workers.attempt_partitions import count_rows, drop_attempt_partitions, partitions_of
from loader_assets.workers.connection import Server, quote_table
from loader_assets.workers.load_data import LoadError, load_file
from loader_assets_tests.workers.conftest import OBJECT_NAMES, ChunkTableFactory

GOOD_CSV = b'1,6630,1,10.5,-3.25,"a b",xx\n2,6630,2,\\N,1e3,"x,y",\\N\n3,6630,3,1,2,plain,yy\n'


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def load(worker: Server, database: str, table: str, path: Path, attempt: int, fmt: str = "csv", **kw) -> object:
    charset = kw.pop("charset", "latin1")
    columns = kw.pop("columns", OBJECT_NAMES)
    return load_file(worker, database, table, path, fmt, kw or None, charset, attempt, columns)


def fetch(worker: Server, database: str, table: str, order: str = "objectId") -> list[tuple]:
    with worker.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {quote_table(database, table)} ORDER BY {order}")
        return list(cursor.fetchall())


def test_load_small_director_chunk(worker, database, chunk_table: ChunkTableFactory, tmp_path):
    table = chunk_table()
    result = load(worker, database, table, write(tmp_path, "chunk_6630.csv", GOOD_CSV), attempt=7)
    assert (result.rows, result.warnings, result.empty) == (3, 0, False)
    assert result.bytes == len(GOOD_CSV)
    assert fetch(worker, database, table) == [
        (1, 6630, 1, 10.5, -3.25, "a b", b"xx", 7),
        (2, 6630, 2, None, 1000.0, "x,y", None, 7),
        (3, 6630, 3, 1.0, 2.0, "plain", b"yy", 7),
    ]
    assert partitions_of(worker, database, table) == [7]


def test_overlap_table_loads_separately(worker, database, chunk_table: ChunkTableFactory, tmp_path):
    chunk_table()
    path = write(tmp_path, "chunk_6630_overlap.csv", GOOD_CSV)
    load(worker, database, "ObjectFullOverlap_6630", path, attempt=3)
    assert count_rows(worker, database, "ObjectFullOverlap_6630") == 3
    assert count_rows(worker, database, "Object_6630") == 0


def test_each_attempt_has_its_partition_and_a_retry_replaces_it(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    first = write(tmp_path, "a.tsv", b"1\t6630\t1\t1\t1\ta\tp\n2\t6630\t1\t1\t1\tb\tq\n")
    second = write(tmp_path, "b.tsv", b"3\t6630\t1\t1\t1\tc\tr\n")
    load(worker, database, table, first, attempt=1, fmt="tsv")
    load(worker, database, table, second, attempt=2, fmt="tsv")
    load(worker, database, table, second, attempt=2, fmt="tsv")  # the same attempt id again
    assert partitions_of(worker, database, table) == [1, 2]
    assert count_rows(worker, database, table, attempt_id=1) == 2
    assert count_rows(worker, database, table, attempt_id=2) == 1
    assert count_rows(worker, database, table) == 3


def test_drop_attempt_partitions_removes_exactly_those(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    for attempt, object_id in ((1, 10), (2, 20), (3, 30)):
        load(
            worker,
            database,
            table,
            write(tmp_path, f"{attempt}.txt", f"{object_id}\t6630\t1\t0\t0\tn\tp\n".encode()),
            attempt,
            "txt",
        )
    assert drop_attempt_partitions(worker, database, table, [2, 9]) == [2]  # 9 never existed
    assert partitions_of(worker, database, table) == [1, 3]
    assert [row[0] for row in fetch(worker, database, table)] == [10, 30]


def test_escaped_newlines_and_latin1_bytes_round_trip(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    # A backslash-escaped newline, tab, backslash and NUL inside a VARBINARY; a latin1 é in a VARCHAR.
    data = b'1,6630,1,0,0,"l\xe9on","a\\\nb\\\tc\\\\d\\0e"\n2,6630,1,0,0,\\N,"\\\n"\n'
    result = load(worker, database, table, write(tmp_path, "binary.csv", data), attempt=4)
    assert result.rows == 2
    rows = fetch(worker, database, table)
    assert rows[0][5:7] == ("léon", b"a\nb\tc\\d\x00e")
    assert rows[1][5:7] == (None, b"\n")


def test_carriage_returns_inside_values_load_every_record(worker, database, chunk_table, tmp_path):
    """A `\r` is data to LOAD DATA (lines end at `\n`): the file's records are counted as it reads them."""
    table = chunk_table()
    data = b"1\t6630\t1\t0\t0\ta\rb\tx\r\n2\t6630\t1\t0\t0\tc\ty\n"
    path = write(tmp_path, "cr.tsv", data)
    result = load_file(worker, database, table, path, "tsv", None, "latin1", 5, OBJECT_NAMES, key="objectId")
    assert (result.rows, result.warnings) == (2, 0)
    assert [row[5:7] for row in fetch(worker, database, table)] == [("a\rb", b"x\r"), ("c", b"y")]


def test_empty_file_loads_nothing_and_is_flagged(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    result = load(worker, database, table, write(tmp_path, "empty.csv", b""), attempt=5)
    assert (result.rows, result.empty) == (0, True)
    assert count_rows(worker, database, table) == 0


BAD_INPUTS = {
    # name: (file content, text expected in the message)
    "malformed_row": (b'1,6630,1,0,0,a,p\n2,6630,1,0,0,"unclosed,p\n3,6630,1,0,0,c,p\n', "records in the file"),
    "wrong_column_count": (b"1,6630,1,0,0,a,p\n2,6630,1,0,0,b,p,extra\n", "line 2: Row 2 was truncated"),
    "non_numeric": (b"1,6630,1,0,0,a,p\n2,6630,1,zero,0,b,p\n", "line 2: Incorrect double value: 'zero'"),
    "truncated_last_line": (b"1,6630,1,0,0,a,p\n2,6630,1,0", "line 2: Row 2 doesn't contain data"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_naming_file_and_line_and_leaves_nothing(case, worker, database, chunk_table, tmp_path):
    table = chunk_table()
    content, expected = BAD_INPUTS[case]
    path = write(tmp_path, f"{case}.csv", content)
    with pytest.raises(LoadError) as failure:
        load(worker, database, table, path, attempt=6)
    assert str(path) in str(failure.value)
    assert expected in str(failure.value)
    assert partitions_of(worker, database, table) == []
    assert count_rows(worker, database, table) == 0


def test_warnings_up_to_the_cases_tolerance_keep_the_load(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    path = write(tmp_path, "one_warning.csv", b"1,6630,1,0,0,a,p\n2,6630,1,zero,0,b,p\n")
    result = load_file(worker, database, table, path, "csv", None, "latin1", 3, OBJECT_NAMES, max_warnings=1)
    assert (result.rows, result.warnings) == (2, 1)
    with pytest.raises(LoadError, match=r"2 records in the file, 2 loaded, 1 warnings; line 2: Incorrect double"):
        load_file(worker, database, table, path, "csv", None, "latin1", 4, OBJECT_NAMES, max_warnings=0)


def test_more_warnings_than_a_reply_can_count_are_all_counted(worker, database, chunk_table, tmp_path):
    """A statement's reply counts its warnings in 16 bits: beyond 65,535 the session's own count is told."""
    table = chunk_table()
    lines = b"".join(b"%d,6630,1,zero,0,a,p\n" % key for key in range(1, 70_001))
    with pytest.raises(LoadError, match=r"70000 records in the file, 70000 loaded, 70000 warnings"):
        load(worker, database, table, write(tmp_path, "warnings.csv", lines), attempt=5)
    assert count_rows(worker, database, table) == 0


def test_bad_line_after_escaped_newline_is_reported_on_its_physical_line(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    data = b'1,6630,1,0,0,a,"x\\\ny"\n2,6630,1,0,0,b,p\n3,6630,1,oops,0,c,p\n'
    with pytest.raises(LoadError, match=r"line 4: Incorrect double value: 'oops'.* at row 3"):
        load(worker, database, table, write(tmp_path, "shifted.csv", data), attempt=8)


def test_duplicate_key_is_an_error_too(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    with pytest.raises(LoadError, match="Duplicate entry"):
        load(worker, database, table, write(tmp_path, "dup.csv", b"1,6630,1,0,0,a,p\n1,6630,1,0,0,b,p\n"), attempt=9)
    assert count_rows(worker, database, table) == 0


def test_missing_file_is_a_load_error(worker, database, chunk_table, tmp_path):
    table = chunk_table()
    with pytest.raises(LoadError, match="no such file"):
        load(worker, database, table, tmp_path / "absent.csv", attempt=1)

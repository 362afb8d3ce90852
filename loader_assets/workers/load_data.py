"""The fast path from one input file to one worker table: `LOAD DATA LOCAL INFILE` into the attempt's partition.

With LOCAL, MariaDB downgrades data errors to warnings and keeps the rows, so every load is checked
afterwards: more warnings than the case tolerates, or a row count different from the file's record count,
drops the partition and raises `LoadError`. While it loads, one parse of the file gives the key fingerprint
(`fingerprint`) and the record count; Parquet is converted to text as it goes (`formats`) and sent from memory
(`local_infile`).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pymysql

from loader_assets.problems import BadInput
from loader_assets.qserv.metadata import FILE_FORMATS, Dialect
from loader_assets.workers import fingerprint, local_infile
from loader_assets.workers.attempt_partitions import drop_partitions, partition_name, reset_partition
from loader_assets.workers.connection import (
    Server,
    charset_name,
    is_servers_fault,
    quote_name,
    quote_table,
)
from loader_assets.workers.ddl import TRANS_ID
from loader_assets.workers.fingerprint import Fingerprint, FingerprintError
from loader_assets.workers.formats import (
    STREAM_DIALECT,
    count_records,
    line_of_record,
    parquet_text_blocks,
    prefetch,
)
from loader_assets.workers.statements import InFlight

_SHOWN_WARNINGS = 5
_OK_PACKET_WARNINGS = 0xFFFF  # the most warnings a statement's reply can count (a 16-bit field)
# The files' parses beside their LOAD DATA: threads kept for the process (one made and joined per file cost
# more than the parse of a small file); more than the streams of any load, so a parse never waits for a thread.
_READERS = ThreadPoolExecutor(max_workers=64, thread_name_prefix="file-reader")
# Test hook: the file LOAD DATA reads instead of a text input (a line dropped or altered in transit).
TRANSIT: Callable[[Path], Path] | None = None
_ROW_NUMBER = re.compile(r"\brow (\d+)", re.IGNORECASE)

__all__ = ["LoadError", "LoadResult", "load_file"]


@dataclass(frozen=True)
class LoadResult:
    rows: int
    warnings: int
    seconds: float
    bytes: int
    empty: bool = False
    fingerprint: Fingerprint | None = None  # of the key column, from the file
    unproved: str | None = None  # why the file's keys could not be fingerprinted
    keys: pa.Array | None = field(default=None, repr=False)  # the file's key column (NULLs kept), when parsed


class LoadError(BadInput):
    """The file could not be loaded exactly; nothing of it is left in the table."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}", "correct the file, register the case again and load it")
        self.path = path

    def __str__(self) -> str:  # what the notice's history records
        return self.cause


def dialect_clause(conn: pymysql.Connection, dialect: Dialect) -> str:
    """The FIELDS … LINES … clause of LOAD DATA for a dialect."""
    return (
        f"FIELDS TERMINATED BY {conn.escape(dialect.fields_terminated_by)} "
        f"ENCLOSED BY {conn.escape(dialect.fields_enclosed_by)} ESCAPED BY {conn.escape(dialect.fields_escaped_by)} "
        f"LINES TERMINATED BY {conn.escape(dialect.lines_terminated_by)}"
    )


def load_file(
    worker: Server,
    database: str,
    table_name: str,
    path: Path,
    fmt: str,
    dialect: Mapping[str, str] | Dialect | None,
    charset: str,
    attempt_id: int,
    columns: Sequence[str],
    *,
    key: str | None = None,
    max_warnings: int = 0,
    partition_ready: bool = False,
    statements: InFlight | None = None,
) -> LoadResult:
    """Load one file into partition p<attempt_id> of `database.table_name` (replacing that partition, unless
    `partition_ready`: the table was just created with it, empty).

    With `key`, the fingerprint of that column is computed from the file while it loads. Up to
    `max_warnings` LOAD DATA warnings are tolerated when every record loaded. Raises LoadError (nothing of
    the file left), WorkerDown (the worker is down or went away) or StatementAbandoned (given up on purpose,
    through `statements`, where the LOAD DATA is registered while it runs).
    """
    assert fmt in FILE_FORMATS, f"unknown format {fmt!r}; expected one of {FILE_FORMATS}"
    path = Path(path)
    if not path.is_file():
        raise LoadError(path, "no such file")
    dialect = Dialect.of(fmt, dialect)  # resolved once: the parse, the count and the statement read it
    started = time.monotonic()
    table = quote_table(database, table_name)
    with worker.connect(local_infile=True, reuse=True) as conn, conn.cursor() as cursor:
        sent = TRANSIT(path) if TRANSIT and fmt != "parquet" else path  # what reaches the server (a test hook)
        # Read from the file as the partitioner wrote it, while LOAD DATA loads it: off the critical path.
        reading = _READERS.submit(_read_file, path, sent, fmt, columns, key, dialect)
        what = f"LOAD DATA of {path.name} into {table_name}"
        watched = statements.running(worker, conn, what, database) if statements else None
        with watched or contextlib.nullcontext() as running:
            if not partition_ready:
                reset_partition(cursor, database, table_name, attempt_id)
            try:
                if fmt == "parquet":
                    loaded, expected = _load_parquet(cursor, table, path, attempt_id, columns)
                else:
                    loaded = _load_text(cursor, table, path, sent, attempt_id, columns, fmt, dialect, charset)
                    expected = _expected_records(reading.result(), loaded, sent, dialect)
                warnings = _check_load(cursor, path, fmt, dialect, loaded, expected, max_warnings)
            except Exception as error:
                if running is not None and running.abandoned_because is not None:  # raised as StatementAbandoned
                    raise
                # A lost server (or a full disk) cannot drop anything now; a retry of the attempt id starts by
                # dropping it.
                if not is_servers_fault(error):
                    drop_partitions(cursor, database, table_name, [attempt_id])
                raise
        read = reading.result()
    return LoadResult(
        rows=loaded, warnings=warnings, seconds=time.monotonic() - started, bytes=path.stat().st_size,
        empty=loaded == 0, fingerprint=read.fingerprint, unproved=read.unproved, keys=read.keys,
    )  # fmt: skip


@dataclass(frozen=True)
class FileRead:
    """What one read of a file tells: its key fingerprint (or why none: the load stands, validation says so)
    and, for text, its records: as LOAD DATA splits them (`counted`), or the parse's rows, at least as many."""

    fingerprint: Fingerprint | None
    unproved: str | None
    records: int | None
    keys: pa.Array | None = None
    counted: bool = True


def _read_file(path: Path, sent: Path, fmt: str, columns: Sequence[str], key: str | None, dialect: Dialect) -> FileRead:
    """One parse serves the fingerprint and, where LOAD DATA ends lines at `\n` only, the record count; the
    file is counted apart otherwise, and of what is sent."""
    found, unproved, keys = None, None, None
    if key:
        try:
            keys, rows = fingerprint.key_column(path, fmt, columns, key, dialect)
            found = fingerprint.of_keys(keys, rows)
        except FingerprintError as error:
            unproved = error.cause
    if fmt == "parquet":
        return FileRead(found, unproved, None, keys)
    if found is not None and sent == path and dialect.lines_terminated_by == "\n":
        return FileRead(found, unproved, found.rows, keys, counted=False)
    return FileRead(found, unproved, count_records(sent, dialect), keys)


def _expected_records(read: FileRead, loaded: int, sent: Path, dialect: Dialect) -> int:
    """The file's records as LOAD DATA splits them. The parse splits lines wherever LOAD DATA does and also at a
    `\r`, so its rows are at least the records, which are at least what LOAD DATA loaded: when the parse's rows
    equal the rows loaded, all three agree. Only otherwise is the file counted (a scan of it: ~0.1 ms a MB)."""
    assert read.records is not None
    if read.counted or read.records == loaded:
        return read.records
    return count_records(sent, dialect)


def _load_data_sql(
    conn: pymysql.Connection,
    table: str,
    path: Path,
    attempt_id: int,
    columns: Sequence[str],
    dialect: Dialect,
    charset: str,
) -> str:
    return (
        f"LOAD DATA LOCAL INFILE {conn.escape(str(path))} INTO TABLE {table} "
        f"PARTITION ({partition_name(attempt_id)}) CHARACTER SET {charset_name(charset)} "
        f"{dialect_clause(conn, dialect)} ({', '.join(quote_name(c) for c in columns)}) "
        f"SET {quote_name(TRANS_ID)} = {int(attempt_id)}"
    )


def _load_text(
    cursor: pymysql.cursors.Cursor,
    table: str,
    path: Path,
    sent: Path,
    attempt_id: int,
    columns: Sequence[str],
    fmt: str,
    dialect: Mapping[str, str] | Dialect | None,
    charset: str,
) -> int:
    """Rows loaded from `sent` (the file, unless a test alters it in transit)."""
    sql = _load_data_sql(cursor.connection, table, sent, attempt_id, columns, Dialect.of(fmt, dialect), charset)
    _execute_load(cursor, path, sql)
    return cursor.rowcount


def _execute_load(cursor: pymysql.cursors.Cursor, path: Path, sql: str) -> None:
    """Run a LOAD DATA; a statement error (not a lost server) becomes a LoadError naming the file."""
    try:
        local_infile.execute(cursor, sql)
    except pymysql.err.MySQLError as error:
        if is_servers_fault(error):  # the server's problem, not the file's
            raise
        raise LoadError(path, f"LOAD DATA failed: {error.args[-1]}") from error


def _open_parquet(path: Path, columns: Sequence[str]) -> pq.ParquetFile:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise LoadError(path, f"unreadable parquet file: {error}") from error
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise LoadError(path, f"parquet file lacks columns {missing}")
    return parquet


def _load_parquet(
    cursor: pymysql.cursors.Cursor, table: str, path: Path, attempt_id: int, columns: Sequence[str]
) -> tuple[int, int]:
    """(rows loaded, rows in the file); Arrow strings are UTF-8, so the stream is read as utf8mb4."""
    parquet = _open_parquet(path, columns)
    blocks = prefetch(parquet_text_blocks(parquet, columns))
    sent = 0

    def texts() -> Iterator[pa.Buffer]:
        nonlocal sent
        for text, rows in blocks:
            yield text
            sent += rows

    try:
        with local_infile.stream(texts()) as name:
            sql = _load_data_sql(cursor.connection, table, Path(name), attempt_id, columns, STREAM_DIALECT, "utf8mb4")
            _execute_load(cursor, path, sql)
    except (pa.ArrowException, OSError) as error:  # raised by pyarrow while it converted a batch
        raise LoadError(path, f"corrupt parquet file after {sent} rows: {error}") from error
    finally:
        blocks.close()  # stops the conversion when the statement ended before it did
    return cursor.rowcount, parquet.metadata.num_rows


# --- checking ---------------------------------------------------------------------------------------------


def _check_load(
    cursor: pymysql.cursors.Cursor,
    path: Path,
    fmt: str,
    dialect: Mapping[str, str] | Dialect | None,
    loaded: int,
    expected: int,
    max_warnings: int = 0,
) -> int:
    """Number of warnings, at most `max_warnings`: more, or a count mismatch, raises LoadError."""
    count = cursor.warning_count  # from the LOAD DATA's own reply: no round trip
    if count >= _OK_PACKET_WARNINGS:  # that field saturates: the session knows them all
        cursor.execute("SELECT @@warning_count")
        count = int(cursor.fetchone()[0])
    if count <= max_warnings and loaded == expected:
        return count
    cursor.execute(f"SHOW WARNINGS LIMIT {_SHOWN_WARNINGS}")
    messages = [_locate(path, fmt, dialect, message) for _level, _code, message in cursor.fetchall()]
    unit = "rows" if fmt == "parquet" else "records"
    problem = f"{expected} {unit} in the file, {loaded} loaded, {count} warnings"
    raise LoadError(path, "; ".join([problem, *messages]))


def _locate(path: Path, fmt: str, dialect: Mapping[str, str] | Dialect | None, message: str) -> str:
    """Prefix a warning with the line (text) or row (parquet) it is about."""
    match = _ROW_NUMBER.search(message)
    if match is None:
        return message
    row = int(match.group(1))
    if fmt == "parquet":
        return f"row {row}: {message}"
    return f"line {line_of_record(path, row, Dialect.of(fmt, dialect))}: {message}"

"""Input formats on their way to LOAD DATA: records of a text file counted as MariaDB splits them, Parquet
converted to tab-separated text (`\\N` for nulls and for NaN/±inf) a batch at a time, in a thread of its own, so
that converting the next batch overlaps sending this one (`local_infile.stream`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import cache
from pathlib import Path
from queue import Empty, Queue
from typing import TypeVar

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loader_assets.qserv.metadata import Dialect

_READ_BLOCK = 16 * 1024 * 1024
_PARQUET_BATCH_ROWS = 64 * 1024
_CONVERT_POOL = ThreadPoolExecutor(max_workers=max(1, min(4, (os.cpu_count() or 1) - 1)), thread_name_prefix="to-text")
T = TypeVar("T")
# What the parquet stream is written in: the text format LOAD DATA reads by default.
STREAM_DIALECT = Dialect(fields_terminated_by="\t")


# --- text files -------------------------------------------------------------------------------------------


def file_records(path: Path, fmt: str, dialect: Dialect) -> int:
    """Records of one input file: a Parquet file's rows (from its footer), a text file's records."""
    if fmt == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    return count_records(path, dialect)


def count_records(path: Path, dialect: Dialect) -> int:
    """Records in a text file as LOAD DATA splits it: line terminators not escaped by an odd run of the
    escape character; a last record without a terminator counts too."""
    terminator = dialect.lines_terminated_by.encode("latin1")
    escape = dialect.fields_escaped_by.encode("latin1")
    if len(terminator) == 1 and len(escape) <= 1:
        return _count_single_byte_terminators(path, terminator[0], escape[0] if escape else None)
    return _count_terminators(path, terminator, escape)


def _count_single_byte_terminators(path: Path, terminator: int, escape: int | None) -> int:
    """The common case (`\\n`, escaped by a backslash) with numpy, which also releases the GIL meanwhile."""
    records = 0
    escape_run = 0  # escape bytes ending the previous block: an escape run may span blocks
    at_boundary = True  # the last byte read ended a record (or nothing was read yet)
    buffer = bytearray(_READ_BLOCK)
    with path.open("rb", buffering=0) as stream:
        while size := stream.readinto(buffer):
            view = np.frombuffer(buffer, dtype=np.uint8, count=size)
            ends = np.flatnonzero(view == terminator)
            has_escape = escape is not None and (escape_run > 0 or buffer.find(escape, 0, size) >= 0)
            escaped = _escaped_ends(view, ends, escape, escape_run) if has_escape else set()
            records += len(ends) - len(escaped)
            at_boundary = len(ends) > 0 and int(ends[-1]) == size - 1 and size - 1 not in escaped
            escape_run = _escapes_before(view, size, escape, escape_run) if has_escape else 0
    return records + (0 if at_boundary else 1)


def _escaped_ends(view: np.ndarray, ends: np.ndarray, escape: int, carried: int) -> set[int]:
    """Positions of terminators preceded by an odd run of escape bytes (candidates picked vectorised)."""
    preceded = ends[ends > 0]
    candidates = [int(e) for e in preceded[view[preceded - 1] == escape]]
    if carried and len(ends) and ends[0] == 0:
        candidates.insert(0, 0)
    return {e for e in candidates if _escapes_before(view, e, escape, carried) % 2 == 1}


def _escapes_before(view: np.ndarray | bytes, position: int, escape: int, carried: int) -> int:
    """Escape bytes right before `position`, continuing into the previous block when the run reaches 0."""
    run = 0
    while position - run - 1 >= 0 and view[position - run - 1] == escape:
        run += 1
    return run + carried if run == position else run


def _count_terminators(path: Path, terminator: bytes, escape: bytes) -> int:
    """Any terminator and escape (e.g. `\\r\\n`): blocks cut right after a terminator, so that no escape run
    spans two pieces."""
    records = 0
    pending = b""  # what follows the last terminator read so far
    open_record = False  # the last terminator read was escaped: its record goes on
    with path.open("rb", buffering=0) as stream:
        while block := stream.read(_READ_BLOCK):
            data = pending + block
            cut = data.rfind(terminator)
            if cut < 0:
                pending = data
                continue
            cut += len(terminator)
            piece, pending = data[:cut], data[cut:]
            records += piece.count(terminator) - _escaped_terminators(piece, escape, terminator)
            open_record = _escape_run(piece, len(piece) - len(terminator), escape) % 2 == 1
    return records + (1 if pending or open_record else 0)


def _escaped_terminators(piece: bytes, escape: bytes, terminator: bytes) -> int:
    """Terminators in the piece preceded by an odd number of escape characters."""
    if not escape or escape + terminator not in piece:
        return 0  # the common case: one scan, no regex
    runs = re.finditer(re.escape(escape) + b"+" + re.escape(terminator), piece)
    return sum(1 for run in runs if ((len(run.group()) - len(terminator)) // len(escape)) % 2 == 1)


def _escape_run(data: bytes, position: int, escape: bytes) -> int:
    """Escape characters right before `position` (MariaDB's ESCAPED BY is a single character, or none)."""
    return _escapes_before(data, position, escape[0], 0) if escape else 0


def line_of_record(path: Path, record: int, dialect: Dialect) -> int:
    """1-based physical line where a record starts (they differ once a field holds an escaped newline)."""
    terminator = dialect.lines_terminated_by.encode("latin1")
    escape = dialect.fields_escaped_by.encode("latin1")
    data = path.read_bytes()  # only on the error path
    line, seen, position = 1, 1, 0
    while seen < record:
        end = data.find(terminator, position)
        if end < 0:
            break
        line += 1
        if _escape_run(data, end, escape) % 2 == 0:
            seen += 1
        position = end + len(terminator)
    return line


# --- parquet ----------------------------------------------------------------------------------------------

_NULL = b"\\N"
# Backslash first, or the escapes added for the others would be doubled.
_ESCAPES = ((b"\\", b"\\\\"), (b"\t", b"\\t"), (b"\n", b"\\n"), (b"\r", b"\\r"))


def column_as_text(array: pa.Array, end: bytes) -> pa.Array:
    """One column as LOAD DATA text, each value followed by `end` (large_binary, so bytes that are not UTF-8
    pass untouched)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        return column_as_text(array.dictionary_decode(), end)
    if pa.types.is_boolean(kind):
        return column_as_text(pc.cast(array, pa.int8()), end)  # "true"/"false" would not parse as numbers
    if kind in _ORJSON_NUMBERS and (not pa.types.is_floating(kind) or _all_finite(array)):
        return _numbers_as_text(array, end)
    if pa.types.is_floating(kind):
        array = pc.if_else(pc.is_finite(array), array, pa.scalar(None, kind))  # NaN, ±inf: NULL
    if _is_bytes_like(kind):
        text = pc.cast(array, pa.large_binary())
        for raw, escaped in _ESCAPES:
            text = pc.replace_substring(text, raw, escaped)
    else:
        text = pc.cast(pc.cast(array, pa.large_string()), pa.large_binary())
    # fill_null copies the whole column: only pay for it when there is a null.
    text = text.fill_null(_NULL) if text.null_count else text
    return pc.binary_join_element_wise(text, pa.scalar(end, pa.large_binary()), _nothing())


# Numbers orjson formats from numpy (ints by itoa, floats shortest round-trip by ryu): 2-3x less CPU than
# Arrow's cast to string, the costliest part of the conversion.
_ORJSON_NUMBERS = {
    pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64(),
    pa.float32(), pa.float64(),
}  # fmt: skip


@cache
def _nothing() -> pa.Scalar:
    """The empty separator of a join (made on first use: pyarrow imports pandas when it makes a scalar)."""
    return pa.scalar(b"", pa.large_binary())


def _all_finite(array: pa.Array) -> bool:
    return pc.all(pc.fill_null(pc.is_finite(array), True)).as_py() is not False


def _numbers_as_text(array: pa.Array, end: bytes) -> pa.Array:
    """orjson writes `[v0,v1,…]`: its commas and closing bracket become `end`, and the array of values points
    into that very buffer (value i: from after separator i-1 to separator i included)."""
    filled = array.fill_null(0) if array.null_count else array
    data = bytearray(orjson.dumps(filled.to_numpy(), option=orjson.OPT_SERIALIZE_NUMPY))
    view = np.frombuffer(data, dtype=np.uint8)
    separators = np.flatnonzero(view == ord(","))
    view[separators], view[-1] = end[0], end[0]
    offsets = np.empty(len(array) + 1, dtype=np.int64)
    offsets[0], offsets[1:-1], offsets[-1] = 1, separators + 1, len(data)
    text = pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(array), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    if array.null_count:
        text = pc.if_else(pc.is_valid(array), text, pa.scalar(_NULL + end, pa.large_binary()))
    return text


def _is_bytes_like(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_fixed_size_binary(kind)
    )


def batch_as_text(batch: pa.RecordBatch) -> pa.Buffer:
    """The rows of a batch as tab-separated, newline-terminated lines in one contiguous buffer."""
    # Columns convert in parallel where Arrow compute releases the GIL (strings, dates, decimals).
    ends = [b"\t"] * (batch.num_columns - 1) + [b"\n"]
    lines = pc.binary_join_element_wise(*_CONVERT_POOL.map(column_as_text, batch.columns, ends), _nothing())
    _validity, offsets, data = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int64)[lines.offset : lines.offset + len(lines) + 1]
    return data.slice(int(bounds[0]), int(bounds[-1] - bounds[0]))


def parquet_text_blocks(parquet: pq.ParquetFile, columns: Sequence[str]) -> Iterator[tuple[pa.Buffer, int]]:
    """(text, rows) per batch of the parquet file, columns in the table's order."""
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=list(columns), use_threads=True):
        if batch.num_rows:
            yield batch_as_text(batch), batch.num_rows


def prefetch(items: Iterator[T], depth: int = 3) -> Iterator[T]:
    """Produce the items in a background thread, up to `depth` ahead: converting the next batch overlaps
    with sending this one (the socket only takes what the server has consumed). Errors are re-raised here."""
    queue: Queue = Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                queue.put(item)
            queue.put(done)
        except BaseException as error:
            queue.put(error)

    producer = threading.Thread(target=produce, daemon=True, name="parquet-convert")
    producer.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # unblock a producer waiting on a full queue
            with suppress(Empty):
                queue.get(timeout=0.05)

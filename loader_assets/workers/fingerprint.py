"""An order-independent fingerprint of a table's key column, computed on both sides of a load.

From the file while it is loaded (parsed with the case's dialect; the integer value is hashed, not its
spelling) and in SQL on the attempt's partition on the worker: equal fingerprints prove that every key of the
file is on the worker, as often as in the file, without moving keys between them. `COUNT(*)` and `COUNT(k)`
catch a row lost or added; the exact sum of a hash of each key catches keys changed. The hash XORs three exact
products (each below 2^63: no BIGINT overflow) of the key's 32-bit halves, computed alike by the loader (in C)
and by MariaDB: the low half times two constants, the high half times a third. XOR-ing two products of the same
half makes it non-linear, so two keys moved by opposite amounts change the sum (the `hash_sum` of catalogs
before 2026-12-05, still verified with its own SQL, missed two thirds of such pairs), and it does not split into
a function of each half, so halves exchanged between keys change it too. Summed, not XOR-ed: a key present twice
does not cancel out, and child tables repeat their keys. One `SUM` in DECIMAL a row, where `hash_sum` took two.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loader_assets.problems import BadInput
from loader_assets.qserv.metadata import Dialect
from loader_assets.workers import _key_scan
from loader_assets.workers.connection import quote_name, quote_table

_LOW_BITS = (1 << 32) - 1
_MIX_FACTORS = (1540483477, 1911520717, 1264700843)  # below 2^31: a 32-bit half times one fits a BIGINT
_HASH_SUM_FACTORS = (2654435761, 2246822519)  # of the halves in `hash_sum` fingerprints
_NULL_TEXT = pa.nulls(1, pa.string())[0]  # not `None`: pa.scalar(None) imports pandas (0.22 s of a load's CPU)
SCAN_PIECE_BYTES = 1 << 20  # of a text file read at a time by `_scan_key`


class FingerprintError(BadInput):
    """The key column of a file cannot be read as integers (the attempt's keys then cannot be proved)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "correct the file's key column (the level's validation names the file)")


@dataclass(frozen=True)
class Kind:
    """A definition of the fingerprint: the names of its sums in the catalog's JSON, and their SQL over key `k`."""

    sums: tuple[str, ...]
    sql: Callable[[str], str]


def _mixed_sum(k: str) -> str:
    # MariaDB's bit operators read a BIGINT as its 64 bits (two's complement) and give BIGINT UNSIGNED: no CAST
    # (~14 ns a row less), and their sum is exact in DECIMAL.
    low, low_too, high = _MIX_FACTORS
    return (
        f"COALESCE(SUM((({k} & {_LOW_BITS}) * {low}) ^ (({k} & {_LOW_BITS}) * {low_too}) ^ (({k} >> 32) * {high})), 0)"
    )


def _hash_sums(k: str) -> str:
    low, high = _HASH_SUM_FACTORS
    return (
        f"COALESCE(SUM({k}), 0), COALESCE(SUM(((({k} & {_LOW_BITS}) * {low}) & {_LOW_BITS}) "
        f"+ ((({k} >> 32) * {high}) & {_LOW_BITS})), 0)"
    )


CURRENT = "mixed_sum"
KINDS = {
    CURRENT: Kind(("mixed_sum",), _mixed_sum),
    "hash_sum": Kind(("key_sum", "hash_sum"), _hash_sums),  # taken before 2026-12-05: verified, no longer taken
}


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    keys: int  # non-NULL keys
    sums: tuple[int, ...]  # named by its kind
    kind: str = CURRENT

    def to_json(self) -> dict[str, str]:
        sums = zip(KINDS[self.kind].sums, self.sums, strict=True)
        # Strings: the sums exceed JSON's safe integers.
        return {"rows": str(self.rows), "keys": str(self.keys), **{name: str(value) for name, value in sums}}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Fingerprint:
        kinds = [name for name, kind in KINDS.items() if set(kind.sums) <= data.keys()]
        if not kinds:  # e.g. `crc_sum`, of a version that never shipped
            raise FingerprintError(f"a fingerprint of an unknown kind ({', '.join(sorted(data))})")
        sums = tuple(int(data[name]) for name in KINDS[kinds[0]].sums)
        return cls(int(data["rows"]), int(data["keys"]), sums, kinds[0])


def empty(kind: str = CURRENT) -> Fingerprint:
    """The fingerprint of no rows (SQL's `COALESCE(SUM(...), 0)` over none)."""
    return Fingerprint(0, 0, (0,) * len(KINDS[kind].sums), kind)


def of_keys(keys: pa.Array, rows: int) -> Fingerprint:
    """Fingerprint of an int64 or uint64 key column (NULLs counted apart) of a file of `rows` records."""
    values = as_numpy(keys)
    # In C (`_key_scan.mixed_sum`): each key's 32-bit halves as MariaDB's bit operators read them (two's
    # complement for a negative key), the hashes summed as their 32-bit halves apart: exact up to 2^32 keys.
    high, low = _key_scan.mixed_sum(values, *_MIX_FACTORS)
    return Fingerprint(rows, len(values), ((high << 32) + low,))


def as_numpy(keys: pa.Array) -> np.ndarray:
    """The non-NULL keys of an int64 or uint64 column, read in place (pyarrow's `to_numpy` imports pandas: 0.2 s
    of a loading process's CPU)."""
    present = keys.drop_null() if keys.null_count else keys
    dtype = key_dtype(present)
    if len(present) == 0:
        return np.empty(0, dtype)
    return np.frombuffer(present.buffers()[1], dtype=dtype, count=len(present), offset=present.offset * dtype.itemsize)


def key_dtype(keys: pa.Array) -> np.dtype:
    return np.dtype(np.uint64 if keys.type == pa.uint64() else np.int64)


def as_arrow(values: np.ndarray) -> pa.Array:
    """A contiguous numpy key column as an Arrow array, in place (`pa.array` imports pandas)."""
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])


def key_column(path: Path, fmt: str, columns: Sequence[str], key: str, dialect: Dialect) -> tuple[pa.Array, int]:
    """The integer key column of one input file (NULLs kept) and the file's record count."""
    try:
        if fmt == "parquet":
            table = pq.read_table(path, columns=[key])
            return _as_integers(table.column(key).combine_chunks(), path, key), table.num_rows
        if path.stat().st_size == 0:
            return pa.nulls(0, pa.int64()), 0
        if dialect.lines_terminated_by not in ("\n", "\r\n"):
            raise FingerprintError(f"{path}: lines terminated by {dialect.lines_terminated_by!r} cannot be parsed here")
        if key in columns and (scanned := _scan_key(path, list(columns).index(key), len(columns), dialect)):
            return scanned
        try:  # the common case, read straight as int64
            table = _read_key(path, columns, key, dialect, pa.int64())
            return table.column(key).combine_chunks(), table.num_rows
        except pa.ArrowInvalid:  # spaces, a '+', beyond int64, not a number: read as text, as MariaDB reads it
            table = _read_key(path, columns, key, dialect, pa.string())
    except pa.ArrowException as error:
        raise FingerprintError(f"{path}: cannot read key column {key}: {error}") from error
    # As MariaDB reads an integer: spaces and a leading '+' do not count.
    text = pc.replace_substring_regex(pc.utf8_trim_whitespace(table.column(key).combine_chunks()), r"^\+", "")
    return _as_integers(pc.if_else(_is_null(text, dialect), _NULL_TEXT, text), path, key), table.num_rows


def _scan_key(path: Path, index: int, columns: int, dialect: Dialect) -> tuple[pa.Array, int] | None:
    """The key column (the `index`-th of `columns`) and record count of a text file read by `_key_scan` in C, a
    third of Arrow's CPU; None where it would not read the file exactly as `_read_key` does (quotes, a carriage
    return, an odd record or key): Arrow reads it then."""
    separator, escape = dialect.fields_terminated_by.encode(), dialect.fields_escaped_by.encode()
    if dialect.fields_enclosed_by or dialect.lines_terminated_by != "\n" or len(separator) != 1 or len(escape) > 1:
        return None
    # The C path takes a key's digits and sign before it looks for a separator or an escape.
    if separator == escape or {*separator, *escape} & {*b"\r\n-0123456789"}:
        return None
    keys, null_at, records = [], [], 0
    with path.open("rb", buffering=0) as file:
        # A small file's piece no bigger than it; not zeroed (a bytearray's memset was a tenth of the scan's CPU,
        # under the GIL): only the bytes read are looked at. The piece and the scan's output arrays are made once
        # and reused: a piece small enough to stay in the core's cache from its read to its scan (8 MB ones were
        # scanned back from memory, and each piece's arrays mapped anew).
        piece, held = np.empty(max(min(SCAN_PIECE_BYTES, os.fstat(file.fileno()).st_size + 1), 1), np.uint8), 0
        found_keys = found_nulls = np.empty(0, np.int64)
        while True:
            with memoryview(piece) as free:
                read = file.readinto(free[held:])
            held += read
            room = held // columns + 1  # a record spans `columns` bytes at least (but the last)
            if len(found_keys) < room:
                found_keys, found_nulls = np.empty(room, np.int64), np.empty(room, np.int64)
            with memoryview(piece) as data:
                found = _key_scan.scan(data[:held], found_keys, found_nulls, columns, index, separator[0],
                                       escape[0] if escape else -1, read == 0)  # fmt: skip
            if found is None:
                return None
            consumed, count, nulls = found
            keys.append(found_keys[:count].copy())  # the arrays are written again by the next piece
            null_at.append(found_nulls[:nulls] + records)
            records += count
            if read == 0:
                break
            piece[: held - consumed], held = piece[consumed:held], held - consumed  # numpy copies an overlap right
            if held == len(piece):  # a record longer than the piece
                piece = np.concatenate([piece, np.empty(len(piece), np.uint8)])
    return _int64_column(np.concatenate(keys), np.concatenate(null_at)), records


def integer_lines(text: bytes, dtype: np.dtype) -> np.ndarray:
    """Integers one a line (a worker's GROUP_CONCAT of a key column) as `dtype`: read by `_key_scan` in C (numpy's
    parser took a tenth of a second a GB loaded), by numpy where C does not (beyond int64)."""
    room = text.count(b"\n") + 1
    keys, nulls = np.empty(room, np.int64), np.empty(room, np.int64)
    found = _key_scan.scan(text, keys, nulls, 1, 0, ord(","), -1, True)
    # numpy's parser also refuses what C reads but `dtype` cannot hold (a negative key as uint64)
    if found is None or found[2] or (dtype.kind == "u" and bool((keys[: found[1]] < 0).any())):
        return np.fromstring(text.decode(), dtype=dtype, sep="\n")
    return keys[: found[1]].astype(dtype, copy=False)


def _int64_column(values: np.ndarray, null_at: np.ndarray) -> pa.Array:
    """An int64 Arrow array of `values`, NULL at the positions `null_at`."""
    if not len(null_at):
        return as_arrow(values)
    valid = np.ones(len(values), bool)
    valid[null_at] = False
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(pa.int64(), len(values), [bitmap, pa.py_buffer(values)], null_count=len(null_at))


def _read_key(path: Path, columns: Sequence[str], key: str, dialect: Dialect, kind: pa.DataType) -> pa.Table:
    """The key column of a text file; one thread (Arrow's pool would spend more CPU than it saves wall time
    beside a load), every line a record as LOAD DATA reads it."""
    typed = kind != pa.string()
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(columns), use_threads=False),
        parse_options=pacsv.ParseOptions(
            delimiter=dialect.fields_terminated_by,
            quote_char=dialect.fields_enclosed_by or False,
            escape_char=dialect.fields_escaped_by or False,
            newlines_in_values=True,
            ignore_empty_lines=False,  # an empty line is a record to LOAD DATA: not to be skipped here
        ),
        convert_options=pacsv.ConvertOptions(
            include_columns=[key], column_types={key: kind},
            # Typed, only MySQL's own NULL spellings are NULL (as `_is_null` says of the text).
            **({"null_values": _null_spellings(dialect), "quoted_strings_can_be_null": False} if typed else {}),
        ),
    )  # fmt: skip


def _null_spellings(dialect: Dialect) -> list[str]:
    spellings = ["N"] if dialect.fields_escaped_by else ["\\N"]
    return [*spellings, "NULL"] if dialect.fields_enclosed_by else spellings


def _is_null(text: pa.Array, dialect: Dialect) -> pa.Array:
    """MySQL's NULL spellings: `\\N` (which reads as `N` once the escape character is gone), and an unquoted
    `NULL` in a format whose fields may be enclosed."""
    # Patterns, not Python strings: a string argument goes through pa.scalar, which imports pandas.
    null = pc.match_substring_regex(text, r"^N$" if dialect.fields_escaped_by else r"^\\N$")
    return pc.or_(null, pc.match_substring_regex(text, r"^NULL$")) if dialect.fields_enclosed_by else null


def _as_integers(column: pa.Array, path: Path, key: str) -> pa.Array:
    """int64, or uint64 for unsigned keys beyond int64."""
    for kind in (pa.int64(), pa.uint64()):
        try:
            return pc.cast(column, kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    raise FingerprintError(f"{path}: key column {key} is not an integer column")


def sql(database: str, table_name: str, key: str, partition: str | None = None, kind: str = CURRENT) -> str:
    """The same fingerprint (of `kind`) computed by the worker, over the table or one partition."""
    k = quote_name(key)
    where = f" PARTITION ({partition})" if partition else ""
    return f"SELECT COUNT(*), COUNT({k}), {KINDS[kind].sql(k)} FROM {quote_table(database, table_name)}{where}"


def from_row(row: Sequence, kind: str = CURRENT) -> Fingerprint:
    rows, keys, *sums = (int(value) for value in row)
    return Fingerprint(rows, keys, tuple(sums), kind)

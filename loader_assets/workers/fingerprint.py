"""An order-independent fingerprint of a table's key column, computed on both sides of a load.

From the file while it is loaded (parsed with the case's dialect; the integer value is hashed, never its
text) and in SQL on the attempt's partition on the worker; equal fingerprints prove that every key of the
file is on the worker, once, without reading either side into memory twice. `SUM(CRC32(k))` catches a key
changed or swapped for another; it is summed, not XOR-ed, so a key present twice does not cancel out.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loader_assets.qserv.metadata import Dialect
from loader_assets.workers.connection import quote_name, quote_table

_LOW_BITS = (1 << 32) - 1


class FingerprintError(ValueError):
    """The key column of a file cannot be read as integers."""


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    keys: int  # non-NULL keys
    key_sum: int
    crc_sum: int  # SUM(CRC32(decimal text of the key))

    def __add__(self, other: Fingerprint) -> Fingerprint:
        return Fingerprint(*(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True)))

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.rows, self.keys, self.key_sum, self.crc_sum)

    def to_json(self) -> dict[str, str]:
        return {name: str(value) for name, value in asdict(self).items()}  # sums exceed JSON's safe integers

    @classmethod
    def from_json(cls, data: dict[str, str]) -> Fingerprint:
        return cls(**{name: int(value) for name, value in data.items()})


EMPTY = Fingerprint(0, 0, 0, 0)


def of_keys(keys: pa.Array, rows: int) -> Fingerprint:
    """Fingerprint of an int64 key column (NULLs counted apart) of a file of `rows` records."""
    present = keys.drop_null()
    values = present.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    # Exact sum without overflow: high and low 32-bit halves summed apart (a chunk has far fewer than 2^31 rows).
    key_sum = (int((values >> 32).sum()) << 32) + int((values & _LOW_BITS).sum())
    texts = pc.cast(present, pa.string())
    crc_sum = sum(zlib.crc32(text.encode()) for text in texts.to_pylist())
    return Fingerprint(rows, len(present), key_sum, crc_sum)


def of_file(path: Path, fmt: str, columns: Sequence[str], key: str, dialect: Dialect) -> Fingerprint:
    """Fingerprint of the key column of one input file."""
    keys, rows = key_column(path, fmt, columns, key, dialect)
    return of_keys(keys, rows)


def key_column(path: Path, fmt: str, columns: Sequence[str], key: str, dialect: Dialect) -> tuple[pa.Array, int]:
    """The integer key column of one input file (NULLs kept) and the file's record count."""
    if fmt == "parquet":
        table = pq.read_table(path, columns=[key])
        return _as_int64(table.column(key).combine_chunks(), path, key), table.num_rows
    if path.stat().st_size == 0:
        return pa.array([], pa.int64()), 0
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(columns)),
        parse_options=pacsv.ParseOptions(
            delimiter=dialect.fields_terminated_by,
            quote_char=dialect.fields_enclosed_by or False,
            escape_char=dialect.fields_escaped_by or False,
            newlines_in_values=True,
        ),
        convert_options=pacsv.ConvertOptions(include_columns=[key], column_types={key: pa.string()}),
    )
    text = table.column(key).combine_chunks()
    # The escape character is gone once parsed: MySQL's `\N` (NULL) reads as `N`, which no integer spells.
    null = pc.equal(text, "N") if dialect.fields_escaped_by else pc.equal(text, "\\N")
    return _as_int64(pc.if_else(null, None, text), path, key), table.num_rows


def _as_int64(column: pa.Array, path: Path, key: str) -> pa.Array:
    try:
        return pc.cast(column, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        raise FingerprintError(f"{path}: key column {key} is not an integer column: {error}") from error


def sql(database: str, table_name: str, key: str, partition: str | None = None) -> str:
    """The same fingerprint computed by the worker, over the table or one partition."""
    k = quote_name(key)
    where = f" PARTITION ({partition})" if partition else ""
    return (
        f"SELECT COUNT(*), COUNT({k}), COALESCE(SUM({k}), 0), COALESCE(SUM(CRC32({k})), 0) "
        f"FROM {quote_table(database, table_name)}{where}"
    )


def from_row(row: Sequence) -> Fingerprint:
    return Fingerprint(*(int(value) for value in row))

"""Reading columns back from the partitioner's files, for validation (loading streams them whole instead)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from loader_assets.qserv.metadata import Dialect


def read_key_column(
    path: Path, fmt: str, columns: Sequence[str], key: str, dialect: Mapping[str, str] | None = None
) -> np.ndarray:
    """The non-NULL values of integer column `key` of one chunk file."""
    if fmt == "parquet":
        column = pq.read_table(path, columns=[key]).column(key)
    elif path.stat().st_size == 0:
        return np.empty(0, dtype=np.int64)
    else:
        options = Dialect.of(fmt, dialect)
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=list(columns)),
            parse_options=pacsv.ParseOptions(
                delimiter=options.fields_terminated_by,
                quote_char=options.fields_enclosed_by or False,
                escape_char=options.fields_escaped_by or False,
                newlines_in_values=True,
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=[key], null_values=["\\N"], column_types={key: pa.int64()}
            ),
        )
        column = table.column(key)
    return column.drop_null().to_numpy().astype(np.int64, copy=False)

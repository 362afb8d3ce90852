"""A registered case's sizes for the capacity model: notices and bytes from the catalog, rows estimated from a
few files of each table (the catalog knows a file's rows only once it is loaded)."""

from __future__ import annotations

import pyarrow as pa

from loader_assets import capacity
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.notices import level_files, sample_files
from loader_assets.catalog.store import Store
from loader_assets.workers.formats import file_records

SAMPLED_FILES = 3  # per table: the first non-empty ones


def case_sizes(store: Store, case: str) -> dict[int, capacity.LevelSize]:
    layout = case_layout(store.db, case)
    samples = sample_files(store.db, case, SAMPLED_FILES)
    files = [
        capacity.TableFiles(part.level, part.chunked, part.notices, part.bytes,
                   round(part.bytes * _rows_per_byte(layout, part.table, samples.get(part.table, []))))
        for part in level_files(store.db, case)
    ]  # fmt: skip
    return capacity.sizes_by_level(files)


def _rows_per_byte(layout: CaseLayout, table: str, files: list[tuple[str, str, int]]) -> float:
    rows = size = 0
    for path, fmt, nbytes in files:
        try:
            rows += file_records(layout.root / path, fmt, layout.dialect_of(fmt, layout.tables[table]))
        except (OSError, pa.ArrowInvalid):  # moved or unreadable since registration: the other samples tell
            continue
        size += nbytes
    return rows / size if size else 0.0

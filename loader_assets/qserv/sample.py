"""Write a small but realistic qserv-ingest case: the layout `read_case` parses, with rows whose chunkId and
subChunkId are those Qserv's partitioner would give them.

Tables: director `Object` (with overlap files), children `Source` and `ForcedSource` keyed by objectId, regular
`Filter`. Chunk files are comma separated `.txt` with `\\N` for NULL, or `.parquet` with real nulls (and NaN in
a float column, which text formats cannot carry). Rows are generated for all chunks at once with numpy and
written per chunk as zero-copy slices of one Arrow table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from loader_assets.levels import CHILD, DIRECTOR, REGULAR, step_directory
from loader_assets.problems import BadInput
from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.metadata import METADATA_FILE, SUPPORTED_VERSION

SampleFormat = Literal["csv", "parquet"]

NUM_STRIPES = 340
NUM_SUB_STRIPES = 3
OVERLAP = 0.01667
FILTER_DIRECTORY = step_directory(REGULAR, 3)  # the regular table's own series of files
OBJECT_ID_BASE = 1_000_000_000_000
OVERLAP_OBJECT_ID_BASE = 9_000_000_000_000  # objects of chunks outside the sample, seen in overlap files
BANDS = np.array(list("ugrizy"))

Columns = tuple[tuple[str, str], ...]  # (name, SQL type) as in a table JSON
PARTITION_COLUMNS: Columns = (("chunkId", "INT NOT NULL"), ("subChunkId", "INT NOT NULL"))
OBJECT_COLUMNS: Columns = (
    ("objectId", "BIGINT NOT NULL"),
    ("ra", "DOUBLE NOT NULL"),
    ("decl", "DOUBLE NOT NULL"),
    ("gFlux", "FLOAT"),
    ("rFlux", "FLOAT"),
    ("iFlux", "FLOAT"),
    ("psfFlux", "DOUBLE NOT NULL"),
    ("extendedness", "FLOAT"),
    ("parentObjectId", "BIGINT"),
    *PARTITION_COLUMNS,
)
SOURCE_COLUMNS: Columns = (
    ("sourceId", "BIGINT NOT NULL"),
    ("objectId", "BIGINT NOT NULL"),
    ("ra", "DOUBLE NOT NULL"),
    ("decl", "DOUBLE NOT NULL"),
    ("midpointMjdTai", "DOUBLE NOT NULL"),
    ("psfFlux", "FLOAT"),
    ("psfFluxErr", "FLOAT"),
    *PARTITION_COLUMNS,
)
FORCED_SOURCE_COLUMNS: Columns = (
    ("objectId", "BIGINT NOT NULL"),
    ("ccdVisitId", "BIGINT NOT NULL"),
    ("band", "CHAR(1) NOT NULL"),
    ("psfFlux", "FLOAT"),
    ("psfFluxErr", "FLOAT"),
    *PARTITION_COLUMNS,
)
FILTER_COLUMNS: Columns = (
    ("filterId", "TINYINT NOT NULL"),
    ("filterName", "CHAR(3) NOT NULL"),
    ("photClam", "FLOAT NOT NULL"),
    ("photBW", "FLOAT"),
)
ARROW_TYPES = {
    "BIGINT": pa.int64(),
    "INT": pa.int32(),
    "TINYINT": pa.int8(),
    "DOUBLE": pa.float64(),
    "FLOAT": pa.float32(),
    "CHAR": pa.string(),
}


# --- rows -----------------------------------------------------------------------------------------------------


def _arrow_table(columns: Columns, values: dict[str, Any], nulls: dict[str, np.ndarray] | None = None) -> pa.Table:
    """Arrow table typed from the SQL types; `nulls` maps a nullable column to its null mask."""
    nulls = nulls or {}
    arrays = [
        pa.array(values[name], type=ARROW_TYPES[sql_type.split("(")[0].split()[0]], mask=nulls.get(name))
        for name, sql_type in columns
    ]
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns])


def _some(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    return rng.random(n) < fraction


def _flux(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.lognormal(mean=3.0, sigma=1.0, size=n)


def _uniform_in(rng: np.random.Generator, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Uniform values strictly inside [low, high), kept a hair off the edges so floor() cannot cross them."""
    margin = (high - low) * 1e-9
    return rng.uniform(low + margin, high - margin)


def _chunk_bounds(chunker: Chunker, chunk_ids: np.ndarray) -> np.ndarray:
    """(n, 4) array of ra_min, ra_max, dec_min, dec_max."""
    return np.array([chunker.chunk_bounds(int(chunk)) for chunk in chunk_ids])


def _locate_in(chunker: Chunker, ra: np.ndarray, decl: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Sub-chunk ids of positions generated inside the `expected` chunks (checked: a bug here is silent)."""
    chunk, sub_chunk = chunker.locate(ra, decl)
    if not np.array_equal(chunk, expected):
        raise RuntimeError("generated positions left their chunk")
    return sub_chunk


def _object_table(
    rng: np.random.Generator,
    ids: np.ndarray,
    ra: np.ndarray,
    decl: np.ndarray,
    chunk: np.ndarray,
    sub_chunk: np.ndarray,
) -> pa.Table:
    n = len(ids)
    values = {
        "objectId": ids,
        "ra": ra,
        "decl": decl,
        "gFlux": _flux(rng, n),
        "rFlux": _flux(rng, n),
        "iFlux": _flux(rng, n),
        "psfFlux": _flux(rng, n),
        "extendedness": rng.random(n),
        "parentObjectId": ids - rng.integers(1, 1000, n),
        "chunkId": chunk,
        "subChunkId": sub_chunk,
    }
    nulls = {
        "gFlux": _some(rng, n, 0.05),
        "extendedness": _some(rng, n, 0.1),
        "parentObjectId": _some(rng, n, 0.9),
    }
    return _arrow_table(OBJECT_COLUMNS, values, nulls)


def _objects(rng: np.random.Generator, chunker: Chunker, chunk_ids: np.ndarray, per_chunk: int) -> pa.Table:
    bounds = np.repeat(_chunk_bounds(chunker, chunk_ids), per_chunk, axis=0)
    chunk = np.repeat(chunk_ids, per_chunk)
    ra = _uniform_in(rng, bounds[:, 0], bounds[:, 1])
    decl = _uniform_in(rng, bounds[:, 2], bounds[:, 3])
    sub_chunk = _locate_in(chunker, ra, decl, chunk)
    return _object_table(rng, OBJECT_ID_BASE + np.arange(len(chunk)), ra, decl, chunk, sub_chunk)


def _overlap_objects(rng: np.random.Generator, chunker: Chunker, chunk_ids: np.ndarray, per_chunk: int) -> pa.Table:
    """Objects of other chunks lying within the overlap distance above or below each chunk.

    They carry the chunk and the sub-chunk (of its edge sub-stripe) whose overlap they fall in, as Qserv's
    partitioner writes them, and ids from a reserved range: their own chunks are not part of the sample.
    """
    bounds = np.repeat(_chunk_bounds(chunker, chunk_ids), per_chunk, axis=0)
    chunk = np.repeat(chunk_ids, per_chunk)
    n = len(chunk)
    ra = _uniform_in(rng, bounds[:, 0], bounds[:, 1])
    # a polar chunk has no neighbour beyond the pole
    above = np.where(bounds[:, 3] >= 90.0, False, np.where(bounds[:, 2] <= -90.0, True, rng.random(n) < 0.5))
    depth = rng.uniform(0.0, chunker.overlap, n)
    decl = np.where(above, bounds[:, 3] + depth, bounds[:, 2] - depth)
    margin = 1e-6 * chunker.sub_stripe_height
    edge = np.where(above, bounds[:, 3] - margin, bounds[:, 2] + margin)
    sub_chunk = _locate_in(chunker, ra, edge, chunk)
    return _object_table(rng, OVERLAP_OBJECT_ID_BASE + np.arange(n), ra, decl, chunk, sub_chunk)


def object_columns(width: int = 0) -> Columns:
    """The director's columns, padded to `width` with measurement columns (a DP0.2 Object has ~200)."""
    extra = max(0, width - len(OBJECT_COLUMNS))
    return OBJECT_COLUMNS + tuple((f"m{i}Flux", "FLOAT") for i in range(extra))


def _widen(rng: np.random.Generator, table: pa.Table, width: int) -> pa.Table:
    for name, _ in object_columns(width)[len(OBJECT_COLUMNS) :]:
        table = table.append_column(name, pa.array(_flux(rng, table.num_rows), type=pa.float32()))
    return table


def _with_nans(rng: np.random.Generator, table: pa.Table, column: str) -> pa.Table:
    """About 1% of a float column (and at least its first row) set to NaN: a NaN is not a NULL."""
    position = table.schema.get_field_index(column)
    values = table[column].to_numpy(zero_copy_only=False).copy()
    nan = _some(rng, len(values), 0.01)
    nan[0] = True
    values[nan] = np.nan
    array = pa.array(
        values, type=table.schema.field(position).type, mask=table[column].is_null().to_numpy(zero_copy_only=False)
    )
    return table.set_column(position, column, array)


def _sources(rng: np.random.Generator, objects: pa.Table) -> pa.Table:
    """2 to 4 detections per object, a few arcseconds around it, in the object's chunk and sub-chunk."""
    owner = np.repeat(np.arange(objects.num_rows), rng.integers(2, 5, objects.num_rows))
    n = len(owner)
    jitter = rng.normal(0.0, 1e-4, (2, n))
    values = {
        "sourceId": OBJECT_ID_BASE + np.arange(n),
        "objectId": objects["objectId"].to_numpy()[owner],
        "ra": np.mod(objects["ra"].to_numpy()[owner] + jitter[0], 360.0),
        "decl": np.clip(objects["decl"].to_numpy()[owner] + jitter[1], -90.0, 90.0),
        "midpointMjdTai": rng.uniform(60000.0, 61000.0, n),
        "psfFlux": _flux(rng, n),
        "psfFluxErr": rng.random(n),
        "chunkId": objects["chunkId"].to_numpy()[owner],
        "subChunkId": objects["subChunkId"].to_numpy()[owner],
    }
    return _arrow_table(SOURCE_COLUMNS, values, {"psfFluxErr": _some(rng, n, 0.05)})


def _forced_sources(rng: np.random.Generator, objects: pa.Table) -> pa.Table:
    """Two forced measurements per object, in distinct visits."""
    owner = np.repeat(np.arange(objects.num_rows), 2)
    n = len(owner)
    values = {
        "objectId": objects["objectId"].to_numpy()[owner],
        "ccdVisitId": 100_000 + np.arange(n) % 2 + 2 * rng.integers(0, 50_000, n),
        "band": BANDS[rng.integers(0, len(BANDS), n)],
        "psfFlux": _flux(rng, n),
        "psfFluxErr": rng.random(n),
        "chunkId": objects["chunkId"].to_numpy()[owner],
        "subChunkId": objects["subChunkId"].to_numpy()[owner],
    }
    return _arrow_table(FORCED_SOURCE_COLUMNS, values, {"psfFlux": _some(rng, n, 0.05)})


def _filters() -> pa.Table:
    values = {
        "filterId": np.arange(len(BANDS)),
        "filterName": BANDS,
        "photClam": np.array([367.0, 482.5, 622.2, 754.6, 869.1, 971.0]),
        "photBW": np.array([50.0, 140.0, 140.0, 150.0, 130.0, 0.0]),
    }
    return _arrow_table(FILTER_COLUMNS, values, {"photBW": BANDS == "y"})


# --- files ----------------------------------------------------------------------------------------------------


def write_rows(path: Path, table: pa.Table) -> Path:
    """Write rows as Qserv input: `.txt` comma separated, no header, `\\N` for NULL; or `.parquet`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        options = pa_csv.WriteOptions(include_header=False, delimiter=",", null_string="\\N", quoting_style="none")
        pa_csv.write_csv(table, path, write_options=options)
    return path


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _per_chunk(table: pa.Table, chunk_ids: np.ndarray) -> Iterator[tuple[int, pa.Table]]:
    """Zero-copy slices of a table sorted by chunk, one per chunk id (possibly empty)."""
    column = table["chunkId"].to_numpy()
    starts = np.searchsorted(column, chunk_ids, side="left")
    ends = np.searchsorted(column, chunk_ids, side="right")
    for chunk, start, end in zip(chunk_ids, starts, ends, strict=True):
        yield int(chunk), table.slice(start, end - start)


def _chunk_files(
    directory: Path, table: pa.Table, chunk_ids: np.ndarray, suffix: str, extension: str
) -> list[tuple[Path, pa.Table]]:
    return [(directory / f"chunk_{chunk}{suffix}.{extension}", rows) for chunk, rows in _per_chunk(table, chunk_ids)]


def _write_all(files: list[tuple[Path, pa.Table]]) -> None:
    """Arrow formats files without the GIL: threads make the text case about twice as fast."""
    with ThreadPoolExecutor() as pool:
        for _ in pool.map(lambda file: write_rows(*file), files):
            pass


def _table_json(database: str, name: str, columns: Columns, **partitioning: Any) -> dict[str, Any]:
    return {
        "version": SUPPORTED_VERSION,
        "database": database,
        "table": name,
        "is_partitioned": int(bool(partitioning)),
        **partitioning,
        "schema": [{"name": column, "type": sql_type} for column, sql_type in columns],
    }


def _partitioning(director: str, key: str, latitude: str, longitude: str) -> dict[str, str]:
    return {"director_table": director, "director_key": key, "latitude_key": latitude, "longitude_key": longitude}


def _write_table_jsons(out_dir: Path, database: str, director_columns: Columns = OBJECT_COLUMNS) -> None:
    documents = {
        "Object.json": _table_json(database, "Object", director_columns, **_partitioning("", "objectId", "decl", "ra")),
        "Source.json": _table_json(
            database, "Source", SOURCE_COLUMNS, **_partitioning("Object", "objectId", "decl", "ra")
        ),
        "ForcedSource.json": _table_json(
            database, "ForcedSource", FORCED_SOURCE_COLUMNS, **_partitioning("Object", "objectId", "", "")
        ),
        "Filter.json": _table_json(database, "Filter", FILTER_COLUMNS),
        "idx_object_objectId.json": {
            "version": SUPPORTED_VERSION,
            "database": database,
            "table": "Object",
            "index": "idx_objectId",
            "spec": "UNIQUE",
            "comment": "the director key",
            "columns": [{"column": "objectId", "length": 0, "ascending": 1}],
        },
        "database.json": {
            "version": SUPPORTED_VERSION,
            "database": database,
            "auto_build_secondary_index": 0,
            "local_load_secondary_index": 1,
            "num_stripes": NUM_STRIPES,
            "num_sub_stripes": NUM_SUB_STRIPES,
            "overlap": OVERLAP,
            "auth_key": "",
        },
    }
    for name, document in documents.items():
        _write_json(out_dir / name, document)


def _chunk_entries(table: str, kind: str, batches: list[np.ndarray], overlaps: bool) -> list[dict[str, Any]]:
    """`data[]` of a partitioned table; the director's second batch lists its overlaps, the first relies on
    qserv-ingest's default (every chunk has one)."""
    entries: list[dict[str, Any]] = []
    for task, chunk_ids in enumerate(batches, start=1):
        entry: dict[str, Any] = {"directory": f"{step_directory(kind, task)}/{table}", "chunks": chunk_ids.tolist()}
        if overlaps and task > 1:
            entry["overlaps"] = _listed_overlaps(chunk_ids).tolist()
        entries.append(entry)
    return entries


def _listed_overlaps(chunk_ids: np.ndarray) -> np.ndarray:
    """Chunks of an explicit `overlaps` list: all but the first, as if its overlap were empty (the partitioner
    then writes no file), when there are two or more."""
    return chunk_ids[1:] if len(chunk_ids) > 1 else chunk_ids


def _metadata(batches: list[np.ndarray], filter_file: str) -> dict[str, Any]:
    return {
        "version": SUPPORTED_VERSION,
        "charset_name": "latin1",
        "database": "database.json",
        "formats": {"txt": {"fields_terminated_by": ","}},
        "tables": [
            {
                "schema": "Object.json",
                "indexes": ["idx_object_objectId.json"],
                "data": _chunk_entries("Object", DIRECTOR, batches, overlaps=True),
            },
            {"schema": "Source.json", "indexes": [], "data": _chunk_entries("Source", CHILD, batches, overlaps=False)},
            {
                "schema": "ForcedSource.json",
                "indexes": [],
                "data": _chunk_entries("ForcedSource", CHILD, batches, overlaps=False),
            },
            {
                "schema": "Filter.json",
                "indexes": [],
                "data": [{"directory": f"{FILTER_DIRECTORY}/Filter", "files": [filter_file]}],
            },
        ],
    }


def write_sample_case(
    out_dir: Path,
    *,
    chunks: int,
    rows_per_chunk: int,
    fmt: SampleFormat = "csv",
    database: str | None = None,
    seed: int = 0,
    director_columns: int = 0,
) -> Path:
    """Write a case of `chunks` chunks (chosen with `seed`) into the new or empty `out_dir`; return it.

    `director_columns` pads `Object` with FLOAT columns to that width (its children are unchanged)."""
    if chunks < 1 or rows_per_chunk < 1:
        raise BadInput("a sample case needs at least one chunk and one row per chunk", "ask for 1 or more of each")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise BadInput(f"{out_dir} is not empty", "name a new or empty directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    extension = "parquet" if fmt == "parquet" else "txt"
    rng = np.random.default_rng(seed)
    chunker = Chunker(NUM_STRIPES, NUM_SUB_STRIPES, OVERLAP)
    chunk_ids = np.sort(rng.choice(chunker.all_chunks(), size=chunks, replace=False))
    batches = [batch for batch in np.array_split(chunk_ids, 2) if len(batch)]

    objects = _objects(rng, chunker, chunk_ids, rows_per_chunk)
    if fmt == "parquet":  # text formats cannot carry a NaN apart from NULL
        objects = _with_nans(rng, objects, "rFlux")
    overlap_objects = _overlap_objects(rng, chunker, chunk_ids, max(1, rows_per_chunk // 10))
    children = {"Source": _sources(rng, objects), "ForcedSource": _forced_sources(rng, objects)}
    files: list[tuple[Path, pa.Table]] = []
    for task, batch in enumerate(batches, start=1):
        director_dir = out_dir / step_directory(DIRECTOR, task) / "Object"
        files += _chunk_files(director_dir, objects, batch, "", extension)
        overlapping = batch if task == 1 else _listed_overlaps(batch)
        files += _chunk_files(director_dir, overlap_objects, overlapping, "_overlap", extension)
        for name, rows in children.items():
            files += _chunk_files(out_dir / step_directory(CHILD, task) / name, rows, batch, "", extension)
    filter_file = f"Filter.{extension}"
    files.append((out_dir / FILTER_DIRECTORY / "Filter" / filter_file, _filters()))
    if director_columns:  # after every other draw: the narrow case's rows stay the same
        files = [
            (path, _widen(rng, rows, director_columns) if path.parent.name == "Object" else rows)
            for path, rows in files
        ]
    _write_all(files)

    _write_table_jsons(out_dir, database or "sample", object_columns(director_columns))
    _write_json(out_dir / METADATA_FILE, _metadata(batches, filter_file))
    return out_dir


def write_empty_case(out_dir: Path, *, children: int = 1, tasks: int = 34, chunks: int | None = None,
                     database: str = "dp02") -> Path:  # fmt: skip
    """A DP0.2-shaped case of empty files, for measuring what does not depend on rows (registration, planning,
    the sensors): every chunk of the sky (146,332; or the first `chunks`) in `tasks` batches per table, an
    Object chunk and overlap file each, a file of each of `children` child tables (Source, Source2, …) and a
    Filter file."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    chunk_ids = Chunker(NUM_STRIPES, NUM_SUB_STRIPES, OVERLAP).all_chunks()[:chunks]
    batches = [batch for batch in np.array_split(chunk_ids, tasks) if len(batch)]
    names = ["Source", *(f"Source{n}" for n in range(2, children + 1))]
    for task, batch in enumerate(batches, start=1):
        for table, kind, stems in [("Object", DIRECTOR, ("", "_overlap")), *((n, CHILD, ("",)) for n in names)]:
            directory = out_dir / step_directory(kind, task) / table
            directory.mkdir(parents=True)
            for chunk in batch.tolist():
                for stem in stems:
                    (directory / f"chunk_{chunk}{stem}.txt").touch()
    (out_dir / FILTER_DIRECTORY / "Filter").mkdir(parents=True)
    (out_dir / FILTER_DIRECTORY / "Filter" / "Filter.txt").touch()
    _write_table_jsons(out_dir, database)
    for name in names[1:]:
        _write_json(out_dir / f"{name}.json", _table_json(database, name, SOURCE_COLUMNS,
                                                         **_partitioning("Object", "objectId", "decl", "ra")))  # fmt: skip
    metadata = _metadata(batches, "Filter.txt")
    metadata["tables"] = [t for t in metadata["tables"] if t["schema"] != "ForcedSource.json"] + [
        {"schema": f"{name}.json", "indexes": [], "data": _chunk_entries(name, CHILD, batches, overlaps=False)}
        for name in names[1:]
    ]
    for table in metadata["tables"]:  # every chunk has an overlap file: qserv-ingest's default, no list
        for entry in table["data"]:
            entry.pop("overlaps", None)
    _write_json(out_dir / METADATA_FILE, metadata)
    return out_dir

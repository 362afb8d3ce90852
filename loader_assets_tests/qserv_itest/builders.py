r"""Cases built from Qserv's own integration inputs (`../shared/qserv-itest`, see its README.md).

- `build_case01_shipped` / `build_case01_steps`: case01's real rows (MySQL-escaped TSV: latin1 bytes, `\N`,
  escaped tabs and newlines) partitioned with `loader_assets.qserv.geometry.Chunker` as Qserv's partitioner does:
  records copied byte for byte, `chunkId` and `subChunkId` appended (the raw rows lack them), director rows also
  written to the overlap file of every sub-chunk whose overlap region holds them (`Chunker.overlap_locations`).
- `build_schema_case`: rows generated from the table JSON of a schema-only case (DC2, case03), written with each
  table's own dialect, keys and positions consistent with the chunk they are written to.
Nothing of `../shared` is copied into the repository: everything is written under `out`.

Every builder takes `database=`: the database name to write into the database, table and index JSON instead of
the case's own (`qcase01`...), so that one session's worker cluster can hold the same case loaded several times.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from loader_assets.levels import CHILD, DIRECTOR, REGULAR, step_directory
from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.metadata import METADATA_FILE, PARTITION_COLUMNS, Dialect, parse_formats, table_dialects

ENV = "LOADER_QSERV_ITEST"
CASE01 = "case01"
JsonObject = dict[str, Any]


def itest_root() -> Path:
    """The qserv-itest directory named by `LOADER_QSERV_ITEST`: skip when unset, fail when it is not there (CI sets
    it and must not silently skip)."""
    value = os.environ.get(ENV)
    if not value:
        pytest.skip(f"{ENV} is not set: Qserv's integration inputs (../shared/qserv-itest) are not available")
    root = Path(value)
    if not (root / CASE01 / METADATA_FILE).is_file():
        pytest.fail(f"{ENV}={value}: {root} is not a qserv-itest directory (no {CASE01}/{METADATA_FILE})")
    return root


def expected_counts(itest: Path) -> dict[str, int]:
    """Qserv's answers to `SELECT count(*) FROM <Table>` for case01: `qserv-expected/count<Table>.csv`, whose
    last non-empty line is the count."""
    counts = {}
    for path in sorted((itest / CASE01 / "qserv-expected").glob("count*.csv")):
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not lines or not lines[-1].isdigit():
            raise ValueError(f"{path}: expected a count on its last line, found {lines[-1:]!r}")
        counts[path.stem.removeprefix("count")] = int(lines[-1])
    return counts


# --- MySQL-escaped text ---------------------------------------------------------------------------------------


def _split(data: bytes, separator: bytes, escape: bytes) -> list[bytes]:
    """`data` cut at each `separator` not escaped (escape pairs are masked first, so lengths are kept)."""
    masked = re.sub(re.escape(escape) + b".", b"\0\0", data, flags=re.DOTALL) if escape else data
    pieces, start = [], 0
    for piece in masked.split(separator):
        pieces.append(data[start : start + len(piece)])
        start += len(piece) + len(separator)
    return pieces


def split_records(data: bytes, dialect: Dialect) -> list[bytes]:
    """Records of a LOAD DATA text file, without their terminator (an escaped terminator stays in its record)."""
    records = _split(data, _encode(dialect.lines_terminated_by), _encode(dialect.fields_escaped_by))
    return records[:-1] if records and records[-1] == b"" else records


def split_fields(record: bytes, dialect: Dialect) -> list[bytes]:
    """Fields of a record, still escaped (fields are not enclosed in case01)."""
    return _split(record, _encode(dialect.fields_terminated_by), _encode(dialect.fields_escaped_by))


def _encode(text: str) -> bytes:
    return text.encode("latin1")


def _write_records(path: Path, records: list[bytes], dialect: Dialect) -> None:
    terminator = _encode(dialect.lines_terminated_by)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(record + terminator for record in records))


def _read_json(path: Path) -> JsonObject:
    return json.loads(path.read_bytes())


def _write_json(path: Path, document: JsonObject) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _kind(document: JsonObject) -> str:
    if not document["is_partitioned"]:
        return REGULAR
    return CHILD if document.get("director_table") else DIRECTOR


def _chunker(database: JsonObject) -> Chunker:
    return Chunker(int(database["num_stripes"]), int(database["num_sub_stripes"]), float(database["overlap"]))


def _listed_chunks(entries: list[JsonObject]) -> list[int]:
    return [chunk for entry in entries for chunk in entry.get("chunks", [])]


def _listed_overlaps(entry: JsonObject) -> list[int]:
    """qserv-ingest: an absent or empty `overlaps` means every chunk of the entry has an overlap file."""
    return list(entry.get("overlaps") or entry.get("chunks", []))


def _copy_documents(case: Path, metadata: JsonObject, out: Path, database: str | None = None) -> None:
    """The database, table and index JSON files metadata.json names, copied as they are, or with their
    `database` set to `database` when one is given."""
    names = [metadata["database"]]
    for entry in metadata["tables"]:
        names += [entry["schema"], *entry.get("indexes", [])]
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        if database is None:
            shutil.copyfile(case / name, out / name)
            continue
        document = _read_json(case / name)
        if "database" in document or name == metadata["database"]:
            document["database"] = database
        _write_json(out / name, document)


# --- case01: real rows, partitioned ---------------------------------------------------------------------------


@dataclass
class _Case01Table:
    entry: JsonObject  # its metadata.json `tables[]` entry
    document: JsonObject  # its table JSON
    chunks: dict[int, list[bytes]] = field(default_factory=dict)  # chunk id -> records
    overlaps: dict[int, list[bytes]] = field(default_factory=dict)  # chunk id -> overlap records (directors)

    @property
    def name(self) -> str:
        return self.document["table"]

    @property
    def kind(self) -> str:
        return _kind(self.document)


def _with_partition(fields: list[bytes], columns: list[str], chunk: int, sub_chunk: int, where: str) -> bytes:
    """The (tab-separated) record with its chunkId/subChunkId: appended when the raw row lacks them, as the
    partitioner does, else set (the caller checked a row's own ones; an overlap location has its own)."""
    ids = [str(chunk).encode(), str(sub_chunk).encode()]
    if len(fields) == len(columns) - 2 and columns[-2:] == list(PARTITION_COLUMNS):
        return b"\t".join([*fields, *ids])
    if len(fields) != len(columns):
        raise ValueError(f"{where}: {len(fields)} fields, its table JSON has {len(columns)} columns")
    return b"\t".join(_set_fields(fields, columns, dict(zip(PARTITION_COLUMNS, ids, strict=True))))


def _set_fields(fields: list[bytes], columns: list[str], values: dict[str, bytes]) -> list[bytes]:
    return [values.get(name, value) for name, value in zip(columns, fields, strict=True)]


def _partition_case01_table(case: Path, table: _Case01Table, chunker: Chunker) -> None:
    dialect = Dialect()  # case01 rows: Qserv's default, tab separated, backslash escaped
    source = f"{table.name}.tsv"
    records = split_records((case / source).read_bytes(), dialect)
    columns = [column["name"] for column in table.document["schema"]]
    lat, lon = columns.index(table.document["latitude_key"]), columns.index(table.document["longitude_key"])
    rows = [split_fields(record, dialect) for record in records]
    ra, dec = np.array([float(r[lon]) for r in rows]), np.array([float(r[lat]) for r in rows])
    chunks, sub_chunks = chunker.locate(ra, dec)
    overlaps = set(_listed_overlaps(table.entry["data"][0])) if table.kind == DIRECTOR else set()
    for n, (fields, chunk, sub_chunk) in enumerate(zip(rows, chunks.tolist(), sub_chunks.tolist(), strict=True)):
        where = f"{CASE01}/{source} record {n + 1}"
        if len(fields) == len(columns):
            carried = (int(fields[columns.index(name)]) for name in PARTITION_COLUMNS)
            if tuple(carried) != (chunk, sub_chunk):
                raise ValueError(f"{where}: its chunkId/subChunkId differ from the Chunker's {chunk}/{sub_chunk}")
        table.chunks.setdefault(chunk, []).append(_with_partition(fields, columns, chunk, sub_chunk, where))
        for overlap_chunk, overlap_sub_chunk in chunker.overlap_locations(ra[n], dec[n]) if overlaps else []:
            if overlap_chunk in overlaps:
                record = _with_partition(fields, columns, overlap_chunk, overlap_sub_chunk, where)
                table.overlaps.setdefault(overlap_chunk, []).append(record)
    listed = sorted(_listed_chunks(table.entry["data"]))
    if sorted(table.chunks) != listed:
        raise AssertionError(
            f"{CASE01} {table.name}: the Chunker puts its rows in chunks {sorted(table.chunks)}, "
            f"but {CASE01}/{METADATA_FILE} lists {listed}"
        )


def _case01_tables(itest: Path) -> tuple[JsonObject, list[_Case01Table]]:
    case = itest / CASE01
    metadata = _read_json(case / METADATA_FILE)
    chunker = _chunker(_read_json(case / metadata["database"]))
    tables = [_Case01Table(entry, _read_json(case / entry["schema"])) for entry in metadata["tables"]]
    for table in tables:
        if table.kind != REGULAR:
            if len(table.entry["data"]) != 1:
                raise ValueError(f"{CASE01}/{METADATA_FILE}: {table.name} has more than one data entry")
            _partition_case01_table(case, table, chunker)
    return metadata, tables


def _write_chunks(out: Path, directory: str, table: _Case01Table, overlaps: list[int]) -> None:
    dialect = Dialect()
    for chunk, records in table.chunks.items():
        _write_records(out / directory / f"chunk_{chunk}.txt", records, dialect)
    for chunk in overlaps:  # an empty file when no row falls in the overlap region
        _write_records(out / directory / f"chunk_{chunk}_overlap.txt", table.overlaps.get(chunk, []), dialect)


def _copy_regular_files(case: Path, entry: JsonObject, out: Path, directory: str) -> None:
    for data in entry["data"]:
        for name in data["files"]:
            (out / directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(case / data["directory"] / name, out / directory / name)


def build_case01_shipped(itest: Path, out: Path, *, database: str | None = None) -> Path:
    """case01 as qserv-ingest ships it: its own metadata.json, the regular tables' TSV at the top and the
    partitioner's output in `partition/case01/<table>/chunk_<id>[_overlap].txt`."""
    case = itest / CASE01
    metadata, tables = _case01_tables(itest)
    _copy_documents(case, metadata, out, database)
    shutil.copyfile(case / METADATA_FILE, out / METADATA_FILE)
    for table in tables:
        data = table.entry["data"]
        if table.kind == REGULAR:
            _copy_regular_files(case, table.entry, out, data[0]["directory"])
        else:
            overlaps = _listed_overlaps(data[0]) if table.kind == DIRECTOR else []
            _write_chunks(out, data[0]["directory"], table, overlaps)
    return out


def build_case01_steps(itest: Path, out: Path, *, database: str | None = None) -> Path:
    """The same rows as `step<N>_<task>` batches (step1_1/Object, step3_1/Source, step1_2/<regular>), with a
    metadata.json of its own whose `formats.txt.fields_terminated_by` is qserv-ingest's spelling of a tab, `\t`."""
    case = itest / CASE01
    metadata, tables = _case01_tables(itest)
    _copy_documents(case, metadata, out, database)
    entries = []
    for table in tables:
        if table.kind == REGULAR:
            directory = f"{step_directory(REGULAR, 2)}/{table.name}"
            _copy_regular_files(case, table.entry, out, directory)
            data = [{"directory": directory, "files": [n for d in table.entry["data"] for n in d["files"]]}]
        else:
            directory = f"{step_directory(table.kind, 1)}/{table.name}"
            data = [{"directory": directory, "chunks": sorted(table.chunks)}]
            overlaps = _listed_overlaps(table.entry["data"][0]) if table.kind == DIRECTOR else []
            if overlaps:
                data[0]["overlaps"] = overlaps
            _write_chunks(out, directory, table, overlaps)
        entries.append({**table.entry, "data": data})
    _write_json(
        out / METADATA_FILE, {**metadata, "formats": {"txt": {"fields_terminated_by": "\\t"}}, "tables": entries}
    )
    return out


# --- schema-only cases: generated rows ------------------------------------------------------------------------

_TYPE = re.compile(r"^\s*([a-z]+)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(unsigned)?", re.IGNORECASE)
_INTEGERS = {"tinyint": 2**7, "smallint": 2**15, "mediumint": 2**23, "int": 2**31, "integer": 2**31, "bigint": 2**62}
_LETTERS = np.array(list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "), dtype=np.uint8)
_EPOCH = dt.datetime(2001, 1, 1)
NULL_FRACTION = 0.1
Value = bytes | None  # a field before escaping; None is NULL
_ESCAPED_KEYS = ("fields_terminated_by", "lines_terminated_by", "fields_enclosed_by")


@dataclass(frozen=True)
class _Text:
    """How one table's fields are written: its dialect's escapes, NULL and the case's charset."""

    dialect: Dialect
    charset: str

    @property
    def escape(self) -> bytes:
        return _encode(self.dialect.fields_escaped_by)

    @cached_property
    def specials(self) -> list[str]:
        """Characters worth putting into generated strings: those that must be escaped, and a latin1 letter."""
        if not self.escape:
            return []  # nothing can be escaped: strings of letters only
        marks = {self.dialect.fields_terminated_by[0], self.dialect.lines_terminated_by[0], "\\", '"', "'", "é"}
        return sorted(marks | ({self.dialect.fields_enclosed_by} - {""}))

    @cached_property
    def _to_escape(self) -> re.Pattern[bytes]:
        """What MySQL's `SELECT ... INTO OUTFILE` escapes: the escape and enclosing characters, the first
        character of each terminator, and NUL (written `\\0`)."""
        marks = {self.escape, b"\0", *(_encode(getattr(self.dialect, key))[:1] for key in _ESCAPED_KEYS)} - {b""}
        return re.compile(b"[" + b"".join(re.escape(mark) for mark in sorted(marks)) + b"]")

    def field(self, value: Value) -> bytes:
        if value is None:
            return self.escape + b"N" if self.escape else b"NULL"
        if not self.escape:
            return value
        return self._to_escape.sub(lambda match: self.escape + (b"0" if match[0] == b"\0" else match[0]), value)

    def record(self, values: list[Value]) -> bytes:
        return _encode(self.dialect.fields_terminated_by).join(self.field(value) for value in values)


def _charset(name: str | None) -> str:
    return "utf-8" if (name or "latin1").lower().startswith("utf8") else "latin1"


def _column_values(rng: np.random.Generator, sql_type: str, n: int, text: _Text) -> list[Value]:
    """`n` values of a column of `sql_type` as MySQL text (not escaped yet), NULL now and then if nullable."""
    match = _TYPE.match(sql_type)
    if match is None:
        raise ValueError(f"unsupported column type {sql_type!r}")
    base, size, scale, unsigned = match[1].lower(), int(match[2] or 0), int(match[3] or 0), bool(match[4])
    values = _typed_values(rng, base, size, scale, unsigned, n, text)
    if values is None:
        raise ValueError(f"unsupported column type {sql_type!r}")
    if "not null" not in sql_type.lower():
        return [None if null else value for value, null in zip(values, rng.random(n) < NULL_FRACTION, strict=True)]
    return values


def _typed_values(
    rng: np.random.Generator, base: str, size: int, scale: int, unsigned: bool, n: int, text: _Text
) -> list[Value] | None:
    if base in _INTEGERS:
        top = _INTEGERS[base]
        return [str(v).encode() for v in rng.integers(0 if unsigned else -top, top, n)]
    if base in ("bool", "boolean"):
        return [str(v).encode() for v in rng.integers(0, 2, n)]
    if base == "bit":
        bits = max(size, 1)
        return [int(v).to_bytes((bits + 7) // 8, "big") for v in rng.integers(0, 2 ** min(bits, 62), n)]
    if base in ("float", "double", "real", "decimal", "numeric"):
        magnitudes = rng.normal(size=n) * 10.0 ** rng.integers(-3, 5, n)
        if base == "float":
            return [repr(float(np.float32(v))).encode() for v in magnitudes]
        if base in ("decimal", "numeric"):
            limit = 10.0 ** ((size or 10) - scale) - 1
            return [f"{np.clip(v, -limit, limit):.{scale}f}".encode() for v in magnitudes]
        return [repr(float(v)).encode() for v in magnitudes]
    if base in ("char", "varchar", "text", "tinytext", "mediumtext", "longtext"):
        return [_string(rng, min(size or 40, 40), text) for _ in range(n)]
    if base in ("binary", "varbinary", "blob", "tinyblob", "mediumblob", "longblob"):
        return [
            rng.integers(0, 256, int(rng.integers(1, min(size or 32, 32) + 1)), dtype=np.uint8).tobytes()
            for _ in range(n)
        ]
    return _temporal_values(rng, base, n)


def _temporal_values(rng: np.random.Generator, base: str, n: int) -> list[Value] | None:
    formats = {"datetime": "%Y-%m-%d %H:%M:%S", "timestamp": "%Y-%m-%d %H:%M:%S", "date": "%Y-%m-%d"}
    formats |= {"time": "%H:%M:%S", "year": "%Y"}
    if base not in formats:
        return None
    seconds = rng.integers(0, 30 * 365 * 86400, n)  # 2001..2030: inside TIMESTAMP's range
    return [(_EPOCH + dt.timedelta(seconds=int(s))).strftime(formats[base]).encode() for s in seconds]


def _string(rng: np.random.Generator, size: int, text: _Text) -> bytes:
    letters = rng.choice(_LETTERS, int(rng.integers(1, size + 1))).tobytes().decode("ascii")
    specials = text.specials
    if specials and rng.random() < 0.2:  # one character to escape (or a non-ASCII one) now and then
        at = int(rng.integers(0, len(letters)))
        letters = letters[:at] + specials[int(rng.integers(0, len(specials)))] + letters[at + 1 :]
    return letters.encode(text.charset)


@dataclass
class _Rows:
    """Generated rows of one table: raw values per column, and the chunk / sub-chunk of each row."""

    columns: list[str]
    values: dict[str, list[Value]]
    chunks: np.ndarray
    sub_chunks: np.ndarray
    positions: tuple[np.ndarray, np.ndarray] = (np.empty(0), np.empty(0))  # (ra, dec) of a director's rows

    def set(self, column: str, values: list[Value] | np.ndarray) -> None:
        if column in self.values:
            self.values[column] = [v if v is None or isinstance(v, bytes) else _number(v) for v in values]

    def record_values(self, row: int) -> list[Value]:
        return [self.values[column][row] for column in self.columns]


def _number(value: Any) -> bytes:
    return repr(float(value)).encode() if isinstance(value, float | np.floating) else str(int(value)).encode()


def _generic_rows(rng: np.random.Generator, document: JsonObject, chunks: np.ndarray, text: _Text) -> _Rows:
    schema = document["schema"]
    values = {column["name"]: _column_values(rng, column["type"], len(chunks), text) for column in schema}
    return _Rows([column["name"] for column in schema], values, chunks, np.zeros(len(chunks), dtype=np.int64))


def _position_type(document: JsonObject, column: str) -> str:
    return next(c["type"] for c in document["schema"] if c["name"] == column).strip().lower()


def _positions(
    rng: np.random.Generator, chunker: Chunker, chunk_ids: list[int], per_chunk: int, document: JsonObject
) -> tuple[np.ndarray, np.ndarray]:
    """Positions inside each chunk (1% away from its edges), float32 values when the columns are FLOAT so that the
    text, the stored value and the chunk agree."""
    bounds = np.array([chunker.chunk_bounds(chunk) for chunk in chunk_ids]).repeat(per_chunk, axis=0)
    u, v = rng.uniform(0.01, 0.99, (2, len(bounds)))
    ra = bounds[:, 0] + u * (bounds[:, 1] - bounds[:, 0])
    dec = bounds[:, 2] + v * (bounds[:, 3] - bounds[:, 2])
    if _position_type(document, document["longitude_key"]).startswith("float"):
        ra = ra.astype(np.float32).astype(np.float64)
    if _position_type(document, document["latitude_key"]).startswith("float"):
        dec = dec.astype(np.float32).astype(np.float64)
    return ra, dec


def _director_rows(
    rng: np.random.Generator, document: JsonObject, chunker: Chunker, chunk_ids: list[int], n: int, text: _Text
) -> _Rows:
    """`n` rows per chunk: unique keys, positions inside the chunk and their chunkId/subChunkId."""
    ra, dec = _positions(rng, chunker, chunk_ids, n, document)
    chunks, sub_chunks = chunker.locate(ra, dec)
    expected = np.repeat(chunk_ids, n)
    if not np.array_equal(chunks, expected):
        raise AssertionError(f"{document['table']}: generated positions left their chunk")
    rows = _generic_rows(rng, document, chunks, text)
    rows.sub_chunks, rows.positions = sub_chunks, (ra, dec)
    rows.set(document["director_key"], np.arange(1, len(chunks) + 1))
    rows.set(document["longitude_key"], ra)
    rows.set(document["latitude_key"], dec)
    rows.set("chunkId", chunks)
    rows.set("subChunkId", sub_chunks)
    return rows


def _director_links(document: JsonObject) -> list[tuple[str, str]]:
    """(director table, key column) of a child; a match table (case03's RefDeepSrcMatch) has a second director."""
    links = [(document["director_table"], document["director_key"])]
    if document.get("director_table2"):
        links.append((document["director_table2"], document["director_key2"]))
    return links


def _child_rows(
    rng: np.random.Generator,
    document: JsonObject,
    directors: dict[str, tuple[JsonObject, _Rows]],
    chunk_ids: list[int],
    n: int,
    text: _Text,
) -> _Rows:
    """`n` rows per chunk, each referencing a director row of that chunk (of each director of a match table),
    with the director's position in the columns of its name and in the child's own position columns, and the
    first director's chunkId/subChunkId. A match table's `flag` column says both sides are in the chunk (3)."""
    picks: list[tuple[JsonObject, _Rows, str, np.ndarray]] = []
    for table, key in _director_links(document):
        director_document, director = directors[table]
        starts = np.searchsorted(director.chunks, chunk_ids)  # director rows are in ascending chunk order
        counts = np.searchsorted(director.chunks, chunk_ids, side="right") - starts
        if not counts.all():
            raise ValueError(f"{document['table']}: a chunk of {chunk_ids} has no {table} row")
        picked = np.repeat(starts, n) + (rng.random(n * len(chunk_ids)) * np.repeat(counts, n)).astype(np.int64)
        picks.append((director_document, director, key, picked))
    first_document, first, _, first_rows = picks[0]
    rows = _generic_rows(rng, document, first.chunks[first_rows], text)
    rows.sub_chunks = first.sub_chunks[first_rows]
    for director_document, director, key, picked in reversed(picks):  # the first director's values win
        rows.set(key, [director.values[director_document["director_key"]][i] for i in picked])
        for column in (director_document["latitude_key"], director_document["longitude_key"]):
            rows.set(column, [director.values[column][i] for i in picked])
    for key in ("latitude_key", "longitude_key"):
        if document.get(key):
            rows.set(document[key], [first.values[first_document[key]][i] for i in first_rows])
    rows.set("chunkId", rows.chunks)
    rows.set("subChunkId", rows.sub_chunks)
    if document.get("flag"):
        rows.set(document["flag"], np.full(len(rows.chunks), 3))
    return rows


def _overlap_records(chunker: Chunker, rows: _Rows, text: _Text) -> dict[int, list[bytes]]:
    """Director rows in the overlap region of sub-chunks (of any chunk) other than their own, with those ids."""
    overlaps: dict[int, list[bytes]] = {}
    ra, dec = rows.positions
    for row in range(len(rows.chunks)):
        for chunk, sub_chunk in chunker.overlap_locations(float(ra[row]), float(dec[row])):
            values = dict(zip(rows.columns, rows.record_values(row), strict=True))
            values |= {"chunkId": str(chunk).encode(), "subChunkId": str(sub_chunk).encode()}
            overlaps.setdefault(chunk, []).append(text.record([values[c] for c in rows.columns]))
    return overlaps


def _select_chunks(metadata: JsonObject, documents: dict[str, JsonObject], chunker: Chunker, count: int) -> list[int]:
    """The first `count` chunks the case's first director lists (consecutive chunks at the equator if none)."""
    for entry in metadata["tables"]:
        if _kind(documents[entry["schema"]]) == DIRECTOR and _listed_chunks(entry["data"]):
            return list(dict.fromkeys(_listed_chunks(entry["data"])))[:count]
    first = int(chunker.locate(0.0, 0.0)[0][0])
    return list(range(first, first + count))


def _data_entries(entry: JsonObject, document: JsonObject, selected: list[int]) -> list[JsonObject]:
    """The entry's `data` restricted to the selected chunks; a batch without a directory gets `step<N>_<task>`."""
    kind, table = _kind(document), document["table"]
    if kind == REGULAR:
        return entry["data"]
    kept = []
    for task, data in enumerate(entry["data"] or [{}], start=1):
        chunks = [c for c in data.get("chunks") or selected if c in selected]
        if chunks:
            batch = {**data, "directory": data.get("directory") or f"{step_directory(kind, task)}/{table}"}
            batch["chunks"] = chunks
            if data.get("overlaps"):
                batch["overlaps"] = [c for c in data["overlaps"] if c in selected] or chunks
            kept.append(batch)
    return kept


def _order(kind: str) -> int:
    return {DIRECTOR: 0, CHILD: 1, REGULAR: 2}[kind]


def build_schema_case(
    itest: Path,
    name: str,
    out: Path,
    *,
    rows_per_chunk: int = 20,
    chunks: int = 3,
    seed: int = 0,
    database: str | None = None,
) -> Path:
    """A loadable copy of schema-only case `name` ("DC2", "case03"): its JSON files, a metadata.json listing the
    first `chunks` chunks of its own directories (fewer if it lists fewer), and generated rows: `rows_per_chunk`
    per chunk file and per regular file, written with each table's own dialect (table JSON options over the
    case's `formats`). Deterministic for a given seed."""
    case = itest / name
    metadata = _read_json(case / METADATA_FILE)
    documents = {entry["schema"]: _read_json(case / entry["schema"]) for entry in metadata["tables"]}
    chunker = _chunker(_read_json(case / metadata["database"]))
    case_dialects = parse_formats(metadata.get("formats", {}))
    charset = _charset(metadata.get("charset_name"))
    selected = _select_chunks(metadata, documents, chunker, chunks)
    _copy_documents(case, metadata, out, database)
    entries = [{**e, "data": _data_entries(e, documents[e["schema"]], selected)} for e in metadata["tables"]]
    directors: dict[str, tuple[JsonObject, _Rows]] = {}
    by_kind = sorted(enumerate(entries), key=lambda item: _order(_kind(documents[item[1]["schema"]])))
    for position, entry in by_kind:
        document = documents[entry["schema"]]
        rng = np.random.default_rng([seed, position])
        dialects = table_dialects(document, entry["schema"], case_dialects)
        kind = _kind(document)
        if kind == REGULAR:
            _write_regular(rng, out, entry, document, dialects, charset, rows_per_chunk)
            continue
        text = _Text(dialects["txt"], charset)
        listed = sorted(set(_listed_chunks(entry["data"])))
        if kind == DIRECTOR:
            rows = _director_rows(rng, document, chunker, listed, rows_per_chunk, text)
            directors[document["table"]] = (document, rows)
            overlaps = _overlap_records(chunker, rows, text)
        else:
            rows = _child_rows(rng, document, directors, listed, rows_per_chunk, text)
            overlaps = {}
        _write_batches(out, entry, rows, text, overlaps, write_overlaps=kind == DIRECTOR)
    _write_json(out / METADATA_FILE, {**metadata, "tables": entries})
    return out


def _write_batches(
    out: Path, entry: JsonObject, rows: _Rows, text: _Text, overlaps: dict[int, list[bytes]], write_overlaps: bool
) -> None:
    for data in entry["data"]:
        for chunk in data["chunks"]:
            records = [text.record(rows.record_values(row)) for row in np.flatnonzero(rows.chunks == chunk)]
            _write_records(out / data["directory"] / f"chunk_{chunk}.txt", records, text.dialect)
        for chunk in _listed_overlaps(data) if write_overlaps else []:
            _write_records(
                out / data["directory"] / f"chunk_{chunk}_overlap.txt", overlaps.get(chunk, []), text.dialect
            )


def _write_regular(
    rng: np.random.Generator,
    out: Path,
    entry: JsonObject,
    document: JsonObject,
    dialects: dict[str, Dialect],
    charset: str,
    n: int,
) -> None:
    for data in entry["data"]:
        for name in data["files"]:
            text = _Text(dialects[name.rsplit(".", 1)[-1]], charset)
            rows = _generic_rows(rng, document, np.zeros(n, dtype=np.int64), text)
            records = [text.record(rows.record_values(row)) for row in range(n)]
            _write_records(out / data["directory"] / name, records, text.dialect)

"""The census of one chunk where its data is: what its table holds on its worker, against its files.

Row count, the key fingerprint of each attempt (a differing file is read again to name a few keys), duplicate
keys (a director), NULL keys and keys absent from the director chunk, told apart through the director index
(a child). Counts and the first offending keys come back; a child's absent keys stream in bounded batches.
A child chunk's census is taken as soon as it loads and kept with the version of the data it judged (its
attempts and its director chunk's), so level 4 recounts only the chunks that changed since.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pymysql

from loader_assets.catalog.layout import CaseLayout, TableLayout
from loader_assets.catalog.notices import DoneFile
from loader_assets.workers import census
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.ddl import chunk_table_name
from loader_assets.workers.fingerprint import Fingerprint, FingerprintError, as_numpy, key_column
from loader_assets.workers.key_set import KeySet

SHOWN_KEYS = 10  # how many offending keys a check result lists


@dataclass
class ChunkCensus:
    """What one chunk (own or overlap table) holds on its worker, against its files."""

    chunk: int
    overlap: bool
    worker: str
    table_name: str
    files: list[DoneFile]
    rows: int | None = None  # None: the table is missing
    bad_fingerprints: list[str] = field(default_factory=list)  # "file: what differs"
    missing_keys: list[int] = field(default_factory=list)  # of the files, not on the worker (first few)
    unexpected_keys: list[int] = field(default_factory=list)  # on the worker, in none of the files
    duplicates: list[int] = field(default_factory=list)
    unfingerprinted: int = 0
    null_keys: int = 0
    misplaced: dict[int, int] = field(default_factory=dict)  # key -> rows, first SHOWN_KEYS
    misplaced_rows: int = 0
    orphans: dict[int, int] = field(default_factory=dict)
    orphan_rows: int = 0

    @property
    def expected_rows(self) -> int:
        return sum(f.rows for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """What is kept of a child chunk's census (its files are the catalog's)."""
        found = asdict(self)
        del found["files"]
        found["misplaced"], found["orphans"] = list(self.misplaced.items()), list(self.orphans.items())
        return found

    @classmethod
    def from_json(cls, data: dict[str, Any], files: list[DoneFile]) -> ChunkCensus:
        kept = {**data, "misplaced": dict(data["misplaced"]), "orphans": dict(data["orphans"])}
        return cls(files=files, **kept)


def chunk_version(child_files: list[DoneFile], director_files: list[DoneFile]) -> str:
    """What a child chunk's census judged: its attempts and its director chunk's."""
    attempts = [f"c{f.attempt_id}" for f in child_files] + [f"d{f.attempt_id}" for f in director_files if not f.overlap]
    return hashlib.sha1(",".join(sorted(attempts)).encode()).hexdigest()


def new_census(table: TableLayout, chunk: int, overlap: bool, worker: str, files: list[DoneFile]) -> ChunkCensus:
    return ChunkCensus(chunk, overlap, worker, chunk_table_name(table.name, chunk, overlap), files)


def census_of_worker(cluster: Cluster, worker: str, layout: CaseLayout, table: TableLayout,
                      director: TableLayout | None, chunks: list[ChunkCensus]) -> None:  # fmt: skip
    key = table.director_key or ""
    with (
        cluster.worker(worker).connect() as conn,
        conn.cursor() as cursor,
        cluster.czar.connect() as czar,  # one per worker: the director index, for a child's absent keys
        czar.cursor() as czar_cursor,
    ):
        for chunk in chunks:
            chunk.rows = census.row_count(cursor, layout.database, chunk.table_name)
            if chunk.rows is None:
                continue
            _check_fingerprints(cursor, layout, table, chunk, key)
            if director is None and not chunk.overlap:
                chunk.duplicates = census.duplicate_keys(cursor, layout.database, chunk.table_name, key, SHOWN_KEYS)
            if director is not None:
                chunk.null_keys = census.null_keys(cursor, layout.database, chunk.table_name, key)
                _absent_keys(conn, czar_cursor, layout, chunk, table, director)


class DirectorKeys:
    """The key sets of the director chunks read last, up to `kept_bytes` (16-32 a key): each child table of a chunk
    asks for them, often a whole level apart (a level loads Source's chunks, then ForcedSource's)."""

    def __init__(self, kept_bytes: int = 256 << 20) -> None:  # a 110,000-key chunk's set: 2 MB
        self.kept_bytes = kept_bytes
        self._keys: OrderedDict[tuple[str, str, str, str], KeySet] = OrderedDict()
        self._lock = threading.Lock()

    def of_chunk(self, cursor: pymysql.cursors.Cursor, worker: str, layout: CaseLayout, director: TableLayout,
                 chunk: int, dtype: np.dtype) -> KeySet:  # fmt: skip
        """The keys of the director's chunk table on `worker` (`cursor` is on it)."""
        wanted = (worker, layout.database, chunk_table_name(director.name, chunk), dtype.str)
        with self._lock:
            if wanted in self._keys:
                self._keys.move_to_end(wanted)
                return self._keys[wanted]
        found = KeySet(census.table_keys(cursor, layout.database, wanted[2], director.director_key or "", dtype))
        with self._lock:
            self._keys[wanted] = found
            while len(self._keys) > 1 and sum(keys.nbytes for keys in self._keys.values()) > self.kept_bytes:
                self._keys.popitem(last=False)
        return found


def census_from_keys(cluster: Cluster, layout: CaseLayout, table: TableLayout, director: TableLayout,
                     chunk: ChunkCensus, keys: pa.Array, director_keys: DirectorKeys) -> None:  # fmt: skip
    """The census of a child chunk made of one file whose keys this process just parsed: its absent keys come
    from those keys against the director chunk's keys (read off its worker), not from an anti-join there; the
    worker proves it holds the file's keys through the attempt's fingerprint, so NULL keys are the file's too."""
    with cluster.worker(chunk.worker).connect(reuse=True) as conn, conn.cursor() as cursor:
        chunk.rows = census.row_count(cursor, layout.database, chunk.table_name)
        if chunk.rows is None:
            return
        _check_fingerprints(cursor, layout, table, chunk, table.director_key or "")
        chunk.null_keys = keys.null_count
        present = as_numpy(keys)
        in_director = director_keys.of_chunk(cursor, chunk.worker, layout, director, chunk.chunk, present.dtype)
    absent, rows = np.unique(in_director.absent(present), return_counts=True)
    pairs = list(zip(absent.tolist(), rows.tolist(), strict=True))
    if not pairs:
        return
    index = census.index_table(layout.database, director.name)
    with cluster.czar.connect(reuse=True) as czar, czar.cursor() as czar_cursor:
        for start in range(0, len(pairs), census.KEY_BATCH):
            _tell_apart(czar_cursor, index, director.director_key or "", chunk, pairs[start : start + census.KEY_BATCH])


def _check_fingerprints(
    cursor: pymysql.cursors.Cursor, layout: CaseLayout, table: TableLayout, chunk: ChunkCensus, key: str
) -> None:
    for item in chunk.files:
        if item.fingerprint is None:  # loaded before fingerprints existed: rows are counted, keys not proved
            chunk.unfingerprinted += 1
            continue
        if "error" in item.fingerprint:
            chunk.bad_fingerprints.append(_unproved(item, item.fingerprint["error"]))
            continue
        try:
            expected = Fingerprint.from_json(item.fingerprint)
        except FingerprintError as error:
            chunk.bad_fingerprints.append(_unproved(item, error.cause))
            continue
        found = census.partition_fingerprint(
            cursor, layout.database, chunk.table_name, key, item.attempt_id, expected.kind
        )
        if found != expected:
            chunk.bad_fingerprints.append(f"{item.path}: {_difference(expected, found)}")
            if len(chunk.missing_keys) + len(chunk.unexpected_keys) < SHOWN_KEYS:  # a few keys name the fault
                _name_keys(cursor, layout, table, chunk, item, key)


def _name_keys(cursor: pymysql.cursors.Cursor, layout: CaseLayout, table: TableLayout, chunk: ChunkCensus,
               item: DoneFile, key: str) -> None:  # fmt: skip
    """A file whose keys differ on the worker: which keys (the diagnosis reads that one file again)."""
    try:
        in_file, _ = key_column(
            layout.root / item.path, item.format, table.column_names, key, layout.dialect_of(item.format, table)
        )
    except (OSError, FingerprintError):
        return  # the file changed or went away since its load: the chunk is named, its keys are not
    on_worker = set(census.partition_keys(cursor, layout.database, chunk.table_name, key, item.attempt_id))
    file_keys = set(as_numpy(in_file).tolist())  # Python integers: numpy would compare uint64 with int as floats
    chunk.missing_keys += sorted(file_keys - on_worker)[:SHOWN_KEYS]
    chunk.unexpected_keys += sorted(on_worker - file_keys)[:SHOWN_KEYS]


def _unproved(item: DoneFile, cause: str) -> str:
    return f"{item.path}: its keys cannot be proved ({cause})"


def _difference(expected: Fingerprint, found: Fingerprint) -> str:
    if expected.rows != found.rows:
        return f"{expected.rows} records in the file, {found.rows} rows on the worker"
    if expected.keys != found.keys:
        return f"{expected.keys} non-NULL keys in the file, {found.keys} on the worker"
    return "the keys on the worker differ from those of the file (same count, other values)"


def _absent_keys(conn: pymysql.Connection, czar_cursor: pymysql.cursors.Cursor, layout: CaseLayout,
                 chunk: ChunkCensus, table: TableLayout, director: TableLayout) -> None:  # fmt: skip
    """Child keys absent from the director chunk on this worker, told apart through the director index."""
    director_table = chunk_table_name(director.name, chunk.chunk)
    with conn.cursor() as cursor:
        present = census.table_exists(cursor, layout.database, director_table)
    index = census.index_table(layout.database, director.name)
    director_key = director.director_key or ""
    batches = census.absent_keys(
        conn, layout.database, chunk.table_name, director_table if present else None,
        table.director_key or "", director_key,
    )  # fmt: skip
    for batch in batches:
        _tell_apart(czar_cursor, index, director_key, chunk, batch)


def _tell_apart(czar_cursor: pymysql.cursors.Cursor, index: str, director_key: str, chunk: ChunkCensus,
                absent: list[tuple[int, int]]) -> None:  # fmt: skip
    """(key, rows) absent from the director chunk: misplaced when the index has the key in another chunk,
    else orphans."""
    found = census.index_chunks_of(czar_cursor, index, director_key, [k for k, _ in absent])
    for key, rows in absent:
        if key in found:
            chunk.misplaced_rows += rows
            if len(chunk.misplaced) < SHOWN_KEYS:
                chunk.misplaced[key] = rows
        else:
            chunk.orphan_rows += rows
            if len(chunk.orphans) < SHOWN_KEYS:
                chunk.orphans[key] = rows

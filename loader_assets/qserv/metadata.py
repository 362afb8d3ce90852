"""Parse a qserv-ingest case directory: `metadata.json` (version 12 or later), the database, table and index
JSON files it names, and the chunk / regular files of its data directories, as lsst-dm/qserv-ingest reads them.

Semantics kept from qserv-ingest (`rootfs/ingest/python/qserv/metadata.py`):
- only director tables have overlap files: `overlaps` lists their chunk ids, and when it is absent (or empty)
  every listed chunk has one. An overlap may be listed for a chunk absent from `chunks` (cosmoDC2: rows near a
  chunk that has none of its own). Children never load overlaps, so their `chunk_<id>_overlap.*` files are
  ignored (the partitioner writes them, e.g. qserv-ingest's own itest case03);
- a table JSON without `director_table` but partitioned is a director;
- dialect options (metadata.json `formats`, a table JSON's own `fields_terminated_by`...) are MySQL string-literal
  contents (`\\t` is a tab, see `dialect.mysql_unescape`); a table's options apply on top of the case's formats.
Every refusal is a `MetadataError` whose message starts with (or ends with) the file at fault, and names the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import posixpath
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from loader_assets.levels import load_level
from loader_assets.problems import BadInput
from loader_assets.qserv.column_types import is_column_type
from loader_assets.qserv.dialect import DEFAULT_DIALECTS, DIALECT_KEYS, Dialect, mysql_unescape
from loader_assets.qserv.geometry import Chunker

METADATA_FILE = "metadata.json"
SUPPORTED_VERSION = 12  # the version written by `sample`, and the oldest one read (qserv-ingest's own minimum)
TEXT_FORMATS = ("txt", "csv", "tsv")
FILE_FORMATS = (*TEXT_FORMATS, "parquet")  # order of preference when looking for a chunk file on disk
PARTITION_COLUMNS = ("chunkId", "subChunkId")

CHUNK_FILE = re.compile(r"^chunk_(\d+)(_overlap)?\.(txt|csv|tsv|parquet)$")
STEP_DIRECTORY = re.compile(r"^step(\d+)_(\d+)$")

JsonObject = dict[str, Any]


class MetadataError(BadInput):
    """A case directory that does not describe a loadable Qserv catalog."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause, "correct the case directory (nothing of it was registered)")


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative to the case root, posix
    chunk: int | None  # None for regular tables
    overlap: bool
    format: str  # txt | csv | tsv | parquet
    size: int
    mtime: float


@dataclass(frozen=True)
class BatchSpec:
    directory: str  # relative to the case root, as written in metadata.json
    step: int | None  # from a step<N>_<task> first path component, else None
    task: int | None
    files: list[FileSpec]


@dataclass(frozen=True)
class TableSpec:
    name: str
    kind: str  # director | child | regular
    level: int
    director_table: str | None
    director_key: str | None
    latitude_key: str | None
    longitude_key: str | None
    columns: list[JsonObject]  # [{"name": ..., "type": ...}] as in the table JSON
    indexes: list[JsonObject]  # index JSON documents as given
    batches: list[BatchSpec]
    dialects: dict[str, Dialect]  # per text format: the case's, with the table JSON's own options on top

    @property
    def is_partitioned(self) -> bool:
        return self.kind != "regular"


@dataclass(frozen=True)
class CaseMetadata:
    root: Path
    database: str
    num_stripes: int
    num_sub_stripes: int
    overlap: float
    charset: str
    dialects: dict[str, Dialect]  # per text format, the case level (metadata.json `formats`)
    tables: list[TableSpec]

    def table(self, name: str) -> TableSpec:
        return next(table for table in self.tables if table.name == name)


# --- JSON documents -------------------------------------------------------------------------------------------


def _read_json_object(root: Path, name: Any, object_hook: Callable[[dict], Any] | None = None) -> JsonObject:
    if not isinstance(name, str) or not name:
        raise MetadataError(f"{METADATA_FILE}: {name!r} is not a file name")  # every other name comes from it
    try:
        content = (root / name).read_text(encoding="utf-8-sig")  # str only, no bytes kept: 10s of MB at DP0.2
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MetadataError(f"{name}: not found in {root}") from None
    except UnicodeDecodeError as error:
        raise MetadataError(f"{name}: not valid JSON ({error})") from None
    try:
        document = json.loads(content, object_hook=object_hook)
    except ValueError as error:  # JSONDecodeError
        raise MetadataError(f"{name}: not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise MetadataError(f"{name}: not a JSON object")
    return document


def _require_keys(document: JsonObject, keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in document]
    if missing:
        raise MetadataError(f"{where}: missing keys {', '.join(missing)}")


def _require_list_of(value: Any, kind: type, where: str, key: str) -> list[Any]:
    # bool is an int to Python, never a chunk id nor a file name
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, kind) for v in value):
        raise MetadataError(f"{where}: '{key}' must be a list of {kind.__name__}")
    return value


def _compact_chunk_ids(entry: dict) -> dict:
    """A data entry's chunk ids as an array once the entry is parsed: a case lists millions, and as Python ints
    they would all sit in memory at once (28 bytes each, against 8)."""
    for key in ("chunks", "overlaps"):
        ids = entry.get(key)
        if isinstance(ids, list) and ids and all(type(i) is int for i in ids):  # else the checks name the fault
            with contextlib.suppress(OverflowError):  # beyond int64: not a chunk id, refused by the checks
                entry[key] = np.array(ids, dtype=np.int64)
    return entry


def _read_metadata(root: Path) -> JsonObject:
    metadata = _read_json_object(root, METADATA_FILE, object_hook=_compact_chunk_ids)
    version = metadata.get("version")
    if "version" not in metadata:  # qserv-ingest's version 12 made it mandatory: older cases (cosmoDC2) lack it
        raise MetadataError(f"{METADATA_FILE}: 'version' is missing, expected an integer >= {SUPPORTED_VERSION}")
    if isinstance(version, bool) or not isinstance(version, int) or version < SUPPORTED_VERSION:
        raise MetadataError(
            f"{METADATA_FILE}: 'version' {version!r} is not supported, expected an integer >= {SUPPORTED_VERSION}"
        )
    _require_keys(metadata, ("database", "tables"), METADATA_FILE)
    _require_list_of(metadata["tables"], dict, METADATA_FILE, "tables")
    return metadata


def _read_database(root: Path, name: str) -> JsonObject:
    database = _read_json_object(root, name)
    _require_keys(database, ("database", "num_stripes", "num_sub_stripes", "overlap"), name)
    try:
        Chunker(int(database["num_stripes"]), int(database["num_sub_stripes"]), float(database["overlap"]))
    except (TypeError, ValueError) as error:
        raise MetadataError(f"{name}: invalid partitioning ({error})") from None
    return database


def dialect_options(options: JsonObject, keys: list[str], where: str) -> dict[str, str]:
    """Dialect options as JSON gives them (MySQL string-literal contents) -> their characters."""
    parsed: dict[str, str] = {}
    for key in keys:
        if not isinstance(options[key], str):
            raise MetadataError(f"{where}: '{key}' must be a string")
        parsed[key] = mysql_unescape(options[key])
        if not parsed[key] and key in ("fields_terminated_by", "lines_terminated_by"):
            raise MetadataError(f"{where}: '{key}' must not be empty")
    if parsed.get("fields_enclosed_by") == "\0":  # Qserv's spelling of "no enclosing character"
        parsed["fields_enclosed_by"] = ""
    return parsed


def parse_formats(formats: Any) -> dict[str, Dialect]:
    """metadata.json `formats` -> the dialect of each text format (Qserv's default for those it leaves out)."""
    if not isinstance(formats, dict):
        raise MetadataError(f"{METADATA_FILE}: 'formats' must be an object")
    dialects = dict(DEFAULT_DIALECTS)
    for extension, options in formats.items():
        where = f"{METADATA_FILE} formats.{extension}"
        if extension not in TEXT_FORMATS:
            raise MetadataError(f"{where}: unsupported format, expected one of {', '.join(TEXT_FORMATS)}")
        if not isinstance(options, dict):
            raise MetadataError(f"{where}: must be an object")
        unknown = sorted(set(options) - set(DIALECT_KEYS))
        if unknown:
            raise MetadataError(f"{where}: unknown keys {', '.join(unknown)}")
        parsed = dialect_options(options, list(options), where)
        dialects[extension] = dataclasses.replace(DEFAULT_DIALECTS[extension], **parsed)
    return dialects


def table_dialects(document: JsonObject, name: str, case_dialects: dict[str, Dialect]) -> dict[str, Dialect]:
    """The case's dialects with the options of table JSON `name` (case03: `fields_terminated_by`) on top."""
    options = dialect_options(document, [key for key in DIALECT_KEYS if key in document], name)
    return {fmt: dataclasses.replace(dialect, **options) for fmt, dialect in case_dialects.items()}


def _read_table_json(root: Path, name: str) -> JsonObject:
    document = _read_json_object(root, name)
    _require_keys(document, ("table", "is_partitioned", "schema"), name)
    if document["is_partitioned"] not in (0, 1):
        raise MetadataError(f"{name}: 'is_partitioned' must be 0 or 1")
    if document["is_partitioned"]:
        _require_keys(document, ("director_key",), name)
    schema = document["schema"]
    if not schema or not isinstance(schema, list) or not all(_is_column(column) for column in schema):
        raise MetadataError(f"{name}: 'schema' must be a non-empty list of {{name, type}} objects")
    for column in schema:
        if not is_column_type(column["type"]):
            raise MetadataError(
                f"{name}: column {column['name']!r}: type {column['type']!r} is not a MariaDB column type "
                "(one type, its arguments and attributes such as NOT NULL, DEFAULT, CHARACTER SET, COMMENT)"
            )
    return document


def _is_column(column: Any) -> bool:
    return isinstance(column, dict) and isinstance(column.get("name"), str) and isinstance(column.get("type"), str)


def _read_index_json(root: Path, name: str) -> JsonObject:
    document = _read_json_object(root, name)
    _require_keys(document, ("index", "columns"), name)
    if not document["columns"] or not isinstance(document["columns"], list):
        raise MetadataError(f"{name}: 'columns' must be a non-empty list")
    return document


# --- tables ---------------------------------------------------------------------------------------------------


def _kind(document: JsonObject) -> str:
    if not document["is_partitioned"]:
        return "regular"
    return "child" if document.get("director_table") else "director"


def _check_partition_columns(document: JsonObject, name: str) -> None:
    if not document["is_partitioned"]:
        return
    columns = {column["name"] for column in document["schema"]}
    missing = [column for column in PARTITION_COLUMNS if column not in columns]
    if missing:
        raise MetadataError(f"{name}: partitioned table lacks columns {', '.join(missing)}")
    if _kind(document) == "director" and document["director_key"] not in columns:
        raise MetadataError(f"{name}: director_key '{document['director_key']}' is not a column")


# --- data files -----------------------------------------------------------------------------------------------


def _join(directory: str, name: str) -> str:
    directory = directory.strip("/")
    return f"{directory}/{name}" if directory else name


def _step_and_task(directory: str) -> tuple[int | None, int | None]:
    match = STEP_DIRECTORY.match(directory.strip("/").split("/")[0])
    return (int(match[1]), int(match[2])) if match else (None, None)


class _Listings:
    """Directory listings of the case, read once each: name -> stat of regular files (and which are links)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, dict[str, os.stat_result]] = {}
        self.links: dict[str, set[str]] = {}

    def __call__(self, directory: str) -> dict[str, os.stat_result]:
        directory = directory.strip("/")
        if directory not in self._cache:
            listing, links = {}, set()
            try:
                with os.scandir(self.root / directory) as entries:
                    for entry in entries:
                        if entry.is_file():
                            listing[entry.name] = entry.stat()
                            if entry.is_symlink():
                                links.add(entry.name)
            except (FileNotFoundError, NotADirectoryError):
                pass
            self._cache[directory], self.links[directory] = listing, links
        return self._cache[directory]

    def forget(self, directory: str) -> None:
        """A directory all of whose batches were read: its listing goes (a case of millions of files)."""
        self._cache.pop(directory.strip("/"), None)
        self.links.pop(directory.strip("/"), None)


def _file_spec(directory: str, name: str, stat: os.stat_result, chunk: int | None, overlap: bool) -> FileSpec:
    return FileSpec(
        path=_join(directory, name),
        chunk=chunk,
        overlap=overlap,
        format=name.rsplit(".", 1)[-1],
        size=stat.st_size,
        mtime=stat.st_mtime,
    )


def _usual_extension(listing: dict[str, os.stat_result], default: str) -> str:
    """Extension of most chunk files of a directory: the one to name when a listed file is absent."""
    extensions = Counter(match[3] for match in map(CHUNK_FILE.match, listing) if match)
    return extensions.most_common(1)[0][0] if extensions else default


def _chunk_file(
    directory: str, chunk: int, overlap: bool, listing: dict[str, os.stat_result], default_extension: str
) -> FileSpec:
    stem = f"chunk_{chunk}_overlap" if overlap else f"chunk_{chunk}"
    for extension in FILE_FORMATS:
        name = f"{stem}.{extension}"
        if name in listing:
            return _file_spec(directory, name, listing[name], chunk, overlap)
    absent = _join(directory, f"{stem}.{_usual_extension(listing, default_extension)}")
    raise MetadataError(f"listed in {METADATA_FILE} but absent: {absent}")


def _regular_file(directory: str, name: str, listings: _Listings) -> FileSpec:
    path = _join(directory, name)
    if name.rsplit(".", 1)[-1] not in FILE_FORMATS:
        raise MetadataError(f"{METADATA_FILE}: unsupported file format, expected one of {FILE_FORMATS}: {path}")
    parent, _, base = path.rpartition("/")  # a listed name may have its own sub-directory
    listing = listings(parent)
    if base not in listing:
        raise MetadataError(f"listed in {METADATA_FILE} but absent: {path}")
    return _file_spec(parent, base, listing[base], None, False)


def _inside(root: Path, path: str, where: str, allow_links_out: bool) -> str:
    """`path` relative to the case root in its one canonical spelling (`./a/../b` -> `b`); refused when it
    leads out of the root, by `..`, as an absolute path, or (unless allowed) through a symlink."""
    canonical = posixpath.normpath(path.strip()) if path.strip() else "."
    outside = posixpath.isabs(canonical) or canonical == ".." or canonical.startswith("../")
    if not outside and not allow_links_out:
        outside = not (root / canonical).resolve().is_relative_to(root.resolve())
    if outside:
        raise MetadataError(f"{where} {path!r} leads out of the case root {root}")
    return "" if canonical == "." else canonical


@dataclass(frozen=True, eq=False)
class BatchEntry:
    """One `data[]` entry of a table, checked, its files not looked for yet."""

    table: str
    kind: str
    where: str
    directory: str  # canonical, relative to the case root
    chunks: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    overlaps: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))  # chunks with an overlap file
    names: tuple[str, ...] = ()  # a regular table's files, canonical paths relative to the root


def _batch_entry(entry: JsonObject, table: str, kind: str, where: str, root: Path, allow_links_out: bool) -> BatchEntry:
    _require_keys(entry, ("directory",), where)
    if not isinstance(entry["directory"], str):
        raise MetadataError(f"{where}: 'directory' must be a string")
    directory = _inside(root, entry["directory"], f"{where}: 'directory'", allow_links_out)
    if kind == "regular":
        _require_keys(entry, ("files",), where)
        names = _require_list_of(entry["files"], str, where, "files")
        names = [_inside(root, _join(directory, name), f"{where}: 'files'", allow_links_out) for name in names]
        return BatchEntry(table, kind, where, directory, names=tuple(names))
    _require_keys(entry, ("chunks",), where)
    chunks = _chunk_ids(entry["chunks"], where, "chunks")
    overlaps = np.empty(0, dtype=np.int64)
    if kind == "director":
        # qserv-ingest: an absent or empty `overlaps` means every listed chunk has an overlap file
        listed = entry.get("overlaps")
        absent = len(listed) == 0 if isinstance(listed, list | np.ndarray) else not listed
        overlaps = chunks if absent else _chunk_ids(listed, where, "overlaps")
    return BatchEntry(table, kind, where, directory, chunks, overlaps)


def _chunk_ids(value: Any, where: str, key: str) -> np.ndarray:
    if isinstance(value, np.ndarray):  # made by `_compact_chunk_ids` of a list of ints
        return value
    try:
        return np.array(_require_list_of(value, int, where, key), dtype=np.int64)
    except OverflowError:
        raise MetadataError(f"{where}: '{key}' must be a list of int") from None


def _batch(entry: BatchEntry, listings: _Listings, default_extension: str) -> BatchSpec:
    """The entry with its files found on disk (a listed one absent is refused)."""
    if entry.kind == "regular":
        files = [_regular_file("", name, listings) for name in entry.names]
    else:
        listing = listings(entry.directory)
        chunks, overlaps = entry.chunks.tolist(), entry.overlaps.tolist()  # Python ints: they go to the catalog
        files = [_chunk_file(entry.directory, chunk, False, listing, default_extension) for chunk in chunks]
        files += [_chunk_file(entry.directory, chunk, True, listing, default_extension) for chunk in overlaps]
    return BatchSpec(entry.directory, *_step_and_task(entry.directory), files)


class _Identities:
    """Which file each listed path really is, compactly (a case lists millions): a chunk file is known by its
    directory (resolved once) and chunk id, a link or a regular file by its resolved path."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._resolved: dict[str, str] = {}  # directory as listed -> resolved
        self._directories: dict[str, int] = {}  # resolved directory -> its number
        self._paths: dict[str, int] = {}  # resolved path of a link or regular file -> its number
        self._keys: list[np.ndarray] = []

    def add(self, batch: BatchSpec, links: set[str]) -> None:
        keys = np.fromiter((self._key(file, links) for file in batch.files), dtype=np.int64, count=len(batch.files))
        self._keys.append(keys)

    def _key(self, file: FileSpec, links: set[str]) -> int:
        directory, _, name = file.path.rpartition("/")
        if file.chunk is None or name in links:
            resolved = (self.root / file.path).resolve().as_posix()
            match = CHUNK_FILE.match(resolved.rsplit("/", 1)[-1])
            if match is None:  # not a chunk file: a number of its own, negative (apart from chunk keys)
                return -1 - self._paths.setdefault(resolved, len(self._paths))
            return self._chunk_key(resolved.rsplit("/", 1)[0], int(match[1]), match[2] is not None)
        if directory not in self._resolved:
            self._resolved[directory] = (self.root / directory).resolve().as_posix()
        return self._chunk_key(self._resolved[directory], file.chunk, file.overlap)

    def _chunk_key(self, resolved_directory: str, chunk: int, overlap: bool) -> int:
        number = self._directories.setdefault(resolved_directory, len(self._directories))
        return (number << 41) | (chunk << 1) | int(overlap)

    def twice(self) -> bool:
        keys = np.concatenate(self._keys) if self._keys else np.empty(0, dtype=np.int64)
        self._keys = [keys]  # the batches' arrays go: one copy of the keys is enough
        keys.sort()  # in place: np.unique's hash table would take 8x the keys' memory (120 MB for 1.76 M)
        return bool(np.any(keys[1:] == keys[:-1]))


def _refuse_unlisted_chunk_files(directory: str, listed: set[str], with_overlaps: bool, listings: _Listings) -> None:
    """A `chunk_<id>[_overlap].<ext>` file next to listed ones but not listed would silently not be loaded."""
    for name in sorted(listings(directory)):
        match = CHUNK_FILE.match(name)
        ignored = match is None or (match[2] is not None and not with_overlaps)
        if not ignored and _join(directory, name) not in listed:
            raise MetadataError(f"present but not listed in {METADATA_FILE}: {_join(directory, name)}")


# --- entry point ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ListedTable:
    """One `tables[]` entry of metadata.json with its table JSON, before its data files are resolved."""

    where: str
    entry: JsonObject
    schema_file: str
    document: JsonObject

    @property
    def name(self) -> str:
        return self.document["table"]

    @property
    def kind(self) -> str:
        return _kind(self.document)


def _read_listed_tables(root: Path, entries: list[JsonObject]) -> dict[str, _ListedTable]:
    listed: dict[str, _ListedTable] = {}
    for position, entry in enumerate(entries):
        where = f"{METADATA_FILE} tables[{position}]"
        _require_keys(entry, ("schema", "data"), where)
        table = _ListedTable(where, entry, entry["schema"], _read_table_json(root, entry["schema"]))
        _check_partition_columns(table.document, table.schema_file)
        if table.name in listed:
            raise MetadataError(f"{where}: table '{table.name}' is listed more than once")
        listed[table.name] = table
    return listed


def _check_directors(listed: dict[str, _ListedTable]) -> None:
    """Each child names a director table of the same case (Qserv has no child of a child)."""
    for table in listed.values():
        director = table.document.get("director_table")
        if table.kind == "child" and (director not in listed or listed[director].kind != "director"):
            raise MetadataError(f"{table.schema_file}: director_table '{director}' is not a director table of the case")


def _table_spec(root: Path, table: _ListedTable, dialects: dict[str, Dialect]) -> TableSpec:
    """The table without its batches (`CaseReader.batches` streams them)."""
    index_files = _require_list_of(table.entry.get("indexes", []), str, table.where, "indexes")
    document = table.document
    return TableSpec(
        name=table.name,
        kind=table.kind,
        level=load_level(table.kind),
        director_table=document.get("director_table") or None,
        director_key=document.get("director_key") or None,
        latitude_key=document.get("latitude_key") or None,
        longitude_key=document.get("longitude_key") or None,
        columns=document["schema"],
        indexes=[_read_index_json(root, name) for name in index_files],
        batches=[],
        dialects=table_dialects(document, table.schema_file, dialects),
    )


class CaseReader:
    """A case read in two passes, so that millions of files never sit in memory at once: `check()` looks for
    every listed file and refuses a case with an absent, doubly listed or unlisted one; `batches()` then
    yields each batch with its files, one at a time, in the order of metadata.json.

    `metadata` holds the case and its tables (their `batches` empty); every data file is kept under the root (a
    symlink leading out of it only with `allow_links_out`)."""

    def __init__(self, root: Path, *, allow_links_out: bool = False) -> None:
        root = Path(root).resolve()
        document = _read_metadata(root)
        database = _read_database(root, document["database"])
        formats = document.get("formats", {})
        dialects = parse_formats(formats)
        listed = _read_listed_tables(root, document["tables"])
        _check_directors(listed)
        self.root = root
        self.default_extension = next(iter(formats), "txt")
        self.entries: list[BatchEntry] = []
        tables = []
        for table in listed.values():
            tables.append(_table_spec(root, table, dialects))
            data = _require_list_of(table.entry["data"], dict, table.where, "data")
            self.entries += [
                _batch_entry(item, table.name, table.kind, f"{table.where}.data[{n}]", root, allow_links_out)
                for n, item in enumerate(data)
            ]
        self.metadata = CaseMetadata(
            root=root,
            database=database["database"],
            num_stripes=int(database["num_stripes"]),
            num_sub_stripes=int(database["num_sub_stripes"]),
            overlap=float(database["overlap"]),
            charset=document.get("charset_name") or "latin1",
            dialects=dialects,
            tables=tables,
        )

    def check(self) -> int:
        """Every listed file there once, every chunk file of a data directory listed; the number of files."""
        identities, files = _Identities(self.root), 0
        for entry, batch, listings in self._read():
            identities.add(batch, listings.links.get(entry.directory, set()))
            files += len(batch.files)
        if identities.twice():
            raise MetadataError(f"{METADATA_FILE}: listed more than once: {self._first_listed_twice()}")
        return files

    def batches(self) -> Iterator[tuple[TableSpec, BatchSpec]]:
        tables = {table.name: table for table in self.metadata.tables}
        for entry, batch, _listings in self._read():
            yield tables[entry.table], batch

    def _read(self) -> Iterator[tuple[BatchEntry, BatchSpec, _Listings]]:
        """Each entry with its files; a directory's unlisted chunk files refused once its last batch is read."""
        listings = _Listings(self.root)
        remaining = Counter(entry.directory for entry in self.entries)
        listed: dict[str, set[str]] = {}
        with_overlaps = {entry.directory for entry in self.entries if entry.kind == "director"}
        regular = {name for entry in self.entries for name in entry.names}
        for entry in self.entries:
            batch = _batch(entry, listings, self.default_extension)
            yield entry, batch, listings
            listed.setdefault(entry.directory, set()).update(file.path for file in batch.files)
            remaining[entry.directory] -= 1
            if not remaining[entry.directory]:
                paths = listed.pop(entry.directory) | regular
                _refuse_unlisted_chunk_files(entry.directory, paths, entry.directory in with_overlaps, listings)
                listings.forget(entry.directory)

    def _first_listed_twice(self) -> str:
        """The path of the first file listed again (looked for again: only on the way to an error)."""
        seen: set[str] = set()
        for _entry, batch, _listings in self._read():
            for file in batch.files:
                resolved = (self.root / file.path).resolve().as_posix()
                if resolved in seen:
                    return Path(resolved).relative_to(self.root).as_posix()
                seen.add(resolved)
        raise AssertionError("no file listed twice")


def read_case(root: Path, *, allow_links_out: bool = False) -> CaseMetadata:
    """Parse and check the case at `root`, its files in memory (a small case); raise `MetadataError` naming the
    file at fault. A big case is read by `CaseReader`, a batch at a time."""
    reader = CaseReader(root, allow_links_out=allow_links_out)
    reader.check()
    tables = {table.name: dataclasses.replace(table, batches=[]) for table in reader.metadata.tables}
    for table, batch in reader.batches():
        tables[table.name].batches.append(batch)
    return dataclasses.replace(reader.metadata, tables=list(tables.values()))

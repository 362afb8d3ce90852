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

import dataclasses
import json
import os
import posixpath
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loader_assets.levels import load_level
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


class MetadataError(ValueError):
    """A case directory that does not describe a loadable Qserv catalog."""


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


def _read_json_object(root: Path, name: Any) -> JsonObject:
    if not isinstance(name, str) or not name:
        raise MetadataError(f"{METADATA_FILE}: {name!r} is not a file name")  # every other name comes from it
    try:
        content = (root / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise MetadataError(f"{name}: not found in {root}") from None
    try:
        document = json.loads(content)
    except ValueError as error:  # JSONDecodeError or UnicodeDecodeError
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


def _read_metadata(root: Path) -> JsonObject:
    metadata = _read_json_object(root, METADATA_FILE)
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
    """Directory listings of the case, read once each: name -> stat of regular files."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, dict[str, os.stat_result]] = {}

    def __call__(self, directory: str) -> dict[str, os.stat_result]:
        directory = directory.strip("/")
        if directory not in self._cache:
            try:
                with os.scandir(self.root / directory) as entries:
                    listing = {e.name: e.stat() for e in entries if e.is_file()}
            except (FileNotFoundError, NotADirectoryError):
                listing = {}
            self._cache[directory] = listing
        return self._cache[directory]


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


def _batch(
    entry: JsonObject, kind: str, where: str, listings: _Listings, default_extension: str, allow_links_out: bool
) -> BatchSpec:
    _require_keys(entry, ("directory",), where)
    if not isinstance(entry["directory"], str):
        raise MetadataError(f"{where}: 'directory' must be a string")
    directory = _inside(listings.root, entry["directory"], f"{where}: 'directory'", allow_links_out)
    listing = listings(directory)
    if kind == "regular":
        _require_keys(entry, ("files",), where)
        names = _require_list_of(entry["files"], str, where, "files")
        names = [_inside(listings.root, _join(directory, name), f"{where}: 'files'", allow_links_out) for name in names]
        files = [_regular_file("", name, listings) for name in names]
    else:
        _require_keys(entry, ("chunks",), where)
        chunks = _require_list_of(entry["chunks"], int, where, "chunks")
        files = [_chunk_file(directory, chunk, False, listing, default_extension) for chunk in chunks]
        if kind == "director":
            # qserv-ingest: an absent or empty `overlaps` means every listed chunk has an overlap file
            overlaps = _require_list_of(entry["overlaps"], int, where, "overlaps") if entry.get("overlaps") else chunks
            files += [_chunk_file(directory, chunk, True, listing, default_extension) for chunk in overlaps]
    return BatchSpec(directory, *_step_and_task(directory), files)


def _refuse_duplicates(root: Path, tables: list[TableSpec]) -> None:
    """A file listed twice (or through two spellings of its path, or two links to it) would load twice."""
    paths = Counter(
        (root / file.path).resolve().as_posix() for table in tables for batch in table.batches for file in batch.files
    )
    twice = sorted(path for path, count in paths.items() if count > 1)
    if twice:
        raise MetadataError(f"{METADATA_FILE}: listed more than once: {Path(twice[0]).relative_to(root.resolve())}")


def _refuse_unlisted_chunk_files(tables: list[TableSpec], listings: _Listings) -> None:
    """A `chunk_<id>[_overlap].<ext>` file next to listed ones but not listed would silently not be loaded."""
    listed = {file.path for table in tables for batch in table.batches for file in batch.files}
    directories = {batch.directory.strip("/") for table in tables for batch in table.batches}
    with_overlaps = {b.directory.strip("/") for t in tables if t.kind == "director" for b in t.batches}
    for directory in sorted(directories):
        for name in sorted(listings(directory)):
            match = CHUNK_FILE.match(name)
            ignored = match is None or (match[2] is not None and directory not in with_overlaps)
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


def _table_spec(
    root: Path,
    table: _ListedTable,
    listings: _Listings,
    default_extension: str,
    dialects: dict[str, Dialect],
    allow_links_out: bool,
) -> TableSpec:
    index_files = _require_list_of(table.entry.get("indexes", []), str, table.where, "indexes")
    data = _require_list_of(table.entry["data"], dict, table.where, "data")
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
        batches=[
            _batch(item, table.kind, f"{table.where}.data[{n}]", listings, default_extension, allow_links_out)
            for n, item in enumerate(data)
        ],
        dialects=table_dialects(document, table.schema_file, dialects),
    )


def read_case(root: Path, *, allow_links_out: bool = False) -> CaseMetadata:
    """Parse and check the case at `root`; raise `MetadataError` naming the file at fault.

    Every data file is kept under `root` (a symlink leading out of it only with `allow_links_out`)."""
    root = Path(root).resolve()
    metadata = _read_metadata(root)
    database = _read_database(root, metadata["database"])
    formats = metadata.get("formats", {})
    dialects = parse_formats(formats)
    listed = _read_listed_tables(root, metadata["tables"])
    _check_directors(listed)
    listings = _Listings(root)
    default_extension = next(iter(formats), "txt")
    tables = [
        _table_spec(root, table, listings, default_extension, dialects, allow_links_out) for table in listed.values()
    ]
    _refuse_duplicates(root, tables)
    _refuse_unlisted_chunk_files(tables, listings)
    return CaseMetadata(
        root=root,
        database=database["database"],
        num_stripes=int(database["num_stripes"]),
        num_sub_stripes=int(database["num_sub_stripes"]),
        overlap=float(database["overlap"]),
        charset=metadata.get("charset_name") or "latin1",
        dialects=dialects,
        tables=tables,
    )

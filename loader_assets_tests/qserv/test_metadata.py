"""Parsing of a hand-made qserv-ingest case, and every refusal with its exact message."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loader_assets.problems import BadInput
from loader_assets.qserv.metadata import CaseMetadata, Dialect, MetadataError, TableSpec, mysql_unescape, read_case
from loader_assets_tests.handmade import DATA_FILES, INDEX_JSON, OBJECT_JSON, HandMadeCase


@pytest.fixture
def case(tmp_path: Path) -> HandMadeCase:
    return HandMadeCase(tmp_path / "case")


def files_of_table(table: TableSpec) -> list[tuple[str, int | None, bool, str]]:
    return [(f.path, f.chunk, f.overlap, f.format) for b in table.batches for f in b.files]


def files_of(case_metadata: CaseMetadata, table: str) -> list[tuple[str, int | None, bool, str]]:
    return files_of_table(case_metadata.table(table))


def test_parses_a_qserv_ingest_case(case: HandMadeCase) -> None:
    parsed = read_case(case.root)
    assert (parsed.root, parsed.database, parsed.charset) == (case.root.resolve(), "qcase", "latin1")
    assert (parsed.num_stripes, parsed.num_sub_stripes, parsed.overlap) == (85, 12, 0.01667)
    assert parsed.dialects == {
        "txt": Dialect(fields_terminated_by=","),
        "csv": Dialect(fields_terminated_by=",", fields_enclosed_by='"'),
        "tsv": Dialect(fields_terminated_by="\t", fields_enclosed_by="", fields_escaped_by="\\"),
    }
    assert [(t.name, t.kind, t.level, t.is_partitioned) for t in parsed.tables] == [
        ("Object", "director", 1, True),
        ("Source", "child", 3, True),
        ("Filter", "regular", 1, False),
    ]
    obj, source, filters = parsed.tables
    assert (obj.director_table, obj.director_key, obj.latitude_key, obj.longitude_key) == (
        None,
        "objectId",
        "decl",
        "ra",
    )
    assert (source.director_table, source.director_key, source.latitude_key) == ("Object", "objectId", None)
    assert obj.columns == OBJECT_JSON["schema"] and obj.indexes == [INDEX_JSON] and source.indexes == []
    assert [(b.directory, b.step, b.task) for b in obj.batches] == [
        ("step1_1/Object", 1, 1),
        ("step1_2/Object", 1, 2),
        ("partition/case01/Object", None, None),
    ]
    assert [(b.directory, b.step, b.task) for b in filters.batches] == [("", None, None)]


def test_lists_chunk_overlap_and_regular_files(case: HandMadeCase) -> None:
    parsed = read_case(case.root)
    assert files_of(parsed, "Object") == [
        ("step1_1/Object/chunk_6630.txt", 6630, False, "txt"),
        ("step1_1/Object/chunk_6631.txt", 6631, False, "txt"),
        ("step1_1/Object/chunk_6631_overlap.txt", 6631, True, "txt"),  # `overlaps` present: exactly those
        ("step1_2/Object/chunk_6800.csv", 6800, False, "csv"),
        ("step1_2/Object/chunk_6800_overlap.csv", 6800, True, "csv"),  # `overlaps` absent: every chunk
        ("partition/case01/Object/chunk_7140.parquet", 7140, False, "parquet"),
        ("partition/case01/Object/chunk_7140_overlap.parquet", 7140, True, "parquet"),
    ]
    assert files_of(parsed, "Source") == [
        ("step3_1/Source/chunk_6630.txt", 6630, False, "txt"),
        ("step3_1/Source/chunk_6631.txt", 6631, False, "txt"),
    ]
    assert files_of(parsed, "Filter") == [("Filter.tsv", None, False, "tsv")]
    source_file = parsed.table("Source").batches[0].files[1]
    stat = (case.root / source_file.path).stat()
    assert (source_file.size, source_file.mtime) == (len(DATA_FILES[source_file.path]), stat.st_mtime)


def test_an_empty_overlaps_list_means_every_chunk_as_in_qserv_ingest(case: HandMadeCase) -> None:
    case.metadata["tables"][0]["data"][0]["overlaps"] = []
    case.save_metadata()
    with pytest.raises(
        MetadataError, match=re.escape("listed in metadata.json but absent: step1_1/Object/chunk_6630_overlap.txt")
    ):
        read_case(case.root)
    case.write("step1_1/Object/chunk_6630_overlap.txt", "")
    assert ("step1_1/Object/chunk_6630_overlap.txt", 6630, True, "txt") in files_of(read_case(case.root), "Object")


def test_a_partitioned_table_without_director_table_is_a_director(case: HandMadeCase) -> None:
    case.edit_json("Object.json", lambda doc: doc.pop("director_table"))
    assert read_case(case.root).table("Object").kind == "director"


def test_regular_files_may_sit_in_sub_directories(case: HandMadeCase) -> None:
    case.write("step1_3/Filter/more/Filter2.csv", "2,r\n")
    case.metadata["tables"][2]["data"].append({"directory": "step1_3/Filter", "files": ["more/Filter2.csv"]})
    case.save_metadata()
    filters = read_case(case.root).table("Filter")
    assert files_of_table(filters) == [
        ("Filter.tsv", None, False, "tsv"),
        ("step1_3/Filter/more/Filter2.csv", None, False, "csv"),
    ]
    assert [(b.directory, b.step, b.task) for b in filters.batches][1] == ("step1_3/Filter", 1, 3)


def test_formats_override_qserv_defaults(case: HandMadeCase) -> None:
    case.metadata["formats"] = {"csv": {"fields_enclosed_by": '"', "lines_terminated_by": "\r\n"}}
    case.save_metadata()
    dialects = read_case(case.root).dialects
    assert dialects["csv"] == Dialect(",", '"', "\\", "\r\n")
    assert dialects["txt"] == Dialect("\t", "", "\\", "\n"), "Qserv's default: tab separated"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\t", "\t"),
        (",", ","),
        ("\t", "\t"),  # a JSON "\t" is already a tab
        ("\\0\\'\\\"\\b\\n\\r\\t\\Z\\\\", "\0'\"\b\n\r\t\x1a\\"),
        ("\\%\\_", "\\%\\_"),  # kept with their backslash, as MySQL does
        ("\\x|\\,", "x|,"),  # any other escaped character stands for itself
        ("\\\\t", "\\t"),
        ("a\\", "a\\"),  # a lone trailing backslash can only mean itself
    ],
)
def test_mysql_unescape_reads_dialect_values_as_mysql_string_literals(text: str, expected: str) -> None:
    assert mysql_unescape(text) == expected


def test_formats_are_mysql_string_literals_as_in_qserv_ingest(case: HandMadeCase) -> None:
    case.metadata["formats"] = {
        "txt": {"fields_terminated_by": "\\t", "fields_escaped_by": "\\\\", "lines_terminated_by": "\\r\\n"},
        "csv": {"fields_enclosed_by": "\\0"},  # Qserv's spelling of "no enclosing character"
    }
    case.save_metadata()
    dialects = read_case(case.root).dialects
    assert dialects["txt"] == Dialect("\t", "", "\\", "\r\n")
    assert dialects["csv"] == Dialect(",", "", "\\", "\n")


def test_a_table_json_dialect_applies_on_top_of_the_case_formats(case: HandMadeCase) -> None:
    case.edit_json("Source.json", lambda doc: doc.update(fields_terminated_by="|", fields_enclosed_by="\\'"))
    case.edit_json("Filter.json", lambda doc: doc.update(fields_terminated_by="\\t"))  # case03 spells "," plainly
    parsed = read_case(case.root)
    assert parsed.dialects["txt"] == Dialect(fields_terminated_by=","), "the case level is unchanged"
    assert parsed.table("Object").dialects == parsed.dialects
    assert parsed.table("Source").dialects == {
        "txt": Dialect("|", "'"),
        "csv": Dialect("|", "'"),
        "tsv": Dialect("|", "'"),
    }
    assert {fmt: d.fields_terminated_by for fmt, d in parsed.table("Filter").dialects.items()} == {
        "txt": "\t",
        "csv": "\t",
        "tsv": "\t",
    }
    assert parsed.table("Filter").dialects["csv"].fields_enclosed_by == '"', "other options stay the format's"


def test_later_metadata_versions_are_read(case: HandMadeCase) -> None:
    case.metadata["version"] = 13
    case.save_metadata()
    assert [t.name for t in read_case(case.root).tables] == ["Object", "Source", "Filter"]


def test_overlaps_may_name_chunks_absent_from_chunks_as_in_cosmodc2(case: HandMadeCase) -> None:
    case.metadata["tables"][0]["data"][0]["overlaps"] = [6631, 6632]  # 6632 holds no row of its own
    case.save_metadata()
    with pytest.raises(
        MetadataError, match=re.escape("listed in metadata.json but absent: step1_1/Object/chunk_6632_overlap.txt")
    ):
        read_case(case.root)
    case.write("step1_1/Object/chunk_6632_overlap.txt", "8,12.1,-5.0,6632,1\n")
    files = files_of(read_case(case.root), "Object")
    assert files[:4] == [
        ("step1_1/Object/chunk_6630.txt", 6630, False, "txt"),
        ("step1_1/Object/chunk_6631.txt", 6631, False, "txt"),
        ("step1_1/Object/chunk_6631_overlap.txt", 6631, True, "txt"),
        ("step1_1/Object/chunk_6632_overlap.txt", 6632, True, "txt"),
    ]


def set_in(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def drop_in(document: dict[str, Any], path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        document = document[key]
    del document[path[-1]]


def metadata_set(*path: Any, value: Any) -> Callable[[HandMadeCase], None]:
    return lambda case: case.edit_json("metadata.json", lambda doc: set_in(doc, path, value))


def metadata_drop(*path: Any) -> Callable[[HandMadeCase], None]:
    return lambda case: case.edit_json("metadata.json", lambda doc: drop_in(doc, path))


def json_set(name: str, key: str, value: Any) -> Callable[[HandMadeCase], None]:
    return lambda case: case.edit_json(name, lambda doc: doc.__setitem__(key, value))


def json_drop(name: str, key: str) -> Callable[[HandMadeCase], None]:
    return lambda case: case.edit_json(name, lambda doc: doc.pop(key))


def without_column(name: str, column: str) -> Callable[[HandMadeCase], None]:
    def edit(doc: dict[str, Any]) -> None:
        doc["schema"] = [c for c in doc["schema"] if c["name"] != column]

    return lambda case: case.edit_json(name, edit)


def remove(path: str) -> Callable[[HandMadeCase], None]:
    return lambda case: case.remove(path)


def write(path: str, text: str) -> Callable[[HandMadeCase], None]:
    return lambda case: case.write(path, text)


NOT_JSON = "not valid JSON (Expecting value: line 1 column 1 (char 0))"
REFUSALS: dict[str, tuple[Callable[[HandMadeCase], None], str]] = {
    "metadata not json": (write("metadata.json", "nope"), f"metadata.json: {NOT_JSON}"),
    "metadata not object": (write("metadata.json", "[]"), "metadata.json: not a JSON object"),
    "version 11": (
        metadata_set("version", value=11),
        "metadata.json: 'version' 11 is not supported, expected an integer >= 12",
    ),
    "version not an integer": (
        metadata_set("version", value="12"),
        "metadata.json: 'version' '12' is not supported, expected an integer >= 12",
    ),
    "no version": (metadata_drop("version"), "metadata.json: 'version' is missing, expected an integer >= 12"),
    "no tables": (metadata_drop("tables"), "metadata.json: missing keys tables"),
    "table entry without data": (metadata_drop("tables", 1, "data"), "metadata.json tables[1]: missing keys data"),
    "data without chunks": (
        metadata_drop("tables", 0, "data", 0, "chunks"),
        "metadata.json tables[0].data[0]: missing keys chunks",
    ),
    "chunks not ints": (
        metadata_set("tables", 0, "data", 0, "chunks", value=["6630"]),
        "metadata.json tables[0].data[0]: 'chunks' must be a list of int",
    ),
    "chunk id beyond 64 bits": (  # chunk ids are parsed into int64 arrays
        metadata_set("tables", 0, "data", 0, "chunks", value=[6630, 2**70]),
        "metadata.json tables[0].data[0]: 'chunks' must be a list of int",
    ),
    "overlaps a number": (
        metadata_set("tables", 0, "data", 0, "overlaps", value=5),
        "metadata.json tables[0].data[0]: 'overlaps' must be a list of int",
    ),
    "overlaps with a bool": (
        metadata_set("tables", 0, "data", 0, "overlaps", value=[6630, True]),
        "metadata.json tables[0].data[0]: 'overlaps' must be a list of int",
    ),
    "directory not a string": (
        metadata_set("tables", 1, "data", 0, "directory", value=None),
        "metadata.json tables[1].data[0]: 'directory' must be a string",
    ),
    "data without files": (
        metadata_drop("tables", 2, "data", 0, "files"),
        "metadata.json tables[2].data[0]: missing keys files",
    ),
    "unknown format": (
        metadata_set("formats", "dat", value={}),
        "metadata.json formats.dat: unsupported format, expected one of txt, csv, tsv",
    ),
    "unknown dialect key": (
        metadata_set("formats", "txt", "fields_terminated", value=","),
        "metadata.json formats.txt: unknown keys fields_terminated",
    ),
    "empty field terminator": (
        metadata_set("formats", "txt", "fields_terminated_by", value=""),
        "metadata.json formats.txt: 'fields_terminated_by' must not be empty",
    ),
    "dialect value not a string": (
        metadata_set("formats", "txt", "fields_enclosed_by", value=None),
        "metadata.json formats.txt: 'fields_enclosed_by' must be a string",
    ),
    "table json empty line terminator": (
        json_set("Source.json", "lines_terminated_by", ""),
        "Source.json: 'lines_terminated_by' must not be empty",
    ),
    "table json empty field terminator": (
        json_set("Filter.json", "fields_terminated_by", ""),
        "Filter.json: 'fields_terminated_by' must not be empty",
    ),
    "table json dialect value not a string": (
        json_set("Filter.json", "fields_terminated_by", 44),
        "Filter.json: 'fields_terminated_by' must be a string",
    ),
    "table twice": (
        metadata_set("tables", 1, "schema", value="Object.json"),
        "metadata.json tables[1]: table 'Object' is listed more than once",
    ),
    "file twice": (
        metadata_set(
            "tables", 0, "data", 1, value={"directory": "step1_1/Object/", "chunks": [6631], "overlaps": [6631]}
        ),
        "metadata.json: listed more than once: step1_1/Object/chunk_6631.txt",
    ),
    "database json missing": (remove("database.json"), "database.json: not found in {root}"),
    "database json invalid": (write("database.json", "nope"), f"database.json: {NOT_JSON}"),
    "database json incomplete": (
        json_drop("database.json", "num_stripes"),
        "database.json: missing keys num_stripes",
    ),
    "invalid partitioning": (
        json_set("database.json", "overlap", 1.0),
        "database.json: invalid partitioning (overlap 1.0 deg is greater than the sub-stripe height)",
    ),
    "schema not a file name": (
        metadata_set("tables", 1, "schema", value=None),
        "metadata.json: None is not a file name",
    ),
    "table json missing": (remove("Source.json"), "Source.json: not found in {root}"),
    "table json invalid": (write("Source.json", "nope"), f"Source.json: {NOT_JSON}"),
    "table json incomplete": (json_drop("Source.json", "is_partitioned"), "Source.json: missing keys is_partitioned"),
    "partitioned without director_key": (
        json_drop("Source.json", "director_key"),
        "Source.json: missing keys director_key",
    ),
    "empty schema": (
        json_set("Filter.json", "schema", []),
        "Filter.json: 'schema' must be a non-empty list of {name, type} objects",
    ),
    "invalid schema": (
        json_set("Filter.json", "schema", [{"name": "filterId"}]),
        "Filter.json: 'schema' must be a non-empty list of {name, type} objects",
    ),
    "unknown director": (
        json_set("Source.json", "director_table", "Objects"),
        "Source.json: director_table 'Objects' is not a director table of the case",
    ),
    "director is a child": (
        json_set("Source.json", "director_table", "Source"),
        "Source.json: director_table 'Source' is not a director table of the case",
    ),
    "no subChunkId": (
        without_column("Source.json", "subChunkId"),
        "Source.json: partitioned table lacks columns subChunkId",
    ),
    "no director key column": (
        without_column("Object.json", "objectId"),
        "Object.json: director_key 'objectId' is not a column",
    ),
    "index json missing": (remove("idx_object.json"), "idx_object.json: not found in {root}"),
    "index json invalid": (write("idx_object.json", "nope"), f"idx_object.json: {NOT_JSON}"),
    "index json incomplete": (json_drop("idx_object.json", "columns"), "idx_object.json: missing keys columns"),
    "chunk absent": (
        remove("step3_1/Source/chunk_6631.txt"),
        "listed in metadata.json but absent: step3_1/Source/chunk_6631.txt",
    ),
    "listed overlap absent": (
        remove("step1_1/Object/chunk_6631_overlap.txt"),
        "listed in metadata.json but absent: step1_1/Object/chunk_6631_overlap.txt",
    ),
    "default overlap absent": (
        remove("step1_2/Object/chunk_6800_overlap.csv"),
        "listed in metadata.json but absent: step1_2/Object/chunk_6800_overlap.csv",
    ),
    "regular file absent": (remove("Filter.tsv"), "listed in metadata.json but absent: Filter.tsv"),
    "regular file format": (
        metadata_set("tables", 2, "data", 0, "files", value=["Filter.dat"]),
        "metadata.json: unsupported file format, expected one of ('txt', 'csv', 'tsv', 'parquet'): Filter.dat",
    ),
    "chunk not listed": (
        write("step1_1/Object/chunk_9999.txt", ""),
        "present but not listed in metadata.json: step1_1/Object/chunk_9999.txt",
    ),
    "director overlap not listed": (
        write("step1_1/Object/chunk_6630_overlap.txt", ""),
        "present but not listed in metadata.json: step1_1/Object/chunk_6630_overlap.txt",
    ),
    "chunk in another format not listed": (
        write("step3_1/Source/chunk_6630.parquet", ""),
        "present but not listed in metadata.json: step3_1/Source/chunk_6630.parquet",
    ),
}


@pytest.mark.parametrize("spoil, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_refuses_with_a_message_naming_the_file(
    case: HandMadeCase, spoil: Callable[[HandMadeCase], None], message: str
) -> None:
    spoil(case)
    with pytest.raises(MetadataError, match=re.escape(message.replace("{root}", str(case.root.resolve())))):
        read_case(case.root)


def test_refuses_a_directory_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match=re.escape(f"metadata.json: not found in {tmp_path.resolve()}")):
        read_case(tmp_path)


def test_metadata_error_is_bad_input_with_its_exit_code() -> None:
    assert issubclass(MetadataError, BadInput) and MetadataError("x").exit_code == 2

"""The cases built from Qserv's integration inputs parse, hold Qserv's expected row counts, and are partitioned as
Qserv's partitioner does (case01's 13 chunks and 10 overlaps come out of the project's own geometry)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.metadata import CaseMetadata, Dialect, FileSpec, TableSpec, read_case
from loader_assets.workers import fingerprint
from loader_assets.workers.fingerprint import key_column
from loader_assets.workers.formats import count_records
from loader_assets_tests.qserv_itest.builders import (
    ENV,
    build_case01_steps,
    build_schema_case,
    expected_counts,
    itest_root,
    split_fields,
    split_records,
)

ORPHAN_OBJECT_ID = 390030275138483  # 36 Source rows reference it; Object has no such row
ROWS_PER_CHUNK = 20


def case01_metadata(itest: Path) -> dict:
    return json.loads((itest / "case01" / "metadata.json").read_text())


def listed_chunks(itest: Path) -> tuple[list[int], list[int]]:
    """(chunks, overlaps) of case01's Object, as its metadata.json lists them."""
    data = case01_metadata(itest)["tables"][0]["data"][0]
    return data["chunks"], data["overlaps"]


def files(table: TableSpec, *, overlap: bool = False) -> list[FileSpec]:
    return [f for batch in table.batches for f in batch.files if f.overlap == overlap]


def records(case: CaseMetadata, table: TableSpec, file: FileSpec) -> list[list[bytes]]:
    dialect = table.dialects[file.format]
    return [split_fields(r, dialect) for r in split_records((case.root / file.path).read_bytes(), dialect)]


def column(table: TableSpec, rows: list[list[bytes]], name: str) -> list[bytes]:
    index = [c["name"] for c in table.columns].index(name)
    return [row[index] for row in rows]


def named(case: CaseMetadata, table: TableSpec, file: FileSpec) -> list[dict[str, bytes]]:
    names = [c["name"] for c in table.columns]
    return [dict(zip(names, fields, strict=True)) for fields in records(case, table, file)]


def positions(table: TableSpec, rows: list[list[bytes]], lon: str, lat: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array(column(table, rows, lon), dtype=np.float64), np.array(column(table, rows, lat), dtype=np.float64)


def chunker_of(case: CaseMetadata) -> Chunker:
    return Chunker(case.num_stripes, case.num_sub_stripes, case.overlap)


# --- the environment ------------------------------------------------------------------------------------------


def test_skips_without_the_variable_and_fails_on_a_missing_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"{ENV} is not set"):
        itest_root()
    monkeypatch.setenv(ENV, str(tmp_path / "absent"))
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(tmp_path / "absent"))):
        itest_root()


def test_expected_counts_are_qserv_answers(qserv_itest: Path) -> None:
    assert expected_counts(qserv_itest) == {
        "LeapSeconds": 38,
        "Logs": 1000,
        "Object": 88,
        "RefSrcMatch": 3344,
        "SimRefObject": 3314,
        "Source": 3339,
        "sdqa_Metric": 53,
    }


# --- case01: real rows ----------------------------------------------------------------------------------------


@pytest.fixture(params=["case01_shipped", "case01_steps"])
def case01(request: pytest.FixtureRequest) -> CaseMetadata:
    return read_case(request.getfixturevalue(request.param))


def test_case01_holds_the_counts_qserv_expects(case01: CaseMetadata, qserv_itest: Path) -> None:
    totals = {
        table.name: sum(count_records(case01.root / f.path, table.dialects[f.format]) for f in files(table))
        for table in case01.tables
    }
    expected = expected_counts(qserv_itest)
    assert (totals["Object"], totals["Source"]) == (88, 3339)
    assert {name: totals[name] for name in expected} == expected
    assert totals["Filter"] == 9, "no count file: its raw rows"


def test_case01_chunks_and_overlaps_are_those_of_its_metadata(case01: CaseMetadata, qserv_itest: Path) -> None:
    chunks, overlaps = listed_chunks(qserv_itest)
    assert len(chunks) == 13 and len(overlaps) == 10
    for name in ("Object", "Source"):
        assert [f.chunk for f in files(case01.table(name))] == chunks
    assert [f.chunk for f in files(case01.table("Object"), overlap=True)] == overlaps
    assert files(case01.table("Source"), overlap=True) == []


def test_case01_overlaps_come_out_as_qserv_partitioner_listed_them(case01: CaseMetadata, qserv_itest: Path) -> None:
    """Rows fall in the overlap of exactly the 10 chunks metadata.json lists: the other 3 had no overlap file."""
    obj = case01.table("Object")
    non_empty = [f.chunk for f in files(obj, overlap=True) if f.size > 0]
    assert non_empty == listed_chunks(qserv_itest)[1]
    for file in files(obj, overlap=True):
        assert set(column(obj, records(case01, obj, file), "chunkId")) <= {str(file.chunk).encode()}


def test_case01_rows_are_copied_byte_for_byte(case01: CaseMetadata, qserv_itest: Path) -> None:
    for name in ("Object", "Source"):
        table = case01.table(name)
        original = split_records((qserv_itest / "case01" / f"{name}.tsv").read_bytes(), Dialect())
        copied = [
            b"\t".join(fields[:-2]) for file in files(table) for fields in records(case01, table, file)
        ]  # chunkId and subChunkId appended by the partitioning
        assert Counter(copied) == Counter(original)
        assert any(b"\\\t" in record for record in original) and any(b"\\0" in record for record in original)


def test_case01_key_columns_are_read_in_c_as_arrow_reads_them(case01: CaseMetadata) -> None:
    """Their binary columns hold escaped tabs and literal backslashes (`\\\\`): every chunk file still takes the C
    path, and it reads what Arrow reads."""
    for name in ("Object", "Source"):
        table = case01.table(name)
        names = [c["name"] for c in table.columns]
        for file in files(table) + files(table, overlap=True):
            path, dialect = case01.root / file.path, table.dialects[file.format]
            scanned = fingerprint._scan_key(path, names.index("objectId"), len(names), dialect)
            arrow = fingerprint._read_key(path, names, "objectId", dialect, pa.int64())
            assert scanned is not None, path
            assert (scanned[0].to_pylist(), scanned[1]) == (arrow.column("objectId").to_pylist(), arrow.num_rows)


def test_case01_chunk_ids_agree_with_the_chunker(case01: CaseMetadata) -> None:
    chunker = chunker_of(case01)
    for name, lat, lon in (("Object", "decl_PS", "ra_PS"), ("Source", "declObject", "raObject")):
        table = case01.table(name)
        for file in files(table):
            rows = records(case01, table, file)
            chunks, sub_chunks = chunker.locate(*positions(table, rows, lon, lat))
            assert (chunks == file.chunk).all()
            assert [int(v) for v in column(table, rows, "subChunkId")] == sub_chunks.tolist()


def test_36_source_rows_reference_an_object_absent_from_object(case01: CaseMetadata) -> None:
    def keys(name: str) -> np.ndarray:
        """objectId as the project reads key columns back (pyarrow on the latin1, escaped rows)."""
        table = case01.table(name)
        names = [c["name"] for c in table.columns]
        return np.concatenate(
            [
                key_column(case01.root / f.path, f.format, names, "objectId", table.dialects[f.format])[0]
                .drop_null()
                .to_numpy()
                for f in files(table)
            ]
        )

    objects, sources = keys("Object"), keys("Source")
    assert len(objects) == 88 and len(np.unique(objects)) == 88 and len(sources) == 3339
    assert int((sources == ORPHAN_OBJECT_ID).sum()) == 36
    assert ORPHAN_OBJECT_ID not in objects
    assert set(np.unique(sources)) - set(objects) == {ORPHAN_OBJECT_ID}


def test_case01_layouts(case01_shipped: Path, case01_steps: Path) -> None:
    shipped, steps = read_case(case01_shipped), read_case(case01_steps)
    assert [b.directory for t in shipped.tables for b in t.batches][:3] == [
        "partition/case01/Object",
        "partition/case01/Source",
        "",
    ]
    assert [(t.name, b.directory, b.step, b.task) for t in steps.tables for b in t.batches][:3] == [
        ("Object", "step1_1/Object", 1, 1),
        ("Source", "step3_1/Source", 3, 1),
        ("Filter", "step1_2/Filter", 1, 2),
    ]
    assert '"fields_terminated_by": "\\\\t"' in (case01_steps / "metadata.json").read_text()
    assert steps.dialects["txt"] == shipped.dialects["txt"] == Dialect()
    assert steps.table("Object").dialects["txt"].fields_terminated_by == "\t"


def test_case01_refuses_chunks_other_than_listed(qserv_itest: Path, tmp_path: Path) -> None:
    itest = tmp_path / "itest"
    shutil.copytree(qserv_itest / "case01", itest / "case01")
    metadata = case01_metadata(qserv_itest)
    metadata["tables"][0]["data"][0]["chunks"].remove(7648)
    (itest / "case01" / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(AssertionError, match=r"case01 Object: the Chunker puts its rows in chunks \[6630, .*7648\]"):
        build_case01_steps(itest, tmp_path / "out")


# --- schema-only cases: generated rows ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["DC2", "case03"])
def schema_case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CaseMetadata:
    itest = request.getfixturevalue("qserv_itest")
    out = tmp_path_factory.mktemp(request.param)
    return read_case(build_schema_case(itest, request.param, out, rows_per_chunk=ROWS_PER_CHUNK))


def test_schema_cases_parse_with_the_chunks_they_list(schema_case: CaseMetadata) -> None:
    expected = {"dc2_run2_1i_dr1b": [57866, 57867, 57868], "qcase03": [6995, 7165]}[schema_case.database]
    for table in schema_case.tables:
        if table.is_partitioned:
            assert [f.chunk for f in files(table)] == expected, table.name
            overlaps = [f.chunk for f in files(table, overlap=True)]
            assert overlaps == (expected if table.kind == "director" else []), table.name
        for file in files(table):
            assert count_records(schema_case.root / file.path, table.dialects[file.format]) == ROWS_PER_CHUNK
            assert {len(fields) for fields in records(schema_case, table, file)} == {len(table.columns)}


def test_schema_case_rows_sit_in_their_chunk_and_reference_its_directors(schema_case: CaseMetadata) -> None:
    chunker = chunker_of(schema_case)
    director_keys: dict[tuple[str, int], set[bytes]] = {}
    tables = sorted((t for t in schema_case.tables if t.is_partitioned), key=lambda t: t.kind != "director")
    for table in tables:
        for file in files(table) + files(table, overlap=True):
            rows = records(schema_case, table, file)
            assert set(column(table, rows, "chunkId")) == ({str(file.chunk).encode()} if rows else set())
            if table.kind == "director" and not file.overlap:
                assert table.longitude_key and table.latitude_key
                chunks, sub_chunks = chunker.locate(*positions(table, rows, table.longitude_key, table.latitude_key))
                assert (chunks == file.chunk).all()
                assert [int(v) for v in column(table, rows, "subChunkId")] == sub_chunks.tolist()
                keys = column(table, rows, table.director_key)
                assert len(set(keys)) == len(keys)
                director_keys[table.name, file.chunk] = set(keys)
            elif table.kind == "child":
                assert set(column(table, rows, table.director_key)) <= director_keys[table.director_table, file.chunk]
    all_keys = [k for (name, _), keys in director_keys.items() if name == tables[0].name for k in keys]
    assert len(all_keys) == len(set(all_keys)), "director keys are unique across chunks"


def test_case03_match_table_references_both_directors(qserv_itest: Path, tmp_path: Path) -> None:
    case = read_case(build_schema_case(qserv_itest, "case03", tmp_path / "case03"))
    match, ref, source = (case.table(n) for n in ("RefDeepSrcMatch", "RefObject", "RunDeepSource"))
    assert (match.kind, match.director_table, match.director_key) == ("child", "RefObject", "refObjectId")
    for file, ref_file, source_file in zip(files(match), files(ref), files(source), strict=True):
        refs = {row["refObjectId"]: row for row in named(case, ref, ref_file)}
        sources = {row["id"]: row for row in named(case, source, source_file)}
        for row in named(case, match, file):
            ref_row, source_row = refs[row["refObjectId"]], sources[row["deepSourceId"]]
            assert (row["ra"], row["decl"]) == (ref_row["ra"], ref_row["decl"])
            assert (row["coord_ra"], row["coord_decl"]) == (source_row["coord_ra"], source_row["coord_decl"])
            assert (row["chunkId"], row["subChunkId"]) == (ref_row["chunkId"], ref_row["subChunkId"])
            assert row["flags"] == b"3", "both sides in the chunk"


def test_schema_cases_are_written_with_each_table_dialect(qserv_itest: Path, tmp_path: Path) -> None:
    case03 = read_case(build_schema_case(qserv_itest, "case03", tmp_path / "case03"))
    assert len(case03.tables) == 17
    for table in case03.tables:
        assert {d.fields_terminated_by for d in table.dialects.values()} == {","}, table.name
    assert case03.dialects["tsv"].fields_terminated_by == "\t", "the case level keeps Qserv's default"
    written = b"".join((case03.root / f.path).read_bytes() for t in case03.tables for f in files(t))
    for escaped in (b"\\\n", b"\\,", b'\\"', b"\\\\", b"\\0", b"\\N", "é".encode("latin1")):
        assert escaped in written, escaped
    dc2 = read_case(build_schema_case(qserv_itest, "DC2", tmp_path / "DC2"))
    assert dc2.table("position").dialects["txt"] == Dialect(fields_terminated_by=",")


def test_schema_cases_are_deterministic(qserv_itest: Path, tmp_path: Path) -> None:
    def contents(out: Path, seed: int) -> dict[str, bytes]:
        build_schema_case(qserv_itest, "DC2", out, rows_per_chunk=5, chunks=2, seed=seed)
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}

    first = contents(tmp_path / "a", 0)
    assert first == contents(tmp_path / "b", 0)
    assert first != contents(tmp_path / "c", 1)
    assert json.loads(first["metadata.json"])["tables"][0]["data"] == [
        {"directory": "step1_1/position", "chunks": [57866, 57867]}
    ]

"""The sample case generator: a layout `read_case` accepts, with rows placed as Qserv would place them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from loader_assets.problems import BadInput
from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.metadata import CaseMetadata, FileSpec, read_case
from loader_assets.qserv.sample import write_sample_case


def read_rows(case: CaseMetadata, file: FileSpec, table: str) -> pa.Table:
    path = case.root / file.path
    if file.format == "parquet":
        return pq.read_table(path)
    names = [column["name"] for column in case.table(table).columns]
    return pa_csv.read_csv(
        path,
        read_options=pa_csv.ReadOptions(column_names=names),
        convert_options=pa_csv.ConvertOptions(null_values=["\\N"], strings_can_be_null=True),
    )


def rows_of(case: CaseMetadata, table: str, overlap: bool = False) -> pa.Table:
    files = [f for b in case.table(table).batches for f in b.files if f.overlap == overlap]
    return pa.concat_tables([read_rows(case, f, table) for f in files], promote_options="permissive")


@pytest.fixture(scope="module", params=["csv", "parquet"])
def sample(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> CaseMetadata:
    root = tmp_path_factory.mktemp(request.param) / "case"
    return read_case(write_sample_case(root, chunks=6, rows_per_chunk=200, fmt=request.param, database="dp_x"))


def test_layout_is_a_qserv_ingest_case(sample: CaseMetadata) -> None:
    assert (sample.database, sample.num_stripes, sample.num_sub_stripes, sample.overlap) == ("dp_x", 340, 3, 0.01667)
    assert sample.dialects["txt"].fields_terminated_by == ","
    assert [(t.name, t.kind, t.level) for t in sample.tables] == [
        ("Object", "director", 1),
        ("Source", "child", 3),
        ("ForcedSource", "child", 3),
        ("Filter", "regular", 1),
    ]
    directories = {t.name: [(b.directory, b.step, b.task) for b in t.batches] for t in sample.tables}
    assert directories["Object"] == [("step1_1/Object", 1, 1), ("step1_2/Object", 1, 2)]
    assert directories["ForcedSource"] == [("step3_1/ForcedSource", 3, 1), ("step3_2/ForcedSource", 3, 2)]
    assert directories["Filter"] == [("step1_3/Filter", 1, 3)]
    assert sample.table("Object").indexes[0]["columns"][0]["column"] == "objectId"
    assert sample.table("ForcedSource").latitude_key is None


def test_director_batches_cover_both_overlap_conventions(sample: CaseMetadata) -> None:
    first, second = sample.table("Object").batches
    chunks = [f.chunk for f in first.files if not f.overlap]
    assert [f.chunk for f in first.files if f.overlap] == chunks  # no `overlaps` key: every chunk
    chunks = [f.chunk for f in second.files if not f.overlap]
    assert [f.chunk for f in second.files if f.overlap] == chunks[1:]  # explicit `overlaps`
    assert all(f.size > 0 for t in sample.tables for b in t.batches for f in b.files)


def test_rows_carry_the_chunk_and_sub_chunk_of_their_position(sample: CaseMetadata) -> None:
    chunker = Chunker(sample.num_stripes, sample.num_sub_stripes, sample.overlap)
    for batch in sample.table("Object").batches:
        for file in (f for f in batch.files if not f.overlap):
            rows = read_rows(sample, file, "Object")
            chunks, sub_chunks = chunker.locate(rows["ra"].to_numpy(), rows["decl"].to_numpy())
            assert (chunks == file.chunk).all() and (rows["chunkId"].to_numpy() == file.chunk).all()
            assert np.array_equal(rows["subChunkId"].to_numpy(), sub_chunks)


def test_overlap_rows_are_other_objects_near_the_chunk(sample: CaseMetadata) -> None:
    chunker = Chunker(sample.num_stripes, sample.num_sub_stripes, sample.overlap)
    for file in (f for b in sample.table("Object").batches for f in b.files if f.overlap):
        rows = read_rows(sample, file, "Object")
        _, _, dec_min, dec_max = chunker.chunk_bounds(file.chunk)
        decl = rows["decl"].to_numpy()
        assert (rows["chunkId"].to_numpy() == file.chunk).all()
        assert ((decl >= dec_max) | (decl <= dec_min)).all()
        assert ((decl <= dec_max + sample.overlap) & (decl >= dec_min - sample.overlap)).all()
        assert np.isin(rows["subChunkId"].to_numpy(), chunker.sub_chunks(file.chunk)).all()
    own = rows_of(sample, "Object")["objectId"].to_numpy()
    overlap = rows_of(sample, "Object", overlap=True)["objectId"].to_numpy()
    assert len(np.unique(own)) == len(own) and len(np.unique(overlap)) == len(overlap)
    assert not np.isin(overlap, own).any()


def test_children_belong_to_objects_of_their_chunk(sample: CaseMetadata) -> None:
    objects = rows_of(sample, "Object")
    chunk_of = dict(zip(objects["objectId"].to_pylist(), objects["chunkId"].to_pylist(), strict=True))
    for child in ("Source", "ForcedSource"):
        rows = rows_of(sample, child)
        pairs = zip(rows["objectId"].to_pylist(), rows["chunkId"].to_pylist(), strict=True)
        assert all(chunk_of[object_id] == chunk for object_id, chunk in pairs)
    per_object = np.bincount(np.unique(rows_of(sample, "Source")["objectId"].to_numpy(), return_inverse=True)[1])
    assert per_object.min() >= 2 and per_object.max() <= 4 and len(per_object) == objects.num_rows
    source_ids = rows_of(sample, "Source")["sourceId"].to_numpy()
    assert len(np.unique(source_ids)) == len(source_ids)


def test_nullable_columns_hold_nulls_and_parquet_holds_nans(sample: CaseMetadata) -> None:
    objects = rows_of(sample, "Object")
    assert objects["parentObjectId"].null_count > 0 and objects["objectId"].null_count == 0
    assert rows_of(sample, "Source")["psfFluxErr"].null_count > 0
    filters = rows_of(sample, "Filter")
    assert filters.num_rows == 6 and filters["photBW"].null_count == 1
    nans = pc.sum(pc.is_nan(objects["rFlux"])).as_py()
    if sample.table("Object").batches[0].files[0].format == "parquet":
        assert nans >= 1
    else:
        assert nans == 0
        text = (sample.root / sample.table("Object").batches[0].files[0].path).read_text()
        assert "\\N" in text and not text.startswith("objectId")


def test_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    def contents(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    a = write_sample_case(tmp_path / "a", chunks=3, rows_per_chunk=20, seed=5)
    b = write_sample_case(tmp_path / "b", chunks=3, rows_per_chunk=20, seed=5)
    c = write_sample_case(tmp_path / "c", chunks=3, rows_per_chunk=20, seed=6)
    assert contents(a) == contents(b) != contents(c)
    assert read_case(a).database == "sample"


def test_a_single_chunk_makes_a_single_batch(tmp_path: Path) -> None:
    case = read_case(write_sample_case(tmp_path / "one", chunks=1, rows_per_chunk=1, fmt="parquet"))
    assert [len(t.batches) for t in case.tables] == [1, 1, 1, 1]
    assert [f.overlap for f in case.table("Object").batches[0].files] == [False, True]


def test_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "stale.txt").write_text("")
    with pytest.raises(BadInput, match="is not empty"):
        write_sample_case(tmp_path, chunks=1, rows_per_chunk=1)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_hundred_chunks_of_a_thousand_rows_take_well_under_two_seconds(tmp_path: Path, fmt: str) -> None:
    write_sample_case(tmp_path / "warm", chunks=1, rows_per_chunk=1, fmt=fmt)  # imports (pyarrow loads pandas)
    start = time.perf_counter()
    root = write_sample_case(tmp_path / "big", chunks=100, rows_per_chunk=1000, fmt=fmt)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.5, elapsed
    assert sum(len(b.files) for b in read_case(root).table("Object").batches) == 199

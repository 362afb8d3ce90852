"""Level 2 on real workers: the key fingerprint of every attempt catches what changed between a file and its
worker — after the load, or in transit — and names the chunk and, where it can, the key."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from loader_assets.catalog import chunk_checks
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.notices import done_files
from loader_assets.engine.chunk_census import ChunkCensus, DirectorKeys, census_from_keys, census_of_worker, new_census
from loader_assets.engine.validate import Validation, validate_table
from loader_assets.operations import cases
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers import load_data
from loader_assets.workers.connection import quote_table
from loader_assets.workers.ddl import chunk_table_name
from loader_assets.workers.fingerprint import key_column
from loader_assets_tests.conftest import Platform

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


OTHER = 10**12  # moves a key out of the sample's range of ids


def quiet(_: str) -> None:
    pass


def load_director(platform: Platform) -> CaseLayout:
    case = platform.sample_case(chunks=2, rows_per_chunk=30).case
    platform.load(case, (1,))
    return case_layout(platform.store.db, case)


def validate(platform: Platform, layout: CaseLayout) -> Validation:
    return validate_table(platform.store, platform.cluster, layout, layout.tables["Object"], "check-run", quiet)


def outcome(validation: Validation, name: str) -> dict[str, object]:
    [found] = [o for o in validation.outcomes if o.name == name]
    return {"passed": found.passed, **found.metadata}


def first_chunk(platform: Platform, layout: CaseLayout) -> tuple[int, str]:
    placement = platform.cluster.placement(layout.database)
    chunk = min(c for c in placement if (layout.root / f"step1_1/Object/chunk_{c}.txt").exists())
    return chunk, placement[chunk]


def on_worker(platform: Platform, layout: CaseLayout, *statements: Callable[[str], str]) -> int:
    """Run statements on the first chunk's director table (each gets the table's name); returns the chunk."""
    chunk, worker = first_chunk(platform, layout)
    with platform.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql(quote_table(layout.database, chunk_table_name("Object", chunk))))
    return chunk


def smallest_key(platform: Platform, layout: CaseLayout) -> int:
    chunk, worker = first_chunk(platform, layout)
    with platform.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT MIN(objectId) FROM {quote_table(layout.database, chunk_table_name('Object', chunk))}")
        return int(cursor.fetchone()[0])


def test_a_clean_load_passes_every_director_check(platform: Platform) -> None:
    validation = validate(platform, load_director(platform))
    assert validation.recorded and validation.failed == [] and validation.warnings == []


def test_a_row_deleted_on_a_worker_names_its_chunk_and_key(platform: Platform) -> None:
    layout = load_director(platform)
    key = smallest_key(platform, layout)
    chunk = on_worker(platform, layout, lambda t: f"DELETE FROM {t} WHERE objectId = {key}")
    validation = validate(platform, layout)
    assert validation.failed == ["objectids_on_workers", "rows_match_files"]
    keys = outcome(validation, "objectids_on_workers")
    assert f"chunk {chunk} (" in str(keys["first"]) and "rows on the worker" in str(keys["first"])
    assert keys["first missing on workers"] == str([key])


def test_a_key_changed_on_a_worker_is_caught_with_the_same_row_count(platform: Platform) -> None:
    layout = load_director(platform)
    key = smallest_key(platform, layout)
    chunk = on_worker(platform, layout, lambda t: f"UPDATE {t} SET objectId = {key + OTHER} WHERE objectId = {key}")
    validation = validate(platform, layout)
    assert validation.failed == ["objectids_on_workers"], "same rows: only the fingerprint sees it"
    keys = outcome(validation, "objectids_on_workers")
    assert f"chunk {chunk} (" in str(keys["first"]) and "other values" in str(keys["first"])
    assert (keys["first missing on workers"], keys["first unexpected on workers"]) == (str([key]), str([key + OTHER]))


def test_two_keys_moved_by_opposite_amounts_are_caught_with_the_same_count_and_sum(platform: Platform) -> None:
    layout = load_director(platform)
    low = smallest_key(platform, layout)
    chunk = on_worker(
        platform, layout,
        lambda t: f"UPDATE {t} SET objectId = {low + OTHER} WHERE objectId = {low}",
        lambda t: f"UPDATE {t} SET objectId = {low + 1 - OTHER} WHERE objectId = {low + 1}",
    )  # fmt: skip
    validation = validate(platform, layout)
    assert validation.failed == ["objectids_on_workers"], "same rows, same sum of keys: only the hash sees it"
    keys = outcome(validation, "objectids_on_workers")
    assert f"chunk {chunk} (" in str(keys["first"]) and "other values" in str(keys["first"])
    assert keys["first missing on workers"] == str([low, low + 1])


def test_a_row_duplicated_on_a_worker_fails_uniqueness_and_the_fingerprint(platform: Platform) -> None:
    layout = load_director(platform)
    key = smallest_key(platform, layout)
    # A copy outside the attempts' partitions (p0): the chunk's unique index spans the attempt id.
    on_worker(
        platform, layout,
        lambda t: f"CREATE TEMPORARY TABLE {layout.database}.copied SELECT * FROM {t} WHERE objectId = {key}",
        lambda _: f"UPDATE {layout.database}.copied SET qserv_trans_id = 0",
        lambda t: f"INSERT INTO {t} SELECT * FROM {layout.database}.copied",
    )  # fmt: skip
    validation = validate(platform, layout)
    assert set(validation.failed) == {"objectids_on_workers", "objectids_unique", "rows_match_files"}
    assert str(key) in str(outcome(validation, "objectids_unique")["duplicated keys within a chunk"])


def test_rows_gone_from_the_director_index_name_their_chunk(platform: Platform) -> None:
    """The index's rows of each chunk are recorded as it goes in; rows lost at the czar since are counted there."""
    layout = load_director(platform)
    chunk, _ = first_chunk(platform, layout)
    with platform.cluster.czar.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"DELETE FROM qservMeta.`{layout.database}__Object` WHERE chunkId = {chunk} LIMIT 1")
    found = outcome(validate(platform, layout), "objectids_on_workers")
    assert not found["passed"] and str(found["first not indexed"]).startswith(f"chunk {chunk}: ")


def test_a_director_row_of_another_chunk_leaves_its_chunk_short_in_the_index(platform: Platform) -> None:
    """A partitioner's row whose chunkId is not its file's: the index files it under that other chunk."""
    case = f"c{uuid.uuid4().hex[:8]}"
    root = write_sample_case(platform.root / "cases" / case, chunks=2, rows_per_chunk=30, database=case)
    path = min(root.glob("step1_*/Object/chunk_*[0-9].txt"))
    chunk = int(path.stem.split("_")[1])
    lines = path.read_text().splitlines()
    fields = lines[0].split(",")
    fields[-2] = str(chunk + 1)  # the chunkId column
    path.write_text("\n".join([",".join(fields), *lines[1:]]) + "\n")
    cases.register(platform.ctx, root, case)
    platform.load(case, (1,))
    found = outcome(validate(platform, case_layout(platform.store.db, case)), "objectids_on_workers")
    assert not found["passed"]
    assert f"chunk {chunk}: {len(lines)} rows, {len(lines) - 1} in the index" in str(found["first not indexed"])


def altered_in_transit(change: Callable[[list[bytes]], list[bytes]], tmp_path: Path) -> Callable[[Path], Path]:
    """The loader's transit hook: the first director chunk file reaches the server changed."""

    def transit(path: Path) -> Path:
        if "Object/chunk_" not in str(path) or "overlap" in path.name or transit.done:  # type: ignore[attr-defined]
            return path
        transit.done = True  # type: ignore[attr-defined]
        sent = tmp_path / f"sent-{path.name}"
        sent.write_bytes(b"".join(change(path.read_bytes().splitlines(keepends=True))))
        return sent

    transit.done = False  # type: ignore[attr-defined]
    return transit


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        (lambda lines: lines[:-1], ["objectids_on_workers"]),  # the last line dropped
        (lambda lines: [lines[0].replace(b"1", b"2", 1), *lines[1:]], ["objectids_on_workers"]),  # a digit altered
    ],
    ids=["line dropped", "line altered"],
)
def test_a_line_changed_in_transit_fails_level_2_naming_the_chunk(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, change, failing
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(load_data, "TRANSIT", altered_in_transit(change, tmp_path))
    layout = load_director(platform)
    validation = validate(platform, layout)
    assert validation.failed == failing, "the load passed (rows = records sent); the fingerprint did not"
    first = str(outcome(validation, "objectids_on_workers")["first"])
    assert first.startswith("chunk ") and "Object/chunk_" in first


def test_a_child_chunks_census_is_kept_from_its_load_and_taken_again_when_its_rows_move(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=30).case
    platform.load(case, (1, 2, 3))
    layout = case_layout(platform.store.db, case)
    kept = chunk_checks.kept(platform.store.db, case, "Source")
    loaded = {f.chunk for f in done_files(platform.store.db, case, "Source")}
    assert set(kept) == loaded and len(loaded) == 2, "every child chunk counted as it loaded"

    chunk, worker = first_chunk(platform, layout)
    with platform.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quote_table(layout.database, chunk_table_name('Source', chunk))} LIMIT 1")
    validation = validate_table(platform.store, platform.cluster, layout, layout.tables["Source"], "check-4", quiet)
    assert validation.failed == ["rows_match_files"]
    assert f"Source_{chunk} on {worker}" in str(outcome(validation, "rows_match_files"))


def test_a_child_chunks_census_from_its_files_keys_equals_the_anti_join_on_its_worker(platform: Platform) -> None:
    """The census taken as a child file loads finds absent keys from the file's keys and the director index; the
    worker's anti-join, taken at level 4 when a chunk has several files, must say the same."""
    case = f"c{uuid.uuid4().hex[:8]}"
    root = write_sample_case(platform.root / "cases" / case, chunks=2, rows_per_chunk=30, database=case)
    first, second = sorted((root / "step1_1").parent.glob("step3_*/Source/chunk_*.txt"))
    elsewhere = second.read_text().split(",")[1]  # an object of the other chunk
    lines = first.read_text().splitlines(keepends=True)
    for number, key in ((0, elsewhere), (1, "999"), (2, "999")):  # one misplaced row, two orphan rows of one key
        fields = lines[number].split(",")
        lines[number] = ",".join([fields[0], key, *fields[2:]])
    first.write_text("".join(lines))
    cases.register(platform.ctx, root, case)
    platform.load(case, (1, 2, 3))

    layout = case_layout(platform.store.db, case)
    source, director = layout.tables["Source"], layout.tables["Object"]
    chunk = int(first.stem.removeprefix("chunk_"))
    kept = chunk_checks.kept(platform.store.db, case, "Source")[chunk][1]
    assert (kept["misplaced"], kept["orphans"]) == ([[int(elsewhere), 1]], [[999, 2]])
    assert (kept["misplaced_rows"], kept["orphan_rows"], kept["null_keys"]) == (1, 2, 0)

    worker = platform.cluster.placement(layout.database)[chunk]
    files = done_files(platform.store.db, case, "Source", chunk=chunk)
    on_worker = new_census(source, chunk, False, worker, files)
    census_of_worker(platform.cluster, worker, layout, source, director, [on_worker])
    from_keys = new_census(source, chunk, False, worker, files)
    keys, _ = key_column(first, "csv", source.column_names, "objectId", layout.dialect_of("csv", source))
    census_from_keys(platform.cluster, layout, source, director, from_keys, keys, DirectorKeys())
    assert from_keys == on_worker == ChunkCensus.from_json(kept, files)

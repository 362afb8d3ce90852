"""Qserv's own integration inputs loaded through the platform (Dagster, a real catalog, two MariaDB workers)
level by level: case01's real rows give Qserv's counts and its 36 orphan Source rows are a warning (an error for
a strict case); generated DC2 and case03 rows load and validate to the end.

Every test builds its case under its own database name: the worker cluster is shared by the session."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from loader_assets.catalog.gates import Gate, gate
from loader_assets.catalog.register import CaseOptions, Registration
from loader_assets.cli import main
from loader_assets.engine.runner import LevelFailed, LevelResult
from loader_assets.levels import DIRECTOR, REGULAR
from loader_assets.operations import cases
from loader_assets.qserv.metadata import CaseMetadata, read_case
from loader_assets.workers.census import row_counts
from loader_assets.workers.ddl import chunk_table_name
from loader_assets_tests.conftest import Platform
from loader_assets_tests.qserv_itest.builders import (
    build_case01_shipped,
    build_case01_steps,
    build_schema_case,
    expected_counts,
    split_fields,
    split_records,
)

ORPHAN_OBJECT_ID = 390030275138483  # 36 Source rows of case01 reference it; Object has no such row
ORPHAN_ROWS = 36
ABSENT_SOURCE_ID = 999_999_999  # generated director keys are 1..rows: no RunDeepSource row has it
CASE01_COUNTS = {"Filter": 9}  # Filter has no count file in qserv-expected: its raw rows
CHILD_CHECKS = {"rows_match_files", "misplaced_rows", "orphan_rows"}
DIRECTOR_CHECKS = {"rows_match_files", "objectids_on_workers", "objectids_unique"}


def fresh_name() -> str:
    return f"q{uuid.uuid4().hex[:10]}"


def register(platform: Platform, root: Path, case: str, *, strict_children: bool | None = None) -> Registration:
    """Register the case and add its chunks to the Dagster instance, as `Platform.sample_case` does."""
    options = CaseOptions(strict_children=strict_children)
    return cases.register(platform.ctx, root, case, options=options).registration


def load(platform: Platform, case: str, levels: tuple[int, ...] = (1, 2, 3, 4)) -> list[LevelResult]:
    return platform.load(case, levels)


def rows_on_workers(platform: Platform, metadata: CaseMetadata) -> dict[str, int]:
    """What Qserv's `SELECT count(*)` would answer per table: the chunk tables (not their FullOverlap twins) on
    the worker holding each chunk; a regular table on one worker (every worker holds the same copy: checked)."""
    workers = platform.cluster.workers
    counts: dict[str, int] = {}
    for table in metadata.tables:
        if table.kind == REGULAR:
            on_each = {row_counts(server, metadata.database, [table.name])[table.name] for server in workers.values()}
            assert len(on_each) == 1, f"{table.name}: the workers hold different copies: {on_each}"
            counts[table.name] = on_each.pop() or 0
            continue
        chunks = sorted({f.chunk for b in table.batches for f in b.files if not f.overlap and f.chunk is not None})
        placement = platform.cluster.place_chunks(metadata.database, chunks)
        total = 0
        for worker, server in workers.items():
            names = [chunk_table_name(table.name, chunk) for chunk, w in placement.items() if w == worker]
            found = row_counts(server, metadata.database, names)
            assert None not in found.values(), f"{table.name}: chunk tables missing on {worker}: {found}"
            total += sum(n or 0 for n in found.values())
        counts[table.name] = total
    return counts


def records_of_files(metadata: CaseMetadata) -> dict[str, int]:
    """Records of each table's files (overlaps left out), split as the builders wrote them."""
    return {
        table.name: sum(
            len(split_records((metadata.root / f.path).read_bytes(), table.dialects[f.format]))
            for batch in table.batches
            for f in batch.files
            if not f.overlap
        )
        for table in metadata.tables
    }


def check_evaluation(instance: dg.DagsterInstance, case: str, asset: str, name: str) -> Any:
    """The latest evaluation of one asset check (`AssetCheckEvaluation`: passed, severity, metadata)."""
    check = dg.AssetCheckKey(dg.AssetKey([case, asset]), name)
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check]
    return record.event.dagster_event.event_specific_data


def metadata_values(evaluation: Any) -> dict[str, object]:
    return {name: value.value for name, value in evaluation.metadata.items()}


def gate_of(platform: Platform, case: str, level: int, table: str) -> Gate:
    found = gate(platform.store.db, case, level, table)
    assert found is not None, f"no level-{level} gate for {case}/{table}"
    return found


def case01_expected(qserv_itest: Path) -> dict[str, int]:
    return expected_counts(qserv_itest) | CASE01_COUNTS


# --- case01: Qserv's counts, its orphans a warning -------------------------------------------------------------


def test_case01_as_shipped_loads_with_qserv_counts_and_its_orphans_warn(
    platform: Platform, qserv_itest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = fresh_name()
    root = build_case01_shipped(qserv_itest, tmp_path / case, database=case)
    registration = register(platform, root, case)
    assert registration.database == case and len(registration.chunks) == 13

    results = load(platform, case)

    assert [r.level for r in results] == [1, 2, 3, 4]
    metadata = read_case(root)
    assert rows_on_workers(platform, metadata) == case01_expected(qserv_itest) == {
        "Object": 88, "Source": 3339, "RefSrcMatch": 3344, "SimRefObject": 3314, "Logs": 1000, "LeapSeconds": 38,
        "sdqa_Metric": 53, "Filter": 9,
    }  # fmt: skip
    director = gate_of(platform, case, 2, "Object")
    assert (director.status, director.failed_checks, director.details["warnings"]) == ("passed", [], [])
    assert director.details["checks"] == dict.fromkeys(DIRECTOR_CHECKS, True)

    source = gate_of(platform, case, 4, "Source")
    assert source.status == "passed"
    assert source.details["failed_checks"] == []
    assert source.details["warnings"] == ["orphan_rows"]
    assert source.details["checks"] == {"rows_match_files": True, "misplaced_rows": True, "orphan_rows": False}
    assert source.details["orphan_rows"] == {
        "rows": ORPHAN_ROWS,
        "first keys (key: rows)": f"{ORPHAN_OBJECT_ID}: {ORPHAN_ROWS}",
        "severity": "warning (Qserv loads them)",
    }
    orphans = check_evaluation(platform.instance, case, "Source_gate", "orphan_rows")
    assert (orphans.passed, orphans.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert metadata_values(orphans) == source.details["orphan_rows"]
    misplaced = check_evaluation(platform.instance, case, "Source_gate", "misplaced_rows")
    assert (misplaced.passed, misplaced.severity) == (True, dg.AssetCheckSeverity.ERROR)
    assert metadata_values(misplaced) == {"rows": 0, "first keys (key: rows)": "none"}
    rows = check_evaluation(platform.instance, case, "Source_gate", "rows_match_files")
    assert rows.passed and metadata_values(rows)["rows"] == 3339

    capsys.readouterr()
    assert main(["status", "--case", case]) == 0
    shown = capsys.readouterr().out
    assert f"warning: orphan_rows ({ORPHAN_ROWS} rows; first {ORPHAN_OBJECT_ID}: {ORPHAN_ROWS})" in shown


def test_case01_strict_children_fails_level_4_on_its_orphans(
    platform: Platform, qserv_itest: Path, tmp_path: Path
) -> None:
    case = fresh_name()
    root = build_case01_shipped(qserv_itest, tmp_path / case, database=case)
    register(platform, root, case, strict_children=True)

    assert [r.level for r in load(platform, case, levels=(1, 2, 3))] == [1, 2, 3]
    with pytest.raises(LevelFailed, match=re.escape(f"level 4 of case {case} failed for Source: check orphan_rows")):
        load(platform, case, levels=(4,))

    source = gate_of(platform, case, 4, "Source")
    assert source.status == "failed"
    assert source.failed_checks == ["orphan_rows"] and source.details["warnings"] == []
    assert source.details["orphan_rows"]["rows"] == ORPHAN_ROWS
    assert str(ORPHAN_OBJECT_ID) in source.details["orphan_rows"]["first keys (key: rows)"]
    assert source.details["orphan_rows"]["severity"] == "error (strict children)"
    orphans = check_evaluation(platform.instance, case, "Source_gate", "orphan_rows")
    assert (orphans.passed, orphans.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert str(ORPHAN_OBJECT_ID) in metadata_values(orphans)["first keys (key: rows)"]
    assert check_evaluation(platform.instance, case, "Source_gate", "misplaced_rows").passed
    with pytest.raises(LevelFailed, match="check orphan_rows"):  # validated again: the same verdict
        load(platform, case, levels=(4,))
    assert gate_of(platform, case, 4, "Source").status == "failed"
    # The rows stay loaded (level 3 is done); only the verdict differs from a lenient case.
    assert rows_on_workers(platform, read_case(root))["Source"] == 3339


def test_case01_as_step_batches_with_escaped_tab_formats_loads_the_same_counts(
    platform: Platform, qserv_itest: Path, tmp_path: Path
) -> None:
    case = fresh_name()
    root = build_case01_steps(qserv_itest, tmp_path / case, database=case)
    assert '"fields_terminated_by": "\\\\t"' in (root / "metadata.json").read_text()
    register(platform, root, case)

    assert [r.level for r in load(platform, case)] == [1, 2, 3, 4]

    metadata = read_case(root)
    assert {b.directory for t in metadata.tables for b in t.batches} >= {"step1_1/Object", "step3_1/Source"}
    assert rows_on_workers(platform, metadata) == case01_expected(qserv_itest)
    assert gate_of(platform, case, 2, "Object").status == "passed"
    source = gate_of(platform, case, 4, "Source")
    assert (source.status, source.details["warnings"]) == ("passed", ["orphan_rows"])
    assert source.details["orphan_rows"]["rows"] == ORPHAN_ROWS


# --- schema-only cases: generated rows -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["DC2", "case03"])
def test_generated_schema_case_loads_and_validates_to_the_end(
    platform: Platform, qserv_itest: Path, tmp_path: Path, name: str
) -> None:
    case = fresh_name()
    root = build_schema_case(qserv_itest, name, tmp_path / case, rows_per_chunk=20, database=case)
    register(platform, root, case)

    assert [r.level for r in load(platform, case)] == [1, 2, 3, 4]

    metadata = read_case(root)
    expected = records_of_files(metadata)
    assert all(expected.values()), expected
    assert rows_on_workers(platform, metadata) == expected
    for table in metadata.tables:
        if table.kind == REGULAR:
            continue
        verdict = gate_of(platform, case, 2 if table.kind == DIRECTOR else 4, table.name)
        assert (verdict.status, verdict.failed_checks, verdict.details["warnings"]) == ("passed", [], []), table.name
        checks = DIRECTOR_CHECKS if table.kind == DIRECTOR else CHILD_CHECKS
        assert verdict.details["checks"] == dict.fromkeys(checks, True), table.name


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="the package reads one director per child: case03's match table RefDeepSrcMatch names a second one "
    "(director_table2 RunDeepSource, director_key2 deepSourceId), which loader_assets.qserv.metadata ignores, so "
    "level 4 never checks deepSourceId against RunDeepSource",
)
def test_case03_match_table_keys_absent_from_its_second_director_are_reported(
    platform: Platform, qserv_itest: Path, tmp_path: Path
) -> None:
    case = fresh_name()
    root = build_schema_case(qserv_itest, "case03", tmp_path / case, rows_per_chunk=20, database=case)
    match = read_case(root).table("RefDeepSrcMatch")
    file = match.batches[0].files[0]
    dialect = match.dialects[file.format]
    records = split_records((root / file.path).read_bytes(), dialect)
    fields = split_fields(records[0], dialect)
    fields[[c["name"] for c in match.columns].index("deepSourceId")] = str(ABSENT_SOURCE_ID).encode()
    records[0] = dialect.fields_terminated_by.encode().join(fields)
    terminator = dialect.lines_terminated_by.encode()
    (root / file.path).write_bytes(b"".join(record + terminator for record in records))
    register(platform, root, case)

    assert [r.level for r in load(platform, case)] == [1, 2, 3, 4]  # an orphan is a warning: the gate passes

    verdict = gate_of(platform, case, 4, "RefDeepSrcMatch")
    assert verdict.details["warnings"] == ["orphan_rows"], verdict.details
    assert str(ABSENT_SOURCE_ID) in verdict.details["orphan_rows"]["first keys (key: rows)"]

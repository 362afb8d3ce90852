"""Engine reports as Dagster events: materializations, the failure a load step ends with, check results."""

from __future__ import annotations

import dagster as dg

from loader_assets.catalog.claims import Refusal, Refused
from loader_assets.defs.events import check_results, load_failure, materialization
from loader_assets.engine.load import Loaded, LoadReport
from loader_assets.engine.validate import CheckOutcome, Validation

GATE = Refused(Refusal.GATE_CLOSED, "level 2 of case c1 (Object) is pending")


def loaded(notice_id: int, table: str, chunk: int | None, *, overlap: bool = False, rows: int = 3) -> Loaded:
    return Loaded(notice_id, 100 + notice_id, "c1", table, chunk, overlap, f"n{notice_id}.txt", "w1", rows, 50, 0.25)


def test_a_chunk_and_its_overlap_make_one_materialization_of_its_partition() -> None:
    event = materialization([loaded(1, "Object", 7), loaded(2, "Object", 7, overlap=True, rows=2)])
    assert (event.asset_key, event.partition) == (dg.AssetKey(["c1", "Object"]), "7")
    chunk = event.metadata
    assert (chunk["rows"].value, chunk["bytes"].value, chunk["worker"].value) == (5, 100, "w1")
    assert chunk["files"].value == ["n1.txt", "n2.txt"]
    assert chunk["attempt ids"].value == [101, 102]
    assert materialization([loaded(4, "Filter", None, rows=6)]).partition is None


def test_a_load_refused_by_a_closed_gate_is_a_wait_not_a_failure() -> None:
    assert load_failure(LoadReport(skipped={5: GATE, 6: GATE})) is None


def test_failed_notices_fail_the_step_naming_the_first() -> None:
    report = LoadReport(loaded=[loaded(1, "Object", 7)], failed={9: "on w2: bad row", 4: "on w1: disk full"})
    failure = load_failure(report)
    assert failure is not None
    assert failure.description == "2 notices failed; first: notice 4: on w1: disk full"
    assert failure.metadata["failed"].value == 2


def test_lost_leases_fail_the_step() -> None:
    failure = load_failure(LoadReport(lost=[3, 4]))
    assert failure is not None
    assert failure.description == "lease lost on 2 notices; the rows loaded were discarded"


def test_a_clean_report_is_no_failure_even_with_some_gate_refusals() -> None:
    assert load_failure(LoadReport(loaded=[loaded(1, "Object", 7)])) is None
    assert load_failure(LoadReport(loaded=[loaded(1, "Source", 7)], skipped={2: GATE})) is None
    assert load_failure(LoadReport()) is None


def test_check_results_give_one_blocking_result_per_check() -> None:
    validation = Validation(
        outcomes=[
            CheckOutcome("objectids_unique", True, {"duplicates": 0}),
            CheckOutcome("rows_match_files", False, {"mismatches": 1}),
        ]
    )
    key = dg.AssetKey(["c1", "Object"])
    results = list(check_results(key, validation))
    assert [(r.check_name, r.passed) for r in results] == [("objectids_unique", True), ("rows_match_files", False)]
    assert {r.severity for r in results} == {dg.AssetCheckSeverity.ERROR}
    assert results[1].metadata["mismatches"].value == 1
    assert validation.failed == ["rows_match_files"]

"""Level gates: recording a verdict and the reason a closed gate gives."""

from __future__ import annotations

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.gates import closed_gate_reason, gate
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Store
from loader_assets_tests.catalog.rows import add_case
from loader_assets_tests.gates import decide_gate
from loader_assets_tests.unit.helpers import CASE


def reason(db: CatalogDB, case: str, child: str) -> str | None:
    with db.read() as connection:
        return closed_gate_reason(connection, case, child)


def test_registration_opens_a_pending_gate_per_validated_table(db: CatalogDB, sample: Registration) -> None:
    assert gate(db, CASE, 2, "Object").status == "pending"
    assert gate(db, CASE, 4, "Source").status == "pending"
    assert gate(db, CASE, 2, "Filter") is None, "regular tables are not validated"


def test_a_later_verdict_replaces_the_previous_one(store: Store, sample: Registration) -> None:
    decide_gate(store, CASE, "Object", "failed", {"failed_checks": ["objectids_unique"]})
    decide_gate(store, CASE, "Object", "passed")
    verdict = gate(store.db, CASE, 2, "Object")
    assert (verdict.status, verdict.check_run, verdict.failed_checks) == ("passed", "test-check-passed", [])


def test_closed_gate_reason_names_the_failed_checks_and_is_none_once_passed(store: Store, sample: Registration) -> None:
    db = store.db
    assert reason(db, CASE, "Source") == "level 2 of case c1 (Object) is pending"
    details = {"failed_checks": ["objectids_unique", "rows_match_files"]}
    decide_gate(store, CASE, "Object", "failed", details)
    assert reason(db, CASE, "ForcedSource") == (
        "level 2 of case c1 (Object) is failed: failed check objectids_unique, rows_match_files"
    )
    decide_gate(store, CASE, "Object", "passed")
    assert reason(db, CASE, "Source") is None


def test_closed_gate_reason_says_missing_without_a_director_gate(db: CatalogDB) -> None:
    add_case(db, "c2", notices=1, level=3, table="Source")  # a child whose director was never registered
    assert reason(db, "c2", "Source") == "level 2 of case c2 (director) is missing"

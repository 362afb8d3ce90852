"""Level gates: recording a verdict and the reason a closed gate gives."""

from __future__ import annotations

import pytest

from loader_assets.catalog.engine import CatalogDB
from loader_assets.catalog.gates import closed_gate_reason, gate, record_gate
from loader_assets.catalog.register import Registration
from loader_assets_tests.catalog.rows import add_case
from loader_assets_tests.unit.helpers import CASE


def reason(db: CatalogDB, case: str, child: str) -> str | None:
    with db.read() as connection:
        return closed_gate_reason(connection, case, child)


def test_registration_opens_a_pending_gate_per_validated_table(db: CatalogDB, sample: Registration) -> None:
    assert gate(db, CASE, 2, "Object").status == "pending"
    assert gate(db, CASE, 4, "Source").status == "pending"
    assert gate(db, CASE, 2, "Filter") is None, "regular tables are not validated"


def test_record_gate_refuses_a_bad_status(db: CatalogDB, sample: Registration) -> None:
    with pytest.raises(ValueError, match="gate status must be one of"):
        record_gate(db, CASE, 2, "Object", "ok", "check-1")
    assert gate(db, CASE, 2, "Object").status == "pending"


def test_record_gate_replaces_the_previous_verdict(db: CatalogDB, sample: Registration) -> None:
    record_gate(db, CASE, 2, "Object", "failed", "check-1", {"failed_checks": ["objectids_unique"]})
    record_gate(db, CASE, 2, "Object", "passed", "check-2", {"failed_checks": []})
    verdict = gate(db, CASE, 2, "Object")
    assert (verdict.status, verdict.check_run, verdict.failed_checks) == ("passed", "check-2", [])


def test_closed_gate_reason_names_the_failed_checks_and_is_none_once_passed(
    db: CatalogDB, sample: Registration
) -> None:
    assert reason(db, CASE, "Source") == "level 2 of case c1 (Object) is pending"
    details = {"failed_checks": ["objectids_unique", "rows_match_files"]}
    record_gate(db, CASE, 2, "Object", "failed", "check-1", details)
    assert reason(db, CASE, "ForcedSource") == (
        "level 2 of case c1 (Object) is failed: failed check objectids_unique, rows_match_files"
    )
    record_gate(db, CASE, 2, "Object", "passed", "check-2")
    assert reason(db, CASE, "Source") is None


def test_closed_gate_reason_says_missing_without_a_director_gate(db: CatalogDB) -> None:
    add_case(db, "c2", notices=1, level=3, table="Source")  # a child whose director was never registered
    assert reason(db, "c2", "Source") == "level 2 of case c2 (director) is missing"

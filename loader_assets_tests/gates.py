"""A gate's verdict for tests, through the fenced path the validations take: the table loaded first (its
notices claimed and finished by a test run), then `begin_validation` → `finish_validation`."""

from __future__ import annotations

import socket

from loader_assets import levels
from loader_assets.catalog.gates import Validator, begin_validation, finish_validation, gate
from loader_assets.catalog.layout import case_layout
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.store import Owner, Store


def decide_gate(store: Store, case: str, table: str, status: str = "passed", details: dict | None = None) -> None:
    """Record `status` as the verdict of `table`'s validation, as a validation run would (loading it if needed)."""
    layout = case_layout(store.db, case)
    spec = layout.tables[table]
    level = spec.validation_level
    assert level is not None, f"{table} is not validated"
    unloaded = notice_ids(store.db, case, table=table, statuses=("ready", "failed"))
    for claim in store.claim(unloaded, Owner("test-load", socket.gethostname(), 1), force=True):
        store.finish(claim.attempt_id, "done", rows=0)
    director = None
    if spec.kind == levels.CHILD:
        passed = gate(store.db, case, levels.VALIDATE_DIRECTOR, spec.director_table or "")
        assert passed is not None and passed.status == "passed", "a child is judged against a passed director"
        director = (passed.table, passed.generation)
    who = Validator(f"test-check-{status}", socket.gethostname(), 1)
    seen = begin_validation(store.db, case, level, table, who, store.lease)
    verdict = {"failed_checks": [], **(details or {})}
    assert finish_validation(store.db, case, level, table, who, seen, status, verdict, director=director)

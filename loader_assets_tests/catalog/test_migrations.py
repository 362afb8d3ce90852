"""A catalog written at schema version 1 is upgraded in place and keeps working, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from loader_assets import settings
from loader_assets.catalog import migrations, schema
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.gates import gate
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Owner, Store
from loader_assets.catalog.time import utcnow
from loader_assets.engine.level_state import validator_alive
from loader_assets.qserv.sample import write_sample_case
from loader_assets_tests.catalog import schema_v1


def write_version_1_catalog(url: str) -> list[int]:
    """What loader_assets 0.1 left: a case, its director with a pending gate, 3 notices, one loaded."""
    engine = create_engine(settings.psycopg2_url(url))
    now = utcnow()
    with engine.begin() as connection:
        schema_v1.metadata.create_all(connection)
        connection.execute(schema_v1.catalog_info.insert().values(key="schema_version", value="1"))
        connection.execute(
            schema_v1.cases.insert().values(
                case="old", database="db_old", charset="latin1", dialect={"txt": {"fields_terminated_by": "\\t"}},
                root="/data/old", created_at=now, state="active",
            )
        )  # fmt: skip
        connection.execute(
            schema_v1.tables.insert().values(
                case="old", name="Object", kind="director", level=1, director_key="objectId", columns=[], indexes=[]
            )
        )
        connection.execute(
            schema_v1.level_gates.insert().values(case="old", level=2, table="Object", status="pending", updated_at=now)
        )
        batch = connection.execute(
            schema_v1.batches.insert()
            .values(case="old", table="Object", directory="step1_1/Object", step=1, task=1, level=1)
            .returning(schema_v1.batches.c.id)
        ).scalar_one()
        ids = [
            connection.execute(
                schema_v1.notices.insert()
                .values(case="old", batch=batch, table="Object", level=1, chunk=chunk, path=f"step1_1/Object/chunk_{chunk}.txt",
                        format="txt", size=10, mtime=1.0, status="ready", created_at=now, updated_at=now)
                .returning(schema_v1.notices.c.id)
            ).scalar_one()
            for chunk in (1, 2, 3)
        ]  # fmt: skip
        attempt = connection.execute(
            schema_v1.attempts.insert()
            .values(notice=ids[0], run_id="old-run", host="h", pid=1, started_at=now, finished_at=now, outcome="done",
                    rows=5, warnings=0)
            .returning(schema_v1.attempts.c.id)
        ).scalar_one()  # fmt: skip
        connection.execute(
            schema_v1.notices.update()
            .where(schema_v1.notices.c.id == ids[0])
            .values(status="done", rows=5, attempts=1, attempt_id=attempt)
        )
    engine.dispose()
    return ids


def test_a_version_1_catalog_is_upgraded_and_keeps_loading(catalog_url: str, tmp_path: Path) -> None:
    ids = write_version_1_catalog(catalog_url)

    db = CatalogDB(catalog_url)
    with db.read() as connection:
        info = dict(connection.execute(select(schema.catalog_info.c.key, schema.catalog_info.c.value)).all())
        case = connection.execute(select(schema.cases).where(schema.cases.c.case == "old")).one()
        old = connection.execute(select(schema.attempts)).one()
    assert info["schema_version"] == str(schema.SCHEMA_VERSION)
    assert info["catalog_id"] == db.catalog_id and len(db.catalog_id) == 36, "an identity for the worker stamps"
    assert (case.strict_children, case.max_num_warnings, case.root) == (False, 0, "/data/old")
    assert case.dialect == {"txt": {"fields_terminated_by": "\t"}}, "stored as Qserv reads it: a tab"
    assert (old.outcome, old.rows, old.fingerprint) == ("done", 5, None), "history kept; no fingerprint yet"
    before = gate(db, "old", 2, "Object")
    assert (before.status, before.generation, before.validating_run) == ("pending", 0, None)

    store = Store(db)
    claims = store.claim(ids, Owner.current("new-run"))
    assert [c.notice_id for c in claims] == ids[1:], "the done notice stays done; the ready ones are taken"
    for claim in claims:
        assert store.finish(claim.attempt_id, "done", rows=5, fingerprint={"rows": "5", "keys": "5", "key_sum": "15",
                                                                          "crc_sum": "7"})  # fmt: skip
    assert gate(db, "old", 2, "Object").generation == before.generation + 1, "the claim fenced the gate"

    root = write_sample_case(tmp_path / "fresh", chunks=2, rows_per_chunk=3, database="fresh")
    assert register_case(store, root, "fresh").new_notices > 0, "the upgraded catalog registers new cases"
    CatalogDB(catalog_url).dispose()  # opening it again: already at the current version
    db.dispose()


def test_a_validation_lock_taken_before_leases_lapses_once_upgraded(
    catalog_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_version_1_catalog(catalog_url)
    engine = create_engine(settings.psycopg2_url(catalog_url))
    taken = utcnow()
    with monkeypatch.context() as at_6, engine.begin() as connection:  # what loader_assets left at version 6
        at_6.setattr(migrations, "SCHEMA_VERSION", 6)
        migrations.upgrade(connection, 1)
        connection.execute(
            text(
                "UPDATE level_gates SET validating_run = 'old-run', validating_host = 'another-host', "
                "validating_pid = 1, validating_since = :taken"
            ),
            {"taken": taken},
        )
    engine.dispose()

    db = CatalogDB(catalog_url)
    held = gate(db, "old", 2, "Object")
    assert (held.validating_run, held.validating_until) == ("old-run", taken)
    assert not validator_alive(held), "its holder on another host cannot be seen: its lease has lapsed"
    db.dispose()

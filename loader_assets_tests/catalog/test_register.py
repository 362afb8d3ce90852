"""Registration of qserv-ingest cases, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from loader_assets.catalog import schema
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.register import RegistrationError, register_case
from loader_assets.catalog.store import Store
from loader_assets.qserv.metadata import CaseReader, MetadataError
from loader_assets.qserv.sample import write_sample_case
from loader_assets_tests.handmade import HandMadeCase


@pytest.fixture
def store(catalog_db: CatalogDB) -> Store:
    return Store(catalog_db)


def rows(store: Store, query):  # type: ignore[no-untyped-def]
    with store.db.read() as connection:
        return connection.execute(query).all()


def notices_of(store: Store, case: str) -> dict[str, tuple]:
    n = schema.notices.c
    found = rows(store, select(n.path, n.table, n.level, n.chunk, n.overlap, n.format, n.status).where(n.case == case))
    return {row.path: tuple(row[1:]) for row in found}


def test_registers_a_sample_case_with_every_file_as_a_notice(store: Store, tmp_path: Path) -> None:
    root = write_sample_case(tmp_path / "qcase01", chunks=6, rows_per_chunk=50, database="qcase01")
    result = register_case(store, root)
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix in (".txt", ".parquet")}
    notices = notices_of(store, "qcase01")
    assert set(notices) == on_disk
    assert result.new_notices == len(on_disk) and len(result.chunks) == 6
    assert {(table, level) for table, level, *_ in notices.values()} == {
        ("Object", 1), ("Filter", 1), ("Source", 3), ("ForcedSource", 3)
    }  # fmt: skip
    b = schema.batches.c
    batches = rows(store, select(b.directory, b.step, b.task, b.level).order_by(b.directory))
    assert all(row.step == int(row.directory[4]) for row in batches)
    gates = rows(store, select(schema.level_gates.c.level, schema.level_gates.c.table, schema.level_gates.c.status))
    assert sorted(gates) == [(2, "Object", "pending"), (4, "ForcedSource", "pending"), (4, "Source", "pending")]


def test_registers_a_hand_made_qserv_ingest_case(store: Store, tmp_path: Path) -> None:
    case = HandMadeCase(tmp_path / "case01")
    register_case(store, case.root, comment="DC2 test")
    notices = notices_of(store, "case01")
    assert notices == {
        "step1_1/Object/chunk_6630.txt": ("Object", 1, 6630, False, "txt", "ready"),
        "step1_1/Object/chunk_6631.txt": ("Object", 1, 6631, False, "txt", "ready"),
        "step1_1/Object/chunk_6631_overlap.txt": ("Object", 1, 6631, True, "txt", "ready"),
        "step1_2/Object/chunk_6800.csv": ("Object", 1, 6800, False, "csv", "ready"),
        "step1_2/Object/chunk_6800_overlap.csv": ("Object", 1, 6800, True, "csv", "ready"),
        "partition/case01/Object/chunk_7140.parquet": ("Object", 1, 7140, False, "parquet", "ready"),
        "partition/case01/Object/chunk_7140_overlap.parquet": ("Object", 1, 7140, True, "parquet", "ready"),
        "step3_1/Source/chunk_6630.txt": ("Source", 3, 6630, False, "txt", "ready"),
        "step3_1/Source/chunk_6631.txt": ("Source", 3, 6631, False, "txt", "ready"),
        "Filter.tsv": ("Filter", 1, None, False, "tsv", "ready"),
    }
    b = schema.batches.c
    assert sorted(rows(store, select(b.directory, b.step, b.task, b.table))) == [
        ("", None, None, "Filter"),
        ("partition/case01/Object", None, None, "Object"),
        ("step1_1/Object", 1, 1, "Object"),
        ("step1_2/Object", 1, 2, "Object"),
        ("step3_1/Source", 3, 1, "Source"),
    ]
    c = schema.cases.c
    [case_row] = rows(store, select(c.case, c.database, c.num_stripes, c.charset, c.root, c.comment, c.state))
    assert case_row == ("case01", "qcase", 85, "latin1", str(case.root.resolve()), "DC2 test", "active")


def test_registering_again_is_idempotent_and_flags_a_changed_file(store: Store, tmp_path: Path) -> None:
    case = HandMadeCase(tmp_path / "case01")
    first = register_case(store, case.root)
    again = register_case(store, case.root)
    assert (again.new_notices, again.unchanged_notices, again.changed_paths) == (0, first.new_notices, [])
    assert rows(store, select(func.count()).select_from(schema.notices))[0][0] == first.new_notices

    path = case.root / "step3_1/Source/chunk_6631.txt"
    path.write_text("101,2,6631,1\n200,2,6631,1\n300,2,6631,1\n")
    os.utime(path, (1, 1))
    changed = register_case(store, case.root)
    assert changed.changed_paths == ["step3_1/Source/chunk_6631.txt"]
    n = schema.notices.c
    [row] = rows(store, select(n.changed, n.status, n.size, n.mtime).where(n.path == "step3_1/Source/chunk_6631.txt"))
    assert row == (True, "ready", path.stat().st_size, 1.0)
    assert "1 changed (flagged, ready to reload)" in changed.summary()


def test_two_cases_side_by_side(store: Store, tmp_path: Path) -> None:
    register_case(store, write_sample_case(tmp_path / "a", chunks=2, rows_per_chunk=10, database="dba"), "case_a")
    register_case(store, write_sample_case(tmp_path / "b", chunks=3, rows_per_chunk=10, database="dbb"), "case_b")
    n = schema.notices.c
    counts = dict(rows(store, select(n.case, func.count()).group_by(n.case)))
    assert counts["case_a"] < counts["case_b"]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda c, tmp: register_case(c.store, c.root, "bad-name"),
         "case name 'bad-name' is invalid: use letters, digits and '_' only"),
        (lambda c, tmp: (register_case(c.store, c.root, "first"), register_case(c.store, c.root, "second")),
         "database 'qcase' is already loaded by case 'first'"),
    ],
)  # fmt: skip
def test_refusals_name_what_is_wrong(store: Store, tmp_path: Path, setup, message: str) -> None:  # type: ignore[no-untyped-def]
    case = HandMadeCase(tmp_path / "case01")
    case.store = store  # type: ignore[attr-defined]
    with pytest.raises(RegistrationError, match=re.escape(message)):
        setup(case, tmp_path)


def test_same_case_from_another_directory_is_refused(store: Store, tmp_path: Path) -> None:
    register_case(store, HandMadeCase(tmp_path / "one" / "case01").root)
    other = HandMadeCase(tmp_path / "two" / "case01")
    with pytest.raises(
        RegistrationError, match=re.escape(f"case 'case01' is registered from {tmp_path / 'one' / 'case01'}")
    ):
        register_case(store, other.root)


def test_a_refused_case_leaves_nothing_half_registered(store: Store, tmp_path: Path) -> None:
    case = HandMadeCase(tmp_path / "case01")
    case.remove("step3_1/Source/chunk_6631.txt")
    with pytest.raises(
        MetadataError, match=re.escape("listed in metadata.json but absent: step3_1/Source/chunk_6631.txt")
    ):
        register_case(store, case.root)
    for table in (schema.cases, schema.tables, schema.batches, schema.notices):
        assert rows(store, select(func.count()).select_from(table))[0][0] == 0


def test_schema_change_on_registering_again_is_refused_and_rolled_back(store: Store, tmp_path: Path) -> None:
    case = HandMadeCase(tmp_path / "case01")
    register_case(store, case.root)
    case.edit_json("Source.json", lambda doc: doc["schema"].append({"name": "flux", "type": "FLOAT"}))
    case.write("step3_2/Source/chunk_6800.txt", "1,1,6800,1,0.5\n")
    case.metadata["tables"][1]["data"].append({"directory": "step3_2/Source", "chunks": [6800]})
    case.save_metadata()
    with pytest.raises(RegistrationError, match="table 'Source' of case 'case01' changed its schema or kind"):
        register_case(store, case.root)
    b = schema.batches.c
    assert (
        rows(store, select(func.count()).select_from(schema.batches).where(b.directory == "step3_2/Source"))[0][0] == 0
    )


def test_an_interrupted_registration_leaves_the_case_unclaimable_until_registered_again(
    store: Store, tmp_path: Path
) -> None:
    from loader_assets.catalog.layout import case_layout
    from loader_assets.catalog.store import Owner

    root = write_sample_case(tmp_path / "big", chunks=6, rows_per_chunk=5, database="big")
    seen: list[list[int]] = []

    def partitions_fail(case: str, chunks: list[int]) -> None:  # the Dagster step dies after every batch
        seen.append(chunks)
        raise ConnectionError("instance unreachable")

    with pytest.raises(ConnectionError):
        register_case(store, root, on_chunks=partitions_fail)
    ids = [row.id for row in rows(store, select(schema.notices.c.id).where(schema.notices.c.case == "big"))]
    assert len(ids) == CaseReader(root).check()  # every batch written, one notice per file
    assert case_layout(store.db, "big").state == "registering"
    assert store.claim(ids, Owner("run-1", "host", 1)) == []
    assert {r.message for r in store.why_not_claimed(ids).values()} == {"case big is registering"}

    again = register_case(store, root, on_chunks=lambda _case, chunks: seen.append(chunks))  # nothing twice
    assert (again.new_notices, again.unchanged_notices) == (0, len(ids))
    assert seen[0] == seen[1] == again.chunks and len(again.chunks) == 6
    assert case_layout(store.db, "big").state == "active"
    claimed = store.claim(ids, Owner("run-1", "host", 1))  # level 1; the children wait for their gate
    assert claimed and {c.level for c in claimed} == {1}


def test_a_paused_case_registered_again_stays_paused(store: Store, tmp_path: Path) -> None:
    from loader_assets.catalog.layout import case_layout

    root = write_sample_case(tmp_path / "paused", chunks=2, rows_per_chunk=5, database="paused")
    register_case(store, root)
    store.set_case_state("paused", "paused")
    register_case(store, root)
    assert case_layout(store.db, "paused").state == "paused"

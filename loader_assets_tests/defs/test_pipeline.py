"""A sample case through Dagster level by level, on real workers and a persistent instance."""

from __future__ import annotations

import re

import dagster as dg
import pytest
from sqlalchemy import func, select

from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.schema import level_gates, notices
from loader_assets.engine.plan import plan_runs
from loader_assets.engine.runner import LevelFailed
from loader_assets.problems import GateClosed
from loader_assets.workers.census import row_counts
from loader_assets.workers.connection import quote_table
from loader_assets.workers.ddl import chunk_table_name
from loader_assets_tests.conftest import Platform


def rows_on_workers(platform: Platform, case: str, table: str) -> int:
    """Rows of a table summed over every chunk (and overlap) table on the worker that holds the chunk."""
    layout = case_layouts(platform.store.db, case)[case]
    placement = platform.cluster.place_chunks(layout.database, case_chunks(platform, case))
    total = 0
    for worker, server in platform.cluster.workers.items():
        names = [chunk_table_name(table, c, o) for c, w in placement.items() if w == worker for o in (False, True)]
        total += sum(n or 0 for n in row_counts(server, layout.database, names).values())
    return total


def rows_in_catalog(platform: Platform, case: str, table: str) -> int:
    with platform.store.db.read() as connection_:
        return connection_.execute(
            select(func.sum(notices.c.rows)).where(notices.c.case == case, notices.c.table == table)
        ).scalar()


def check_status(instance: dg.DagsterInstance, key: dg.AssetKey, name: str) -> str:
    check = dg.AssetCheckKey(key, name)
    return instance.event_log_storage.get_latest_asset_check_execution_by_key([check])[check].status.value


def test_a_sample_case_loads_end_to_end_and_its_checks_pass(platform: Platform) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=100).case
    levels = platform.load(case)
    assert [r.level for r in levels] == [1, 2, 3, 4]
    for table in ("Object", "Source", "ForcedSource"):
        assert rows_on_workers(platform, case, table) == rows_in_catalog(platform, case, table) > 0
    for key, name in [
        (dg.AssetKey([case, "Object_gate"]), "objectids_on_workers"),
        (dg.AssetKey([case, "Object_gate"]), "objectids_unique"),
        (dg.AssetKey([case, "Source_gate"]), "misplaced_rows"),
        (dg.AssetKey([case, "Source_gate"]), "orphan_rows"),
    ]:
        assert check_status(platform.instance, key, name) == "SUCCEEDED"
    for gate_key in (dg.AssetKey([case, "Object_gate"]), dg.AssetKey([case, "Source_gate"])):
        shown = platform.instance.get_latest_materialization_event(gate_key)
        assert shown is not None and shown.asset_materialization.description == "passed", "the gate's verdict"
    materialized = platform.instance.get_materialized_partitions(dg.AssetKey([case, "Object"]))
    assert materialized == {str(c) for c in case_chunks(platform, case)}


def case_chunks(platform: Platform, case: str) -> set[int]:
    with platform.store.db.read() as connection_:
        return set(
            connection_.execute(
                select(notices.c.chunk).where(notices.c.case == case, notices.c.chunk.is_not(None))
            ).scalars()
        )


def delete_one_director_row(platform: Platform, case: str) -> int:
    layout = case_layouts(platform.store.db, case)[case]
    chunk, worker = sorted(platform.cluster.place_chunks(layout.database, case_chunks(platform, case)).items())[0]
    with platform.cluster.worker(worker).connect() as conn, conn.cursor() as cursor:
        table = quote_table(layout.database, chunk_table_name("Object", chunk))
        cursor.execute(f"SELECT MIN(objectId) FROM {table}")
        (object_id,) = cursor.fetchone()
        cursor.execute(f"DELETE FROM {table} WHERE objectId = %s", (object_id,))
    return object_id


def test_a_director_missing_one_objectid_closes_level_2_and_no_child_loads(platform: Platform) -> None:
    broken = platform.sample_case(chunks=3, rows_per_chunk=50).case
    healthy = platform.sample_case(chunks=3, rows_per_chunk=50, seed=7).case
    defs = platform.definitions()
    platform.load(broken, (1,))
    missing = delete_one_director_row(platform, broken)

    with pytest.raises(
        LevelFailed, match=re.escape(f"level 2 of case {broken} failed for Object: check objectids_on_workers")
    ):
        platform.load(broken, (2,))
    key = dg.AssetKey([broken, "Object_gate"])
    assert check_status(platform.instance, key, "objectids_on_workers") == "FAILED"
    record = platform.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(key, "objectids_on_workers")]
    )
    evaluation = next(iter(record.values())).event.dagster_event.event_specific_data
    assert str(missing) in evaluation.metadata["first missing on workers"].value

    # Level 3 is refused whoever asks: the runner, the load job directly, the asset directly.
    with pytest.raises(GateClosed, match="is failed: failed check objectids_on_workers"):
        platform.load(broken, (3,))
    children = notice_ids(platform.store.db, broken, level=3)
    plans, _ = plan_runs(platform.store, platform.cluster, children)
    # A closed gate is a wait, not a failure: the runs succeed, load nothing and say why.
    outcome = platform.run_plan(plans[0])
    assert platform.succeeded(outcome.run_id) and not platform.materialized_in(outcome.run_id)
    source = defs.get_assets_def(dg.AssetKey([broken, "Source"]))
    chunk = str(sorted(case_chunks(platform, broken))[0])
    asset_run = dg.materialize([source], instance=platform.instance, partition_key=chunk, raise_on_error=False,
                               resources=defs.resources)  # fmt: skip
    assert asset_run.success and not asset_run.get_asset_materialization_events()
    said = [entry.user_message for entry in platform.instance.all_logs(asset_run.run_id)]
    assert any("not loaded, waiting for the gate: level 2 of case" in message for message in said)
    with platform.store.db.read() as connection_:
        statuses = set(
            connection_.execute(
                select(notices.c.status).where(notices.c.case == broken, notices.c.level == 3)
            ).scalars()
        )
        gate = connection_.execute(
            select(level_gates.c.status).where(level_gates.c.case == broken, level_gates.c.level == 2)
        ).scalar()
    assert statuses == {"ready"} and gate == "failed"
    assert rows_on_workers(platform, broken, "Source") == 0

    # The healthy case beside it loads to the end.
    platform.load(healthy)
    assert rows_on_workers(platform, healthy, "Source") == rows_in_catalog(platform, healthy, "Source") > 0

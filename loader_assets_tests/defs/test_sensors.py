"""The sensors evaluated by hand on a real instance and catalog: what they request, and when they hold back."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from loader_assets.catalog import schedules
from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.notices import done_files, notice_ids
from loader_assets.catalog.schema import attempts, notices
from loader_assets.catalog.store import Owner, utcnow
from loader_assets.defs.assets import case_assets, table_key
from loader_assets.defs.chunk_partitions import chunk_partitions
from loader_assets.defs.jobs import LOAD_JOB, SPLIT_OP, load_notices_job
from loader_assets.defs.resources import CatalogResource, ClusterResource, default_resources
from loader_assets.defs.sensors import scheduled_loads
from loader_assets.engine.plan import plan_runs
from loader_assets.engine.targets import ALL_WORKERS
from loader_assets.operations import cases
from loader_assets.selection import saved
from loader_assets.selection import select as select_notices
from loader_assets_tests.conftest import Platform
from loader_assets_tests.gates import decide_gate

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def sensor_context(platform: Platform) -> dg.SensorEvaluationContext:
    return dg.build_sensor_context(
        instance=platform.instance, resources={"catalog": CatalogResource(), "cluster": ClusterResource()}
    )


def requested_ids(request: dg.RunRequest) -> list[int]:
    return request.run_config["ops"][SPLIT_OP]["config"]["notice_ids"]


def create_runs(platform: Platform, requests: list[dg.RunRequest]) -> list[str]:
    """What the daemon does with a tick's requests: a run each in the instance (not launched here)."""
    return [
        platform.instance.create_run_for_job(load_notices_job, run_config=r.run_config, tags=r.tags).run_id
        for r in requests
    ]


def notice_rows(platform: Platform, ids: list[int]) -> list:  # type: ignore[type-arg]
    n = notices.c
    with platform.store.db.read() as connection:
        return connection.execute(select(n.id, n.case, n.level, n.chunk).where(n.id.in_(ids))).all()


def fail_one_attempt(platform: Platform, notice_id: int) -> None:
    """A run that claimed the notice and failed it, long enough ago that its retry back-off is over."""
    then = utcnow() - timedelta(hours=2)
    [claim] = platform.store.claim([notice_id], Owner.current("failed-run"), now=then)
    platform.store.finish(claim.attempt_id, "failed", error="worker went away", now=then)


def test_scheduled_loads_turns_a_pending_schedule_into_runs_per_case_level_and_worker(platform: Platform) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=2).case
    scheduled = select_notices(f"case = '{case}'", store=platform.store).schedule(priority=3)

    first = scheduled_loads(sensor_context(platform)).run_requests
    assert levels_of(platform, case, scheduled.schedule_id, first) == {"1"}, "the children wait for the gate"
    # The daemon died before it created the runs: nothing is marked, the next tick asks again, under the same keys.
    waiting = schedules.get(platform.store.db, scheduled.schedule_id)
    assert (waiting.state, waiting.runs, waiting.submitted_ids) == ("pending", None, None)
    asked_again = scheduled_loads(sensor_context(platform)).run_requests
    assert [r.run_key for r in asked_again] == [r.run_key for r in first]

    first_runs = create_runs(platform, asked_again)
    assert not scheduled_loads(sensor_context(platform)).run_requests, "nothing new while the gate is closed"
    waiting = schedules.get(platform.store.db, scheduled.schedule_id)
    assert waiting.state == "pending" and waiting.runs == sorted(first_runs)

    decide_gate(platform.store, case, "Object", "passed")
    second = scheduled_loads(sensor_context(platform)).run_requests
    assert levels_of(platform, case, scheduled.schedule_id, second) == {"3"}
    all_ids = sorted(i for request in first + second for i in requested_ids(request))
    assert all_ids == list(scheduled.notice_ids)
    second_runs = create_runs(platform, second)

    again = scheduled_loads(sensor_context(platform))
    assert not again.run_requests and again.skip_reason.skip_message == "no pending schedule may start"
    done = schedules.get(platform.store.db, scheduled.schedule_id)
    assert (done.state, done.runs) == ("submitted", sorted(first_runs + second_runs))


def test_a_schedule_of_a_paused_case_waits_for_its_resume_instead_of_handing_out_runs_that_claim_nothing(
    platform: Platform,
) -> None:
    """Runs requested while the case is paused would load nothing, yet the schedule would count their notices as
    handed out and never ask again: it holds them back, as behind a closed gate."""
    case = platform.sample_case(chunks=2, rows_per_chunk=2).case
    scheduled = select_notices(f"case = '{case}' and level = 1", store=platform.store).schedule()
    cases.pause(platform.ctx, case)
    assert not scheduled_loads(sensor_context(platform)).run_requests
    assert schedules.get(platform.store.db, scheduled.schedule_id).state == "pending"

    cases.resume(platform.ctx, case)
    requests = scheduled_loads(sensor_context(platform)).run_requests
    assert sorted(i for request in requests for i in requested_ids(request)) == sorted(scheduled.notice_ids)


def test_a_schedule_bigger_than_a_tick_is_served_over_several_ticks_each_marking_what_it_emitted(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from loader_assets.defs import sensors

    case = platform.sample_case(chunks=6, rows_per_chunk=2).case
    level_1 = notice_ids(platform.store.db, case, level=1)
    schedule_id = select_notices(f"case = '{case}' AND level = 1", store=platform.store).schedule().schedule_id
    monkeypatch.setattr(sensors, "NOTICES_PER_TICK", 5)
    emitted: list[int] = []
    for _tick in range(len(level_1)):
        requests = scheduled_loads(sensor_context(platform)).run_requests
        tick = [i for request in requests for i in requested_ids(request)]
        assert len(tick) <= 5 and not set(tick) & set(emitted), "asked once its runs exist, never again"
        emitted += tick
        create_runs(platform, requests)
        if not requests:
            break
    assert schedules.get(platform.store.db, schedule_id).state == "submitted"
    assert sorted(emitted) == sorted(level_1)  # each notice handed out once, none lost


def levels_of(platform: Platform, case: str, schedule_id: int, requests: list[dg.RunRequest]) -> set[str]:
    """The levels of the requests, checking that each is one run per level and worker with the schedule's tags."""
    placement = platform.cluster.placement(case_layouts(platform.store.db, case)[case].database)
    groups = set()
    for request in requests:
        tags = request.tags
        assert request.job_name == LOAD_JOB
        assert (tags["loader/case"], tags["loader/schedule"], tags["dagster/priority"]) == (case, str(schedule_id), "3")
        rows = notice_rows(platform, requested_ids(request))
        assert {(row.case, str(row.level)) for row in rows} == {(case, tags["loader/level"])}
        assert {ALL_WORKERS if row.chunk is None else placement[row.chunk] for row in rows} == {tags["loader/worker"]}
        groups.add((tags["loader/level"], tags["loader/worker"]))
    assert len(groups) == len(requests)  # one run per level and worker: the case is far below MAX_NOTICES_PER_RUN
    return {level for level, _ in groups}


def test_saved_selections_keys_follow_attempts_and_wait_for_runs_in_flight(platform: Platform) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=2).case
    saved.save(platform.store, "objects", f"case = '{case}' and table = 'Object'", priority=2)
    objects = platform.definitions().resolve_sensor_def("selection_objects")  # a sensor per saved selection
    assert "`case = " in (objects.description or "") and "priority 2" in (objects.description or "")

    first = objects(sensor_context(platform)).run_requests
    same = objects(sensor_context(platform)).run_requests
    assert first and [r.run_key for r in first] == [r.run_key for r in same]
    assert {r.tags["loader/selection"] for r in first} == {"objects"}

    failed = requested_ids(first[0])[0]
    fail_one_attempt(platform, failed)
    retry = objects(sensor_context(platform)).run_requests
    assert [requested_ids(r) for r in retry] == [requested_ids(r) for r in first]  # same runs of notices …
    changed = [requested_ids(r) for r, old in zip(retry, first, strict=True) if r.run_key != old.run_key]
    assert changed == [requested_ids(first[0])]  # … but the run holding the failed notice has a new key

    # A run of the selection that has not finished (created, not launched) holds the selection back.
    in_flight = platform.instance.create_run_for_job(
        load_notices_job, run_config=first[0].run_config, tags=first[0].tags
    )
    waiting = objects(sensor_context(platform))
    assert not waiting.run_requests
    assert f"objects: waiting for run {in_flight.run_id}" in waiting.skip_reason.skip_message
    platform.instance.report_run_canceled(in_flight)
    assert objects(sensor_context(platform)).run_requests


def test_level_gates_requests_a_validation_once_per_loaded_data(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    defs = platform.definitions()
    gates = defs.resolve_sensor_def("level_gates")

    def evaluate() -> list[dg.RunRequest]:
        return list(gates(sensor_context(platform)).run_requests or [])

    assert evaluate() == []  # nothing loaded yet
    platform.load(case, (1,))
    [request] = evaluate()
    assert request.asset_selection == [dg.AssetKey([case, "Object_gate"])]
    assert request.job_name == f"{case}_gate_level_2"
    assert (request.tags["loader/case"], request.tags["loader/level"]) == (case, "2")
    assert [r.run_key for r in evaluate()] == [request.run_key]  # same data, same key: Dagster runs it once

    platform.load(case, (2,))
    assert evaluate() == []  # the gate judged this data

    reloaded = notice_ids(platform.store.db, case, table="Object")[:1]
    plans, _ = plan_runs(platform.store, platform.cluster, reloaded, force=True)
    assert platform.succeeded(platform.run_plan(plans[0]).run_id)
    [after_reload] = evaluate()
    assert after_reload.asset_selection == request.asset_selection and after_reload.run_key != request.run_key


def materialized(platform: Platform, case: str, table: str, chunks: list[int]) -> dict[int, bool]:
    """Whether the UI shows each chunk of the table materialized (Dagster's partition status)."""
    keys = [str(chunk) for chunk in chunks]
    shown = platform.instance.get_status_by_partition(table_key(case, table), keys, chunk_partitions(case)) or {}
    return {int(k): shown.get(k) == dg.AssetPartitionStatus.MATERIALIZED for k in keys}


class ReportTicks:
    """`unreported_loads` ticks as the daemon runs them: the cursor carried over, the events stored."""

    def __init__(self, platform: Platform) -> None:
        self.platform, self.cursor = platform, None
        self.sensor = platform.definitions().resolve_sensor_def("unreported_loads")

    def __call__(self) -> list[dg.AssetMaterialization]:
        context = sensor_context(self.platform)
        context.update_cursor(self.cursor)
        result = self.sensor(context)
        self.cursor = result.cursor
        events = list(result.asset_events or [])
        for event in events:
            self.platform.instance.report_runless_asset_event(event)
        return events


def chunks_of(platform: Platform, case: str, table: str) -> list[int]:
    n = notices.c
    with platform.store.db.read() as connection:
        query = select(n.chunk).where(n.case == case, n.table == table).distinct().order_by(n.chunk)
        return list(connection.execute(query).scalars())


def test_loaded_chunks_dagster_lost_are_materialized_again_from_the_catalog(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    platform.load(case, (1,))
    tick, chunks = ReportTicks(platform), chunks_of(platform, case, "Object")
    assert tick() == []  # every chunk was reported by its run
    assert tick() == []

    platform.instance.wipe_assets([table_key(case, "Object"), table_key(case, "Filter")])
    assert materialized(platform, case, "Object", chunks) == dict.fromkeys(chunks, False)
    events = tick()
    assert sorted((e.asset_key.path[1], e.partition) for e in events) == [
        ("Filter", None), *(("Object", str(c)) for c in chunks)
    ]  # fmt: skip
    for event in events:  # what the catalog says was loaded: the chunk file and its overlap file, their attempts
        done = [f for f in done_files(platform.store.db, case, "Object") if str(f.chunk) == event.partition]
        if event.partition is not None:
            assert event.metadata["files"].value == [f.path for f in done]
            assert event.metadata["rows"].value == sum(f.rows for f in done)
            assert event.metadata["attempt ids"].value == [f.attempt_id for f in done]
    assert materialized(platform, case, "Object", chunks) == dict.fromkeys(chunks, True)
    assert tick() == []


def test_a_chunk_is_left_to_its_run_while_the_run_may_still_report_it(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    ids = notice_ids(platform.store.db, case, table="Object")
    config = {"ops": {SPLIT_OP: {"config": {"notice_ids": ids}}}}
    run = platform.instance.create_run_for_job(load_notices_job, run_config=config)  # not started: in flight
    tick = ReportTicks(platform)
    for claim in platform.store.claim(ids, Owner.current(run.run_id)):  # this process: alive
        platform.store.finish(claim.attempt_id, "done", rows=5)
    assert tick() == []  # the run reports them itself

    with platform.store.db.write() as connection:  # as if the run ran on another host: a pid there is not seen
        connection.execute(update(attempts).where(attempts.c.notice.in_(ids)).values(host="elsewhere"))
    assert tick() == []  # finished within a lease: the run may still report them
    with platform.store.db.write() as connection:
        then = utcnow() - platform.store.lease - timedelta(seconds=1)
        connection.execute(update(attempts).where(attempts.c.notice.in_(ids)).values(finished_at=then))
    assert sorted(e.partition for e in tick()) == [str(c) for c in chunks_of(platform, case, "Object")]


def test_a_chunk_a_later_run_planned_is_reported_once(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=5).case
    platform.load(case, (1,))
    tick, [chunk, other] = ReportTicks(platform), chunks_of(platform, case, "Object")
    key = table_key(case, "Object")

    def shown() -> dg.AssetPartitionStatus | None:
        return (platform.instance.get_status_by_partition(key, [str(chunk)], chunk_partitions(case)) or {}).get(
            str(chunk)
        )

    planned = planned_run(platform, case, chunk)  # a UI "materialize" of a loaded chunk, queued
    assert shown() == dg.AssetPartitionStatus.IN_PROGRESS
    assert tick() == []  # its load was reported by the run that loaded it
    platform.instance.report_run_failed(planned)
    assert shown() == dg.AssetPartitionStatus.FAILED
    assert tick() == []

    platform.instance.wipe_assets([key])
    planned_run(platform, case, chunk)
    assert shown() == dg.AssetPartitionStatus.IN_PROGRESS
    reported = [e for e in tick() if e.asset_key == key]  # their loads' events are gone: reported again
    assert sorted(e.partition for e in reported) == sorted([str(chunk), str(other)])  # in progress or not
    assert all(e.description.startswith("reported from the catalog") for e in reported)


def planned_run(platform: Platform, case: str, chunk: int) -> dg.DagsterRun:
    """A run of the Object asset planned on one chunk (not started)."""
    key = table_key(case, "Object")
    layout = case_layouts(platform.store.db, case)[case]
    job = dg.define_asset_job("materialize_object", selection=[key])
    resources = default_resources(platform.ctx.settings.catalog_url)
    job_def = dg.Definitions(assets=case_assets(layout), jobs=[job], resources=resources).resolve_job_def(job.name)
    return platform.instance.create_run_for_job(
        job_def, asset_selection=frozenset([key]), tags={"dagster/partition": str(chunk)}
    )

"""Fenced gates on real workers, catalogs and a Dagster instance: every interleaving driven by hooks and
barriers, never by sleeps."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from pathlib import Path

import dagster as dg
import pytest

from loader_assets.catalog.claims import Refusal
from loader_assets.catalog.gates import ValidationBusy, gate
from loader_assets.catalog.layout import CaseLayout, case_layout
from loader_assets.catalog.notices import notice_ids
from loader_assets.catalog.register import register_case
from loader_assets.catalog.store import Owner, Store
from loader_assets.defs import platform as platform_module
from loader_assets.defs.resources import CatalogResource, ClusterResource
from loader_assets.engine.load import Loader
from loader_assets.engine.runner import LevelFailed
from loader_assets.engine.validate import validate_table
from loader_assets.settings import Settings
from loader_assets.workers.cluster import Cluster
from loader_assets_tests.conftest import Platform

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def quiet(_: str) -> None:
    pass


def loaded(platform: Platform, levels: tuple[int, ...] = (1,)) -> CaseLayout:
    case = platform.sample_case(chunks=2, rows_per_chunk=20).case
    platform.load(case, levels)
    return case_layout(platform.store.db, case)


def director_gate(platform: Platform, layout: CaseLayout):  # type: ignore[no-untyped-def]
    return gate(platform.store.db, layout.case, 2, "Object")


def gate_requests(platform: Platform, layout: CaseLayout) -> list[dg.RunRequest]:
    """One tick of the level_gates sensor, as the daemon would evaluate it."""
    defs = platform.definitions()
    sensor = defs.resolve_sensor_def("level_gates")
    context = dg.build_sensor_context(
        instance=platform.instance,
        resources={"catalog": CatalogResource(), "cluster": ClusterResource()},
        definitions=defs,
    )
    result = sensor(context)
    return [r for r in (result.run_requests or []) if r.tags["loader/case"] == layout.case]


def run_requested(platform: Platform, request: dg.RunRequest) -> None:
    defs = platform.definitions()
    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection=set(request.asset_selection or []))
    job.execute_in_process(instance=platform.instance, tags=request.tags, raise_on_error=False)


def test_a_director_reloaded_after_its_pass_reopens_the_gate_until_the_sensor_validates_again(
    platform: Platform,
) -> None:
    layout = loaded(platform, levels=(1, 2))
    assert director_gate(platform, layout).status == "passed"
    store, objects = platform.store, notice_ids(platform.store.db, layout.case, table="Object")

    [reload] = store.claim(objects[:1], Owner.current("reloading-run"), force=True)
    assert director_gate(platform, layout).status == "pending"
    children = notice_ids(store.db, layout.case, level=3)
    assert store.claim(children, Owner.current("child-run")) == []
    refused = store.why_not_claimed(children)
    assert {r.reason for r in refused.values()} == {Refusal.GATE_CLOSED}
    assert refused[children[0]] == f"level 2 of case {layout.case} (Object) is pending"

    assert gate_requests(platform, layout) == [], "the director is reloading: nothing to validate yet"
    store.finish(reload.attempt_id, "failed", error="stopped by the test")
    Loader(store, platform.cluster).load(objects[:1], Owner.current("reload"), force=True)
    [request] = gate_requests(platform, layout)
    run_requested(platform, request)
    assert director_gate(platform, layout).status == "passed"
    assert len(store.claim(children, Owner.current("child-run"))) == len(children)


def test_a_director_file_registered_while_a_validation_runs_drops_its_verdict(platform: Platform) -> None:
    layout = loaded(platform)
    table = layout.tables["Object"]
    changed = sorted(Path(layout.root).glob("step1_1/Object/chunk_*[0-9].txt"))[0]

    def register_a_changed_file() -> None:  # between the checks and the verdict
        changed.write_bytes(changed.read_bytes())  # same rows, new mtime: a changed file to load again
        os.utime(changed, (1, 1))
        register_case(platform.store, Path(layout.root), layout.case)

    before = director_gate(platform, layout).generation
    validation = validate_table(platform.store, platform.cluster, layout, table, "run-v", quiet,
                                before_verdict=register_a_changed_file)  # fmt: skip
    assert not validation.recorded and not validation.failed, "the checks passed, but on data now replaced"
    after = director_gate(platform, layout)
    assert (after.status, after.validating_run) == ("pending", None) and after.generation > before


def test_a_verdict_load_drops_fails_its_level_and_shows_no_check_result(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = loaded(platform)
    changed = sorted(Path(layout.root).glob("step1_1/Object/chunk_*[0-9].txt"))[0]

    def register_a_changed_file() -> None:
        os.utime(changed, (1, 1))
        register_case(platform.store, Path(layout.root), layout.case)

    def validated_meanwhile(*args: object, **options: object) -> object:
        return validate_table(*args, before_verdict=register_a_changed_file, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(platform_module, "validate_table", validated_meanwhile)
    with pytest.raises(LevelFailed, match="validation did not run to the end \\(Object: verdict dropped"):
        platform.load(layout.case, (2,))
    assert director_gate(platform, layout).status == "pending"
    key = dg.AssetKey([layout.case, "Object_gate"])
    check = dg.AssetCheckKey(key, "objectids_on_workers")
    assert platform.instance.get_latest_materialization_event(key) is None
    assert platform.instance.event_log_storage.get_latest_asset_check_execution_by_key([check]) == {}


def _validate_until_killed(catalog_url: str, case: str, ready: multiprocessing.synchronize.Event) -> None:
    """A validation process that holds the gate's lock and waits to be killed before its verdict."""
    os.environ["LOADER_CATALOG_URL"] = catalog_url
    store = Store.from_url(catalog_url)
    cluster = Cluster.of(Settings.from_env())
    layout = case_layout(store.db, case)
    block = threading.Event()

    def hold() -> None:
        ready.set()
        block.wait()  # until SIGKILL

    validate_table(store, cluster, layout, layout.tables["Object"], "doomed-run", quiet, before_verdict=hold)


def test_a_killed_validation_is_requested_again(platform: Platform) -> None:
    layout = loaded(platform)
    [first] = gate_requests(platform, layout)
    spawn = multiprocessing.get_context("spawn")
    ready = spawn.Event()
    process = spawn.Process(target=_validate_until_killed, args=(platform.store.db.url, layout.case, ready))
    process.start()
    try:
        assert ready.wait(120), "the validation never reached its verdict"
        assert gate_requests(platform, layout) == [], "a live validation holds the gate"
        os.kill(process.pid, signal.SIGKILL)
        process.join()
        [again] = gate_requests(platform, layout)
    finally:
        if process.is_alive():
            process.kill()
    assert again.run_key != first.run_key, "a new run, not the dead one's key"
    run_requested(platform, again)
    assert director_gate(platform, layout).status == "passed"


def test_two_validations_of_one_table_at_once_run_one(platform: Platform) -> None:
    layout = loaded(platform)
    table = layout.tables["Object"]
    holding, release = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def first() -> None:
        def wait() -> None:
            holding.set()
            release.wait(120)

        outcome["first"] = validate_table(platform.store, platform.cluster, layout, table, "run-1", quiet,
                                          before_verdict=wait)  # fmt: skip

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(120)
        with pytest.raises(
            ValidationBusy, match=f"level 2 of case {layout.case} \\(Object\\) is being validated by run-1 \\(process"
        ):
            validate_table(platform.store, platform.cluster, layout, table, "run-2", quiet)
    finally:
        release.set()
        thread.join()
    assert outcome["first"].recorded  # type: ignore[attr-defined]
    assert (director_gate(platform, layout).status, director_gate(platform, layout).check_run) == ("passed", "run-1")


def test_a_bug_in_loads_validation_fails_its_level_in_one_line(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = loaded(platform)

    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("a bug\nits second line")

    monkeypatch.setattr(platform_module, "validate_table", broken)
    with pytest.raises(LevelFailed, match=r"validation did not run to the end \(Object: RuntimeError: a bug\)"):
        platform.load(layout.case, (2,))

"""A run loads into all its workers at once: the first file of each worker waits at a barrier until the
other worker's first file reaches it too, which one-worker-at-a-time loading never does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.notices import done_files, notice_ids
from loader_assets.catalog.store import Owner
from loader_assets.engine import load
from loader_assets.engine.load import Loader
from loader_assets.workers import load_data
from loader_assets.workers.ddl import index_is_current, index_version
from loader_assets_tests.conftest import Platform

pytestmark = pytest.mark.parametrize("catalog_url", ["sqlite"], indirect=True)


def test_a_run_loads_into_every_worker_at_once(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    case = platform.sample_case(chunks=4, rows_per_chunk=50).case
    workers = sorted(platform.cluster.workers)
    together = threading.Barrier(len(workers), timeout=30)
    held: list[Path] = []
    lock = threading.Lock()

    def wait_for_the_other_workers(path: Path) -> Path:
        with lock:
            held.append(path)
            first_ones = len(held) <= len(workers)
        if first_ones:
            together.wait()  # loading one worker after the other breaks the barrier: the load fails
        return path

    monkeypatch.setattr(load_data, "TRANSIT", wait_for_the_other_workers)
    ids = notice_ids(platform.store.db, case, table="Object")
    report = Loader(platform.store, platform.cluster, streams=1).load(ids, Owner.current("streams"), progress=print)

    assert not report.failed and len(report.loaded) == len(ids)
    placement = platform.cluster.placement(case)
    chunk_of = {item.path.rsplit("/", 1)[-1]: item.chunk for item in report.loaded}
    assert sorted(placement[chunk_of[path.name]] for path in held[: len(workers)]) == workers
    assert [t.worker for t in report.throughput()] == workers


def test_the_director_index_takes_several_chunks_a_build_while_its_level_loads(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first build is held until every chunk has loaded: the next build takes all the others at once, and
    the czar's index holds every chunk at its version once the level returns (level 2 then only verifies)."""
    case = platform.sample_case(chunks=6, rows_per_chunk=50).case
    ids = notice_ids(platform.store.db, case, table="Object")
    chunks = {int(p.name.split("_")[1].split(".")[0]) for p in (platform.root / "cases" / case).rglob("Object/chunk_*")
              if "overlap" not in p.name}  # fmt: skip
    builds: list[list[int]] = []
    checked: list[int] = []
    all_loaded, lock = threading.Event(), threading.Lock()
    build, check_soon = load.build_director_index, Loader._check_chunk_soon

    def held_build(cluster, db, director, key, placed, versions):  # type: ignore[no-untyped-def]
        builds.append(sorted(placed))
        if len(builds) == 1:
            assert all_loaded.wait(timeout=30)
        return build(cluster, db, director, key, placed, versions)

    def counting(self: Loader, layout, claim, *args):  # type: ignore[no-untyped-def]
        check_soon(self, layout, claim, *args)  # the chunk is queued for its build
        with lock:
            checked.extend([] if claim.overlap else [claim.chunk])
            if len(checked) == len(chunks):
                all_loaded.set()

    monkeypatch.setattr(load, "build_director_index", held_build)
    monkeypatch.setattr(Loader, "_check_chunk_soon", counting)
    report = Loader(platform.store, platform.cluster).load(ids, Owner.current("index"), progress=print)

    assert not report.failed and len(report.loaded) == len(ids)
    assert len(builds) <= 2 and sorted(chunk for placed in builds for chunk in placed) == sorted(chunks)
    layout = case_layouts(platform.store.db, case)[case]
    done = done_files(platform.store.db, case, "Object")
    versions = {
        chunk: index_version(layout.incarnation, [f.attempt_id for f in done if f.chunk == chunk and not f.overlap])
        for chunk in {f.chunk for f in done}
    }
    assert index_is_current(platform.cluster, layout.database, "Object", versions)


def test_a_workers_tables_are_made_while_its_first_file_loads(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker's first file is held in transit until every table of that worker exists (a chunk's table and its
    FullOverlap twin): only tables made ahead of the streams let it through, a stream makes one just before its
    load."""
    case = platform.sample_case(chunks=6, rows_per_chunk=50).case
    ids = notice_ids(platform.store.db, case, table="Object")
    chunks = {int(p.name.split("_")[1].split(".")[0]) for p in (platform.root / "cases" / case).rglob("Object/chunk_*")}
    made: dict[str, set[str]] = {}
    changed = threading.Condition()
    create = Loader._create

    def counting(self: Loader, worker: str, name: str, *args, **kw):  # type: ignore[no-untyped-def]
        created = create(self, worker, name, *args, **kw)
        with changed:
            made.setdefault(worker, set()).add(name)
            changed.notify_all()
        return created

    held: set[str] = set()

    def hold_the_first_file(path: Path) -> Path:
        placement = platform.cluster.placement(case)  # decided at the czar before anything loads
        worker = placement[int(path.name.split("_")[1].split(".")[0])]
        wanted = 2 * sum(1 for chunk in chunks if placement[chunk] == worker)
        with changed:
            if worker not in held:
                held.add(worker)
                all_made = changed.wait_for(lambda: len(made.get(worker, ())) >= wanted, timeout=30)
                assert all_made, f"{worker}'s tables were not made ahead of its stream"
        return path

    monkeypatch.setattr(Loader, "_create", counting)
    monkeypatch.setattr(load_data, "TRANSIT", hold_the_first_file)
    report = Loader(platform.store, platform.cluster, streams=1).load(ids, Owner.current("ahead"), progress=print)

    assert not report.failed and len(report.loaded) == len(ids)
    assert sorted(held) == sorted(platform.cluster.workers)


def test_no_table_is_made_ahead_for_a_notice_whose_lease_is_lost(platform: Platform) -> None:
    case = platform.sample_case(chunks=2, rows_per_chunk=10).case
    claims = platform.store.claim(notice_ids(platform.store.db, case, table="Object"), Owner.current("lost"))

    class LeaseLost:  # what the heartbeat says of a run frozen past its lease
        def still_held(self, notice_id: int, *, fresh: bool = False) -> bool:
            return False

    loader = Loader(platform.store, platform.cluster)
    for worker in platform.cluster.workers:
        loader._prepare_ahead(worker, claims, LeaseLost(), threading.Event())  # type: ignore[arg-type]
    database = case_layouts(platform.store.db, case)[case].database
    for server in platform.cluster.workers.values():
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
            assert cursor.fetchone()[0] == 0
    platform.store.give_back([claim.attempt_id for claim in claims], "test over")

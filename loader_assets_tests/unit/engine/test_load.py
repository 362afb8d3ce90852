"""The heartbeat of a load, its report and chunk placement (no worker is touched)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from loader_assets.catalog.claims import Refusal, Refused
from loader_assets.catalog.layout import case_layout
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Store
from loader_assets.engine.load import Heartbeat, Loaded, LoadReport, busy_seconds
from loader_assets.engine.targets import chunk_sizes, place_chunks
from loader_assets.problems import CatalogDown
from loader_assets_tests.unit.fakes import FakeCluster, FakeLeaseStore
from loader_assets_tests.unit.helpers import CASE


def heartbeat(store: FakeLeaseStore, claimed: set[int], lease: float = 240.0) -> Heartbeat:
    return Heartbeat(store, "run-a", {notice: 100 + notice for notice in claimed}, lease)


def test_a_beat_reports_the_notices_the_run_lost() -> None:
    beat = heartbeat(FakeLeaseStore(held={1, 2}), {1, 2, 3})
    beat.beat()
    assert beat.lost == {3}


def test_a_notice_the_run_finished_is_not_reported_lost() -> None:
    beat = heartbeat(FakeLeaseStore(held={1}), {1, 2})
    beat.done_with(2)
    beat.beat()
    assert beat.lost == set()


def test_a_failing_catalog_does_not_kill_the_heartbeat() -> None:
    store = FakeLeaseStore(held={1}, failures=1)
    beat = heartbeat(store, {1, 2})
    beat.beat()  # raises inside: logged, nothing concluded
    assert beat.lost == set()
    beat.beat()
    assert (beat.lost, store.calls) == ({2}, [[101, 102], [101, 102]]), "each beat renews the attempts held"


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (ConnectionError("catalog unreachable"), "the leases of run run-a went unconfirmed for over 240 s: catalog "
                                                 "unreachable; bring the catalog back"),
        (CatalogDown("the catalog at X cannot be used", "start its server"), "the catalog at X cannot be used; "
                                                                             "start its server"),
    ],
)  # fmt: skip
def test_a_lease_unconfirmed_for_a_whole_lease_is_the_catalogs_failure_not_still_held(
    error: Exception, said: str
) -> None:
    store = FakeLeaseStore(held={1}, failures=2, error=error)
    beat = heartbeat(store, {1})
    beat.beaten_at -= beat.lease / 2  # a frozen process resumed: its last beat long ago, the catalog down
    assert beat.still_held(1), "within its lease a failed beat concludes nothing"
    beat.beaten_at -= beat.lease
    with pytest.raises(CatalogDown) as raised:
        beat.still_held(1)
    assert str(raised.value).startswith(said) and raised.value is not error
    assert beat.still_held(1) and store.calls == [[101]] * 3, "a beat that goes through confirms it again"


def test_the_heartbeat_thread_keeps_beating_after_an_error_until_stopped() -> None:
    store = FakeLeaseStore(held={1}, failures=1, wanted=3)
    beat = heartbeat(store, {1}, lease=0.004)
    beat.start()
    try:
        assert store.beats.wait(timeout=5), "the thread stopped beating after the first error"
    finally:
        beat.stop()
        beat.join(timeout=5)
    assert not beat.is_alive()
    assert beat.daemon, "a forgotten heartbeat never keeps a process alive"


def loaded(notice_id: int, chunk: int | None, rows: int, overlap: bool = False, table: str = "Object") -> Loaded:
    return Loaded(notice_id, 100 + notice_id, CASE, table, chunk, overlap, f"f{notice_id}.txt", "w1", rows, 10, 0.5)


def test_a_report_counts_rows_and_picks_out_gate_refusals() -> None:
    gate = Refused(Refusal.GATE_CLOSED, "level 2 of case c1 (Object) is pending")
    report = LoadReport(
        loaded=[loaded(1, 5, 3), loaded(2, 5, 4, overlap=True)],
        skipped={7: gate, 8: Refused(Refusal.HELD, "held by run run-b")},
    )
    assert report.rows == 7
    assert report.gate_refusals == [gate]


def test_busy_seconds_count_overlapping_streams_once() -> None:
    assert busy_seconds([]) == 0.0
    assert busy_seconds([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0), (5.5, 5.8)]) == 4.0


def test_throughput_is_per_worker_over_the_time_its_streams_were_busy() -> None:
    def on(worker: str, notice_id: int, started: float, seconds: float) -> Loaded:
        return replace(loaded(notice_id, notice_id, 1000), worker=worker, bytes=2_000_000, started=started,
                       seconds=seconds)  # fmt: skip

    report = LoadReport(loaded=[on("w1", 1, 0.0, 2.0), on("w1", 2, 1.0, 2.0), on("w2", 3, 0.0, 1.0)])
    w1, w2 = report.throughput()
    assert (w1.worker, w1.files, w1.rows, w1.busy_seconds, w1.wall_seconds) == ("w1", 2, 2000, 3.0, 3.0)
    assert (w2.busy_seconds, round(w2.busy_share, 2)) == (1.0, 0.33)
    assert "2,000 rows, 4.0 MB in 3.0 s (667 rows/s, 1.3 MB/s, busy 100%)" in w1.line()


def test_chunk_sizes_add_up_per_chunk_and_leave_out_regular_tables() -> None:
    assert chunk_sizes([(5, 10), (6, 1), (5, 2), (None, 99)]) == {5: 12, 6: 1}


def test_place_chunks_registers_the_database_once_there_is_something_to_place(
    store: Store, sample: Registration, cluster: FakeCluster
) -> None:
    layout = case_layout(store.db, CASE)
    assert place_chunks(cluster, layout, {}) == {}
    assert cluster.databases == {}, "nothing to place: the czar is not asked"
    first, second = sample.chunks
    assert place_chunks(cluster, layout, {second: 5, first: 7}) == {first: "w1", second: "w2"}
    assert cluster.databases == {CASE: (layout.num_stripes, layout.num_sub_stripes, layout.overlap)}

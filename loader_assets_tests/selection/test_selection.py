"""Selections, saved selections and their CLI against the example catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from typing import Any

import matplotlib
import pandas as pd
import pytest
from dagster import DagsterInstance
from sqlalchemy import func, select

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import notices, schedules, selections
from loader_assets.catalog.store import Owner, Store, utcnow
from loader_assets.catalog.views import SHOWN_STATUSES
from loader_assets.cli import main
from loader_assets.defs.platform import DagsterPlatform
from loader_assets.problems import BadInput, Failed, Unknown
from loader_assets.selection import QueryError, saved, select_batches
from loader_assets.selection import select as select_notices
from loader_assets.selection.selection import NOTICE_FRAME_FIELDS, Scheduled, SchedulePreview, Selection
from loader_assets.settings import Settings
from loader_assets_tests.selection.example_catalog import EXAMPLE_NOW, build_example_catalog, set_gate

matplotlib.use("Agg")

NOW = EXAMPLE_NOW
DC2_SCHEDULABLE = [19, 12, 18, 20, 21, 22, 24]  # priority 10, 5, then by id; 10 and 25 parked, 11 backing off


@pytest.fixture
def store(catalog_db: CatalogDB) -> Store:
    build_example_catalog(catalog_db, NOW)
    return Store(catalog_db, lease_seconds=300)


def sel(store: Store, query: str) -> Selection:
    return select_notices(query, store=store, now=NOW)


def catalog_rows(store: Store, ids: list[int]) -> dict[int, Any]:
    with store.db.read() as connection:
        return {row.id: row for row in connection.execute(select(notices).where(notices.c.id.in_(ids)))}


def count_rows(store: Store, table: Any) -> int:
    with store.db.read() as connection:
        return connection.execute(select(func.count()).select_from(table)).scalar_one()


# ------------------------------------------------------------------------------------------ selecting


def test_select_gives_a_frame_by_notice_id_with_the_batch_fields(store: Store) -> None:
    selection = sel(store, "case = dc2 AND level = 3 AND status = failed")
    assert selection.ids == [18, 20, 25]
    assert selection.freeze() == (18, 20, 25)
    assert list(selection.frame.columns) == [name for name in NOTICE_FRAME_FIELDS if name != "id"]
    row = selection.frame.loc[25]
    assert (row["table"], row["step"], row["task"], row["directory"]) == ("ForcedSource", 3, 1, "step3_1")
    assert (row["attempts"], row["chunk"], row["retry_after"]) == (4, 57867, NOW - pd.Timedelta(hours=1.5))
    assert str(selection.frame["chunk"].dtype) == "Int64", "an integer column with NULLs stays integer"


def test_select_batches_derives_status_and_gives_their_notices(store: Store) -> None:
    batches = select_batches("status = failed AND level = 1", store=store, now=NOW)
    assert batches.ids == [2, 7]
    assert batches.frame.loc[2, ["notices", "ready", "running", "done", "failed"]].tolist() == [5, 1, 1, 1, 2]
    assert batches.notices().ids == [9, 10, 11, 12, 13, 27, 28, 29]
    assert batches.drop([2]).notices().ids == [27, 28, 29]
    assert select_batches("id = 99", store=store).notices().ids == []
    assert batches.summary().loc[("dc2", 1), "failed"] == 1


def test_bad_query_raises_query_error_with_position(store: Store) -> None:
    with pytest.raises(QueryError) as error:
        sel(store, "status = faild")
    assert error.value.position == 9 and "did you mean: failed" in str(error.value)


# ------------------------------------------------------------------------------------------ summary


def test_summary_counts_locks_and_refusals_by_reason(store: Store) -> None:
    summary = sel(store, "all").summary(max_attempts=3)
    assert summary.counts.loc[("dc2", 1)].tolist() == [1, 1, 10, 2, 14]  # ready running done failed total
    assert summary.counts.loc[("dp02", 3)].tolist() == [1, 0, 0, 0, 1]
    assert summary.locks["notices"].to_dict() == {"run-7f3a": 1, "run-9c21": 2}
    assert summary.locks["stale"].to_dict() == {"run-7f3a": 1, "run-9c21": 0}
    assert summary.refusals["notices"].to_dict() == {"gate closed": 1, "parked": 2, "backing off": 1}
    assert "locks held now, by run" in str(summary) and "<h4>" in summary._repr_html_()

    store.set_case_state("dc2", "paused")
    summary = sel(store, "all").summary(max_attempts=3)
    # every ready/failed dc2 notice is refused for the pause first, whatever else holds it back
    assert summary.refusals["notices"].to_dict() == {"case paused": 10, "gate closed": 1}
    assert sel(store, "id = 1").summary().refusals.empty


def test_repr_plot_and_grid_show_the_selection(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    selection = sel(store, "level = 1")
    assert repr(selection).startswith("17 notices selected by 'level = 1', first 10 shown")
    assert "<table" in selection._repr_html_()
    ax = selection.plot()
    assert len(ax.patches) == len(SHOWN_STATUSES), "one bar per status (gate-blocked, parked apart) for the level"
    assert sel(store, "id = 99").plot().get_title().startswith("no notices")
    selection.grid()
    assert capsys.readouterr().out, "itables shows something even outside a notebook"


# ------------------------------------------------------------------------------------------ drop, keep, edit


def test_drop_and_keep_return_new_selections_and_name_unknown_ids(store: Store) -> None:
    selection = sel(store, "table = Source")
    assert selection.drop([16, 17]).ids == [15, 18, 19, 20, 21, 22, 23, 30]
    assert selection.keep([30, 15]).ids == [15, 30]
    assert len(selection) == 10, "the original is unchanged"
    with pytest.raises(BadInput, match="not in this selection of notices: 1, 2"):
        selection.keep([2, 15, 1])
    with pytest.raises(BadInput, match="99"):
        selection.drop([99])


def test_edit_matches_rows_by_id_not_position_and_apply_writes_priority_and_comment(store: Store) -> None:
    selection = sel(store, "case = dc2 AND level = 3 AND status = ready")  # 19 21 22 24
    edited = selection.frame.reset_index().sample(frac=1, random_state=7).reset_index(drop=True)
    assert edited["id"].tolist() != selection.ids, "rows are shuffled"
    edited.loc[edited["id"] == 21, "priority"] = 42
    edited.loc[edited["id"] == 24, "comment"] = "load before the others"
    edited = edited[edited["id"] != 22]

    result = selection.edit(edited)
    assert result.ids == [19, 21, 24]
    assert result.frame.loc[21, "priority"] == 42 and result.frame.loc[19, "priority"] == 10
    assert result.pending_edits().index.tolist() == [21, 24]
    before = catalog_rows(store, [19, 21, 22, 24])
    assert before[21].priority == 0, "nothing is written before apply_edits"

    assert result.apply_edits() == 2
    after = catalog_rows(store, [19, 21, 22, 24])
    assert (after[21].priority, after[21].comment) == (42, None)
    assert (after[24].priority, after[24].comment) == (0, "load before the others")
    assert after[19] == before[19] and after[22] == before[22]
    assert [after[i].status for i in (21, 24)] == ["ready", "ready"]
    assert result.apply_edits() == 0, "applied edits are not written twice"


def test_edit_accepts_the_id_index_and_refuses_status_and_unknown_ids(store: Store) -> None:
    selection = sel(store, "batch = 4")  # 20 21 22 23
    indexed = selection.frame.iloc[::-1].copy()
    indexed.loc[22, "comment"] = None
    assert selection.edit(indexed).pending_edits().index.tolist() == [22]

    changed_status = selection.frame.copy()
    changed_status.loc[20, "status"] = "ready"
    with pytest.raises(BadInput, match="not status of 20; status and locks change through the Store"):
        selection.edit(changed_status)
    with pytest.raises(BadInput, match="not in this selection of notices: 1"):
        selection.edit(sel(store, "id IN (1, 20)").frame)
    bad_priority = selection.frame.copy()
    bad_priority["priority"] = bad_priority["priority"].astype(float)
    bad_priority.loc[21, "priority"] = 1.5
    with pytest.raises(BadInput, match="priority is not a whole number for notices 21"):
        selection.edit(bad_priority)
    with pytest.raises(BadInput, match="never by position"):
        selection.edit(selection.frame.reset_index(drop=True))


# ------------------------------------------------------------------------------------------ scheduling


def test_schedule_writes_one_pending_row_and_dry_run_writes_nothing(store: Store) -> None:
    selection = sel(store, "case = dc2 AND status IN (ready, failed)").drop([25])
    preview = selection.schedule(priority=3, dry_run=True)
    assert isinstance(preview, SchedulePreview)
    assert preview.counts["requested"].to_dict() == {("dc2", 1): 3, ("dc2", 3): 6}
    assert count_rows(store, schedules) == 0

    scheduled = selection.schedule(priority=3, force=True)
    assert isinstance(scheduled, Scheduled) and scheduled.notice_ids == (10, 11, 12, 18, 19, 20, 21, 22, 24)
    with store.db.read() as connection:
        row = connection.execute(select(schedules)).one()
    assert (row.id, row.notice_ids, row.priority, row.force) == (
        scheduled.schedule_id,
        [10, 11, 12, 18, 19, 20, 21, 22, 24],
        3,
        True,
    )
    assert (row.state, row.query, row.runs) == ("pending", "case = dc2 AND status IN (ready, failed)", None)
    with pytest.raises(BadInput, match="nothing to schedule"):
        sel(store, "id = 99").schedule()


def test_watch_reports_progress_until_nothing_is_ready_or_running(store: Store) -> None:
    runs = DagsterPlatform(Settings.from_env({}), DagsterInstance.ephemeral())
    scheduled = sel(store, "id IN (21, 22)").schedule()
    assert scheduled.run_ids(runs) == []

    lines: list[str] = []
    first_line = threading.Event()

    def told(line: str) -> None:
        lines.append(line)
        first_line.set()

    def load_them() -> None:  # once the watch has told the state before the load
        assert first_line.wait(timeout=30)
        for claim in store.claim([21, 22], Owner.current("run-watch")):
            store.finish(claim.attempt_id, "done" if claim.notice_id == 21 else "failed", rows=1, error="x")

    loader = threading.Thread(target=load_them)
    loader.start()
    final = scheduled.watch(timeout=30, interval=0.05, progress=told, runs=runs)
    loader.join()
    assert final["notices"].to_dict() == {"ready": 0, "running": 0, "done": 1, "failed": 1}
    assert lines[0].endswith("2 notices: ready 2, running 0, done 0, failed 0 | runs: none yet")
    assert lines[-1].endswith("done 1, failed 1 | runs: none yet") and len(lines) == len(set(lines))

    waiting = sel(store, "id IN (19, 24, 1)").schedule()
    with pytest.raises(Failed, match=r"2 notices are still ready or running: 19, 24;"):
        waiting.watch(timeout=0.1, interval=0.05, progress=lines.append, runs=runs)


# ------------------------------------------------------------------------------------------ saved selections


def test_saved_selections_are_created_updated_listed_enabled_and_deleted(store: Store) -> None:
    saved.save(store, "dc2_sources", "case = dc2 AND table = Source", priority=2, comment="first")
    saved.save(store, "failed_batches", "status = failed", target="batches", enabled=False)
    saved.save(store, "dc2_sources", "case = dc2 AND table = Source AND level = 3", priority=5)
    frame = saved.list_saved(store).set_index("name")
    assert frame.index.tolist() == ["dc2_sources", "failed_batches"]
    assert frame.loc["dc2_sources", ["query", "priority", "comment"]].tolist() == [
        "case = dc2 AND table = Source AND level = 3", 5, None]  # fmt: skip
    assert frame.loc["failed_batches", ["target", "enabled"]].tolist() == ["batches", False]

    saved.set_enabled(store, "failed_batches", True)
    assert [s.name for s in saved.saved_selections(store, enabled_only=True)] == ["dc2_sources", "failed_batches"]
    saved.delete(store, "dc2_sources")
    assert count_rows(store, selections) == 1
    with pytest.raises(Unknown, match="no saved selection nope"):
        saved.set_enabled(store, "nope", False)
    with pytest.raises(Unknown, match="dc2_sources"):
        saved.delete(store, "dc2_sources")


def test_save_refuses_bad_names_targets_and_queries(store: Store) -> None:
    with pytest.raises(BadInput, match="invalid"):
        saved.save(store, "my selection", "all")
    with pytest.raises(BadInput, match="target 'files' is not one of notices, batches"):
        saved.save(store, "x", "all", target="files")
    with pytest.raises(QueryError):
        saved.save(store, "x", "notices > 3")  # a batch field: checked against the target's fields
    with pytest.raises(QueryError):
        saved.save(store, "x", "chunk = 3", target="batches")
    assert count_rows(store, selections) == 0


def test_matching_schedulable_honours_parked_backoff_pause_gate_and_locks(store: Store) -> None:
    def matching(name: str, limit: int = 100) -> list[int]:
        return saved.matching_schedulable(store, name, NOW, limit, max_attempts=3)

    saved.save(store, "dc2", "case = dc2")
    saved.save(store, "dp02", "case = dp02")
    saved.save(store, "failed_children", "status = failed AND level = 3", target="batches")
    assert matching("dc2") == DC2_SCHEDULABLE
    assert matching("dc2", limit=3) == DC2_SCHEDULABLE[:3]
    assert matching("failed_children") == [19, 18, 20, 21, 22, 24]
    assert matching("dp02") == [28, 29], "notice 30 waits for its director's gate"

    set_gate(store.db, "dp02", 2, "Object", "passed")
    assert matching("dp02") == [28, 29, 30]
    store.claim([21], Owner.current("run-a"), now=NOW)
    assert 21 not in matching("dc2")
    assert saved.matching_schedulable(store, "dc2", NOW, 100, max_attempts=5) == [19, 12, 10, 18, 20, 22, 24, 25]
    store.set_case_state("dc2", "paused")
    assert matching("dc2") == []

    saved.set_enabled(store, "dp02", False)
    assert matching("dp02") == [], "a disabled selection schedules nothing"
    with store.db.read() as connection:  # the sensor passes the row it read
        row = connection.execute(select(selections).where(selections.c.name == "failed_children")).one()
    assert saved.matching_schedulable(store, row, NOW, 2, max_attempts=3) == []  # dc2 paused
    with pytest.raises(BadInput, match="limit 0 is not between 1 and"):
        matching("dc2", limit=0)
    with pytest.raises(Unknown):
        matching("nope")


# ------------------------------------------------------------------------------------------ CLI


@pytest.fixture
def cli(store: Store, catalog_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Runs `loader-assets ...` on the example catalog; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("LOADER_CATALOG_URL", catalog_url)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_select_prints_table_csv_and_json(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("select", "case = dc2 AND level = 3 AND status = failed")
    assert code == 0 and out.splitlines()[-1] == "3 notices" and "Duplicate entry" in out
    code, out, _ = cli("select", "status = failed AND level = 1", "--batches", "--format", "csv")
    assert out.splitlines()[0].startswith("id,case,table,directory,step,task,level")
    assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["2", "7"]
    code, out, _ = cli("select", "status = running", "--format", "json", "--limit", "2")
    records = json.loads(out)
    assert [r["id"] for r in records] == [13, 16]
    assert records[0]["locked_by"] == "run-7f3a" and records[0]["heartbeat_at"] == "2026-11-23T09:00:00"
    assert records[0]["rows"] is None and records[0]["chunk"] == 57874


def test_cli_bad_query_exits_2_with_a_caret(cli) -> None:  # type: ignore[no-untyped-def]
    code, out, err = cli("select", "status = = failed")
    assert code == 2 and out == ""
    message, query_line, caret_line = err.splitlines()
    assert message.startswith("loader-assets select: syntax error at 9")
    assert query_line == "  status = = failed" and caret_line == "  " + " " * 9 + "^"


def test_cli_select_help_lists_the_fields(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["select", "--help"])
    out = capsys.readouterr().out
    assert "notice fields:" in out and "heartbeat_at" in out and "batch fields:" in out


def test_cli_schedule_and_dry_run(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = cli("schedule", "case = dc2 AND status = ready", "--dry-run")
    assert code == 0 and out.startswith("dry run: would schedule 5 notices") and count_rows(store, schedules) == 0
    code, out, _ = cli("schedule", "status = failed AND level = 1", "--batches", "--priority", "4", "--force",
                       "--no-daemon")  # fmt: skip
    assert code == 0 and out.startswith("schedule 1: 8 notices handed to the run queue")
    assert "the dagster-daemon's scheduled_loads sensor requests their runs" in out
    with store.db.read() as connection:
        row = connection.execute(select(schedules)).one()
    assert (row.notice_ids, row.priority, row.force) == ([9, 10, 11, 12, 13, 27, 28, 29], 4, True)
    code, _, err = cli("schedule", "id = 99", "--no-daemon")
    assert code == 2 and "nothing to schedule" in err


def test_cli_saved_selections(cli, store: Store) -> None:  # type: ignore[no-untyped-def]
    assert cli("selections", "save", "dc2_src", "case = dc2 AND table = Source", "--priority", "3")[0] == 0
    assert cli("selections", "save", "bad_batches", "status = failed", "--batches", "--disabled")[0] == 0
    assert cli("selections", "disable", "dc2_src")[1] == "saved selection dc2_src disabled\n"
    code, out, _ = cli("selections", "list")
    assert code == 0 and "bad_batches" in out and "case = dc2 AND table = Source" in out
    assert [s.enabled for s in saved.saved_selections(store)] == [False, False]
    assert cli("selections", "enable", "bad_batches")[0] == 0
    assert cli("selections", "delete", "dc2_src")[0] == 0
    assert [s.name for s in saved.saved_selections(store)] == ["bad_batches"]
    code, _, err = cli("selections", "enable", "nope")
    assert code == 3 and "no saved selection nope; `loader-assets selections list` lists them" in err
    code, _, err = cli("selections", "save", "x", "table ==")
    assert code == 2 and err.splitlines()[-1] == "  " + " " * 8 + "^"


def test_now_defaults_to_the_live_clock(store: Store) -> None:
    recent = select_notices("age(updated_at) < 1h", store=store)
    assert recent.now is None and recent.summary().now <= utcnow()

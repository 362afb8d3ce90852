"""The persistent instance on PostgreSQL, whatever form of URL the operator gives, its password never in a file;
written once by `init`, opened by the other commands."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from pathlib import Path

import dagster as dg
import pytest
import yaml
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import Pool

from loader_assets import settings
from loader_assets.defs.chunk_partitions import add_chunk_partitions
from loader_assets.defs.instance import (
    PG_PASSWORD_ENV,
    RunFileAhead,
    SqliteEventFiles,
    init_instance,
    instance_config,
    keep_connections,
    open_instance,
    storage_errors,
    storage_unreachable,
)
from loader_assets.defs.platform import DagsterPlatform
from loader_assets.problems import BadInput, CatalogDown, InstanceDown
from loader_assets.settings import Settings
from loader_assets_tests.servers import postgres_database


@pytest.mark.servers  # a throwaway PostgreSQL database of its own
@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg2"])
def test_every_form_of_a_postgresql_url_opens_the_instance(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with postgres_database() as url:
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv("LOADER_DAGSTER_PG_URL", scheme + "://" + url.split("://", 1)[1])
        init_instance(Settings.from_env())
        instance = open_instance(Settings.from_env())
        try:
            assert add_chunk_partitions(instance, "case1", [3, 1, 2]) == 3
            assert instance.get_dynamic_partitions("case1__chunks") == ["1", "2", "3"]
        finally:
            instance.dispose()
        written = yaml.safe_load((tmp_path / "dagster.yaml").read_text())["storage"]["postgres"]
        assert written["postgres_db"]["scheme"] == "postgresql+psycopg2"  # a daemon started by hand reads it too


@pytest.mark.servers
def test_an_opened_instance_keeps_its_connections_to_postgresql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dagster-postgres connects anew for every call by default (a server process started per event); a command's
    instance keeps its connections (a restart under them: benchmarks/faults.py instance-restarted)."""
    with postgres_database() as url:
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv("LOADER_DAGSTER_PG_URL", url)
        init_instance(Settings.from_env())
        instance = open_instance(Settings.from_env())
        connected: list[object] = []

        def count(*_: object) -> None:
            connected.append(None)

        event.listen(Pool, "connect", count)
        try:
            for chunk in range(30):
                instance.report_runless_asset_event(dg.AssetMaterialization("Object", partition=f"case1|{chunk}"))
        finally:
            event.remove(Pool, "connect", count)
            instance.dispose()
        assert len(connected) <= 3, f"{len(connected)} connections for 30 events"


def _materialize(instance: dg.DagsterInstance, chunk: int) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("Object", partition=f"case1|{chunk}"))


def test_a_sqlite_instance_s_event_files_stay_open_while_held(tmp_path: Path) -> None:
    """Dagster opens a SQLite file per write and its last connection deletes the file's WAL as it closes (made
    again by the next write); held, the WAL stays the same file across writes, and no read is left open (a
    checkpoint of it all passes). A file not there is not made. (Runless events: the run id "" names their file.)"""
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path)})
    init_instance(settings)
    instance = open_instance(settings)
    runs = tmp_path / "history" / "runs"
    try:
        _materialize(instance, 0)
        assert not (runs / "index.db-wal").exists()  # deleted by the write's own connection as it closed
        with SqliteEventFiles(instance, ""):
            _materialize(instance, 1)
            first = (runs / "index.db-wal").stat().st_ino
            for chunk in range(2, 12):
                _materialize(instance, chunk)
            assert (runs / "index.db-wal").stat().st_ino == first
            with closing(sqlite3.connect(runs / "index.db")) as other:
                assert other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0  # not busy
        with SqliteEventFiles(instance, "absent"):
            _materialize(instance, 12)
        assert not (runs / "absent.db").exists()
        assert not (runs / "index.db-wal").exists()
        assert len(instance.fetch_materializations(dg.AssetKey("Object"), limit=20).records) == 13
    finally:
        instance.dispose()


@dg.op
def _nothing() -> None:
    pass


@dg.job
def _one_step() -> None:
    _nothing()


def test_a_run_file_made_ahead_serves_its_run_and_one_no_run_has_is_deleted(tmp_path: Path) -> None:
    """`RunFileAhead`: the prepared run id's SQLite file is there before its run, and the run started with that id
    logs into it (`discard` keeps it); a file no run came to have is deleted, taken (a start that failed) or not."""
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path)})
    init_instance(settings)
    instance = open_instance(settings)
    runs = tmp_path / "history" / "runs"
    ahead = RunFileAhead(instance, sqlite=True)
    try:
        ahead.prepare()
        run_id = ahead.take()
        assert run_id is not None and (runs / f"{run_id}.db").exists()
        assert ahead.take() is None  # once
        result = _one_step.execute_in_process(instance=instance, run_id=run_id)
        assert result.success and result.run_id == run_id
        ahead.discard(run_id)
        assert any(r.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS
                   for r in instance.get_records_for_run(run_id).records)  # fmt: skip
        made = sorted(path.name for path in runs.iterdir())
        ahead.prepare()
        never_started = ahead.take()
        assert never_started is not None and (runs / f"{never_started}.db").exists()
        ahead.discard(never_started)
        assert sorted(path.name for path in runs.iterdir()) == made
        ahead.prepare()
    finally:
        ahead.close()
        instance.dispose()
    assert sorted(path.name for path in runs.iterdir()) == made
    ahead.prepare()  # closed: nothing more is made
    assert ahead.take() is None


@pytest.mark.servers
def test_no_run_file_is_made_ahead_for_a_postgresql_instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with postgres_database() as url:
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
        monkeypatch.setenv("LOADER_DAGSTER_PG_URL", url)
        init_instance(Settings.from_env())
        platform = DagsterPlatform(Settings.from_env())
        try:
            platform.run_ahead.prepare()
            assert platform.run_ahead.take() is None
        finally:
            platform.close()
        assert not (tmp_path / "history").exists()


def test_a_held_run_file_shows_each_event_to_its_watcher_within_a_second(tmp_path: Path) -> None:
    """The UI follows a run's log by watching the run's file, not its WAL: held, the file is checkpointed after a
    chunk's event, at most once a second and a second after a burst at the latest, so a watcher sees the events as
    they come, not when the hold ends."""
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path)})
    init_instance(settings)
    instance = open_instance(settings)
    seen: list[str | None] = []
    last_seen = threading.Event()

    def watcher(entry: dg.EventLogEntry, _cursor: str) -> None:
        if entry.asset_materialization is not None:
            seen.append(entry.asset_materialization.partition)
            if entry.asset_materialization.partition == "case1|3":
                last_seen.set()

    try:
        _materialize(instance, 0)  # the runless events' file made
        with SqliteEventFiles(instance, "") as files:
            instance.watch_event_logs("", None, watcher)
            for chunk in range(1, 4):
                _materialize(instance, chunk)
                files.logged()
            assert last_seen.wait(30), f"while the files were held, the watcher saw only {seen}"
            instance.end_watch_event_logs("", watcher)
        assert seen == [f"case1|{chunk}" for chunk in range(4)]
    finally:
        instance.dispose()


def test_an_opened_sqlite_instance_s_files_commit_without_a_sync_and_other_sqlite_files_keep_theirs(
    tmp_path: Path,
) -> None:
    """Every connection this process opens to the files of an instance it opened (Dagster's, at each write), even
    through a symbolic link (a daemon's DAGSTER_HOME), gets `synchronous=NORMAL` (1); a SQLite file elsewhere in
    the same process keeps SQLite's default (FULL, 2)."""
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path / "home")})
    init_instance(settings)
    runs = tmp_path / "home" / "history" / "runs"
    assert (runs / ".db").exists()  # made by init: the runless events' file
    (tmp_path / "link").symlink_to(tmp_path / "home")
    instance = keep_connections(dg.DagsterInstance.local_temp(tempdir=str(tmp_path / "link")))
    try:
        _materialize(instance, 0)  # Dagster's write: its connection took the setting without failing
        synchronous = {}
        for name, path in (("events", runs / "index.db"), ("runs", tmp_path / "home" / "history" / "runs.db"),
                           ("other", tmp_path / "other.db")):  # fmt: skip
            engine = create_engine(f"sqlite:///{path}")
            with engine.connect() as connection:
                synchronous[name] = connection.execute(text("PRAGMA synchronous")).scalar()
            engine.dispose()
        assert synchronous == {"events": 1, "runs": 1, "other": 2}
        assert len(instance.fetch_materializations(dg.AssetKey("Object"), limit=5).records) == 1
    finally:
        instance.dispose()


def test_a_password_is_written_only_as_a_reference_to_the_environment() -> None:
    environ = {"LOADER_DAGSTER_PG_URL": "postgresql://loader@db.example:5432/dagster", PG_PASSWORD_ENV: "secret"}
    config = instance_config(Settings.from_env(environ))
    block = config["storage"]["postgres"]["postgres_db"]
    assert (block["username"], block["hostname"], block["db_name"]) == ("loader", "db.example", "dagster")
    assert block["password"] == {"env": PG_PASSWORD_ENV} and "secret" not in yaml.safe_dump(config)
    with pytest.raises(BadInput, match=f"carries a password; put the password in {PG_PASSWORD_ENV}"):
        instance_config(Settings.from_env({"LOADER_DAGSTER_PG_URL": "postgresql://loader:secret@db/dagster"}))


def test_an_instance_not_written_yet_or_unreachable_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(InstanceDown, match=r"no Dagster instance at .*; `loader-assets init` writes it"):
        open_instance(Settings.from_env({"DAGSTER_HOME": str(tmp_path)}))
    unreachable = Settings.from_env(
        {"DAGSTER_HOME": str(tmp_path), "LOADER_DAGSTER_PG_URL": "postgresql://u@127.0.0.1:1/x"}
    )
    with pytest.raises(InstanceDown, match=r"storage .* cannot be used"):
        init_instance(unreachable)


@pytest.mark.parametrize(
    ("written", "said"),
    [("storage: [", "is not YAML: while parsing"),
     ("storage:\n  bogus: {}\n", 'is not a Dagster instance\'s configuration: Received unexpected config entry "bogus"')],
)  # fmt: skip
def test_a_damaged_dagster_yaml_is_named_with_what_rewrites_it(tmp_path: Path, written: str, said: str) -> None:
    (tmp_path / "dagster.yaml").write_text(written)
    with pytest.raises(InstanceDown, match=rf"dagster.yaml {said}.*; `loader-assets init` writes it again"):
        open_instance(Settings.from_env({"DAGSTER_HOME": str(tmp_path)}))


def test_an_instance_reading_a_password_variable_the_process_lacks_names_it(tmp_path: Path) -> None:
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path), "LOADER_DAGSTER_PG_URL": "postgresql://u@db/d",
                                  PG_PASSWORD_ENV: "secret"})  # fmt: skip
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(instance_config(settings)))
    without = Settings.from_env({"DAGSTER_HOME": str(tmp_path)})  # e.g. a shell that never exported it
    with pytest.raises(InstanceDown, match=rf"reads {PG_PASSWORD_ENV}, which .* lacks; set {PG_PASSWORD_ENV} as for"):
        open_instance(without)


def test_psycopg2_url_normalises_only_postgresql_urls() -> None:
    assert settings.psycopg2_url("postgres://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert settings.psycopg2_url("postgresql://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert settings.psycopg2_url("postgresql+psycopg2://u@h/d") == "postgresql+psycopg2://u@h/d"
    assert settings.psycopg2_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


def test_the_instance_out_of_use_is_told_apart_from_other_errors_whatever_their_chain() -> None:
    """A write that failed on a SQLite file that cannot be opened (wrapped, as SQLAlchemy raises it) is the
    storage's, not the code's; an error chain that loops ends."""
    wrapped = RuntimeError("(sqlite3.OperationalError) the write failed")
    wrapped.__cause__ = sqlite3.OperationalError("unable to open database file")
    assert storage_unreachable(wrapped)
    first, second = ValueError("first"), ValueError("second")
    first.__context__, second.__context__ = second, first
    assert not storage_unreachable(first)


def test_the_catalog_down_while_the_instance_is_used_is_told_as_the_catalog(tmp_path: Path) -> None:
    settings = Settings.from_env({"DAGSTER_HOME": str(tmp_path)})
    down = CatalogDown("the catalog at sqlite:///x cannot be used: unable to open database file", "run it again")
    with pytest.raises(CatalogDown, match="the catalog at"), storage_errors(settings):
        raise down

"""The persistent Dagster instance: `$DAGSTER_HOME/dagster.yaml`, written once by `loader-assets init` (or the first
`register`) from the package's template `instance.yaml`, then only opened.

A yaml file cannot switch storage on an environment variable by itself, so the switch happens when it is written:
SQLite under `$DAGSTER_HOME` by default, dagster-postgres when `LOADER_DAGSTER_PG_URL` is set — its parts written
out, its password only by reference to `LOADER_DAGSTER_PG_PASSWORD`, so every process (daemon, webserver, code
server) reads the same storage and no credential reaches the file. Settings that shape the file (the storage,
`LOADER_RUNS_PER_WORKER`) take effect at the next `init`.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
import time
import urllib.request
import uuid
import weakref
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from importlib.resources import files
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import psycopg2
import psycopg2.extensions
import yaml
from dagster import DagsterInstance, DagsterInvalidConfigError
from sqlalchemy.engine import Engine
from sqlalchemy.event import contains, listen
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import QueuePool

from loader_assets import tags
from loader_assets.problems import BadInput, InstanceDown, NoDaemon, Problem, unwritable
from loader_assets.settings import Settings, psycopg2_url

PG_PASSWORD_ENV = "LOADER_DAGSTER_PG_PASSWORD"
LOAD_POOL = "qserv_load"  # concurrency pool of every load step, created before runs race to create it
CHECKPOINT_SECONDS = 1.0  # a run's events reach the file the UI watches at most this late (`SqliteEventFiles`)
DAEMON_SILENT_SECONDS = 60  # a daemon that has not beaten for this long is taken for stopped
# dagster-postgres opens a connection for every call by default: a PostgreSQL backend started per event (3.3 of
# PostgreSQL's CPU-seconds for the 346 MB case of benchmarks/end_to_end.py --dagster-postgres, 0.3 with one kept).
# Kept connections are replaced after 5 minutes, before a firewall or a NAT drops them idle; none gets a statement
# timeout (the webserver's 15 s would cut a long read of a busy instance).
POOL_RECYCLE_SECONDS, POOL_MAX_OVERFLOW = 300, 20
_kept: weakref.WeakSet[DagsterInstance] = weakref.WeakSet()
# roots of the instances opened here: the SQLite files under them commit unsynced (`_commit_without_sync`)
_instance_folders: frozenset[str] = frozenset()
_folders_lock = threading.Lock()


def instance_config(settings: Settings) -> dict:
    """What `$DAGSTER_HOME/dagster.yaml` holds for these settings."""
    config = yaml.safe_load(files("loader_assets.defs").joinpath("instance.yaml").read_text())
    for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]:
        if limit["key"] == tags.WORKER:
            limit["limit"] = settings.runs_per_worker
    if settings.dagster_pg_url:
        block = postgres_db(settings.dagster_pg_url)
        if settings.dagster_pg_password:  # else libpq's own: trust, PGPASSWORD or ~/.pgpass
            block["password"] = {"env": PG_PASSWORD_ENV}
        config["storage"] = {"postgres": {"postgres_db": block}}
    return config


def postgres_db(url: str) -> dict:
    """dagster-postgres's `postgres_db` block for a password-free URL; the password by reference to the
    environment. A password in the URL itself is refused: it would have to be written into the file."""
    parts = urlsplit(psycopg2_url(url))
    if parts.password is not None:
        raise BadInput(
            "LOADER_DAGSTER_PG_URL carries a password",
            f"put the password in {PG_PASSWORD_ENV} instead (never in a file)",
        )
    block: dict = {
        "username": parts.username or "postgres", "hostname": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432, "db_name": parts.path.lstrip("/") or "postgres", "scheme": parts.scheme,
    }  # fmt: skip
    if parts.query:
        block["params"] = dict(parse_qsl(parts.query))
    return block


def config_path(settings: Settings) -> Path:
    return settings.dagster_home / "dagster.yaml"


def init_instance(settings: Settings) -> Path:
    """Write `$DAGSTER_HOME/dagster.yaml` for these settings, open the instance once (creating its storage) and
    create the load pool. Returns the file's path."""
    path = config_path(settings)
    temporary = path.with_suffix(".tmp")
    try:
        settings.dagster_home.mkdir(parents=True, exist_ok=True)
        temporary.write_text(yaml.safe_dump(instance_config(settings), sort_keys=False))
        temporary.replace(path)  # atomic: a daemon reading it never sees half a file
    except OSError as error:
        if (problem := unwritable(error, str(settings.dagster_home), "DAGSTER_HOME")) is None:
            raise
        raise problem from error
    instance = open_instance(settings)
    try:
        # The events logged outside runs (validations, reports from the catalog) have a SQLite file of their own
        # ("" names it), made with its schema when first used: 60 ms of the first validation's CPU otherwise.
        instance.get_records_for_run("", limit=1)
        if instance.event_log_storage.get_concurrency_info(LOAD_POOL).slot_count == 0:
            instance.event_log_storage.set_concurrency_slots(LOAD_POOL, 4 * settings.runs_per_worker)
    finally:
        instance.dispose()
    return path


def open_instance(settings: Settings) -> DagsterInstance:
    """The instance at `$DAGSTER_HOME` (its dagster.yaml must exist); unusable storage is an `InstanceDown`."""
    if not config_path(settings).exists():
        raise InstanceDown(
            f"no Dagster instance at {settings.dagster_home} (no dagster.yaml)", "`loader-assets init` writes it"
        )
    with storage_errors(settings):
        try:
            # The persistent instance of that directory, read from its dagster.yaml (`local_temp` given a
            # directory is Dagster's public way to open one that is not $DAGSTER_HOME of this process's environment).
            instance = DagsterInstance.local_temp(tempdir=str(settings.dagster_home))
        except DagsterInvalidConfigError as error:
            raise _config_problem(settings, error) from error
        except yaml.YAMLError as error:
            raise InstanceDown(
                f"{config_path(settings)} is not YAML: {first_line(error)}",
                "`loader-assets init` writes it again from the settings",
            ) from error
        return keep_connections(instance)


def _config_problem(settings: Settings, error: DagsterInvalidConfigError) -> InstanceDown:
    """What is wrong with dagster.yaml: an environment variable it names that this process lacks (the password's,
    when a process is started without it: `init` here would write the file without it), or its first error."""
    messages = [line.strip() for message in error.error_messages for line in message.splitlines() if line.strip()]
    unset = [m[1] for m in map(re.compile(r'environment variable "(\w+)" which is not set').search, messages) if m]
    if unset:
        return InstanceDown(f"{config_path(settings)} reads {unset[0]}, which this process's environment lacks",
                            f"set {unset[0]} as for the daemon and the webserver")  # fmt: skip
    first = messages[0].split(" Expected: ")[0] if messages else first_line(error)
    return InstanceDown(f"{config_path(settings)} is not a Dagster instance's configuration: {first}",
                        "`loader-assets init` writes it again from the settings")  # fmt: skip


def keep_connections(instance: DagsterInstance) -> DagsterInstance:
    """Its storage's connections kept open and reused, as the webserver keeps its own (SQLite opens its files per
    call whatever is asked: see `SqliteEventFiles`; its files commit unsynced, `_commit_without_sync`). Once per
    instance: a second call would leave the first pool's connection open. They close when the instance is collected
    (dagster-postgres's `dispose` leaves them)."""
    if instance not in _kept:
        if not contains(QueuePool, "checkout", _replace_if_dropped):
            listen(QueuePool, "checkout", _replace_if_dropped)
        if not contains(Engine, "connect", _commit_without_sync):
            listen(Engine, "connect", _commit_without_sync)
        _relax_files(instance)
        instance.optimize_for_webserver(
            statement_timeout=0, pool_recycle=POOL_RECYCLE_SECONDS, max_overflow=POOL_MAX_OVERFLOW
        )
        _kept.add(instance)
    return instance


def _event_file(instance: DagsterInstance, shard: str) -> Path:
    """The SQLite file of a run's events ("index": the index of them all), in SQLite's default layout under
    $DAGSTER_HOME."""
    return Path(instance.root_directory, "history", "runs", f"{shard}.db")


class SqliteEventFiles:
    """While a run logs its chunks into a SQLite instance, its event files (the run's and the index) held open by
    an idle connection each. Dagster opens them for every write, and SQLite's last connection to close a file
    checkpoints it and deletes its WAL and shared-memory files, which the next write makes again: four files made
    and deleted per chunk logged (alone, 5.4-5.6 against 3.9-4.1 ms of CPU an event, more on a file system that
    deleted many files lately). The UI follows a run's log by watching the run's file, not its WAL: `logged` copies
    the WAL into it as the closing connection did, at most every CHECKPOINT_SECONDS (a copy syncs the file: one per
    chunk cost a 346 MB case's load a second of waiting) and that long after a chunk at the latest. A no-op for a
    PostgreSQL instance (no such files, unless left by an earlier SQLite one: held then, harmlessly); a file that
    cannot be opened is left as it is."""

    def __init__(self, instance: DagsterInstance, run_id: str) -> None:
        self._paths = (_event_file(instance, "index"), _event_file(instance, run_id))
        self._held = ExitStack()
        self._run_file: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the run's file, the copy and its timer
        self._copied_at = 0.0
        self._timer: threading.Timer | None = None

    def __enter__(self) -> SqliteEventFiles:
        index, run = self._paths
        try:
            self._open(index)
            self._run_file = self._open(run)
        except BaseException:  # an interrupt while opening: what is open closes now
            self._held.close()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            if self._timer is not None:  # a copy was due: made now (the close's own is skipped while a reader reads)
                self._timer.cancel()
                self._timer = None
                self._copy()
            self._run_file = None
        self._held.close()

    def logged(self) -> None:
        """A chunk's event was written: the run's file is checkpointed (Dagster's UI watching it sees it change)
        now, or CHECKPOINT_SECONDS after the last copy."""
        with self._lock:
            if self._run_file is None or self._timer is not None:
                return
            wait = self._copied_at + CHECKPOINT_SECONDS - time.monotonic()
            if wait <= 0:
                self._copy()
                return
            self._timer = threading.Timer(wait, self._copy_later)
            self._timer.daemon = True
            self._timer.start()

    def _copy_later(self) -> None:
        with self._lock:
            self._timer = None
            self._copy()

    def _copy(self) -> None:  # under the lock
        if self._run_file is not None:
            with suppress(sqlite3.Error):  # a busy file: the next event's checkpoint, or the close, copies it
                self._run_file.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._copied_at = time.monotonic()

    def _open(self, path: Path) -> sqlite3.Connection | None:
        try:  # mode=rw never makes a file; as_uri escapes what a URI reads (#, ?, %); the timer's thread copies
            connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, check_same_thread=False)
        except sqlite3.Error:
            return None
        self._held.callback(connection.close)
        with suppress(sqlite3.Error):
            connection.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # no transaction stays open
        return connection


class RunFileAhead:
    """The id of the next run this process starts, its SQLite event file made beforehand in a thread while the
    process waits on its servers (a validation's census): Dagster makes a run's file when it logs the run's start,
    its tables and Alembic stamp (45 ms of CPU, 57 ms of wall) between the run's creation and its step. A file no run
    came to have (none was started, or its start failed before the run existed) is deleted (`discard`, `close`); a
    process killed meanwhile leaves it, empty (Dagster reads it as a run's file without events). `sqlite`: the
    instance keeps its events in SQLite files (a PostgreSQL one has none: nothing is made)."""

    def __init__(self, instance: DagsterInstance, *, sqlite: bool) -> None:
        self.instance, self.sqlite = instance, sqlite
        self._ahead: tuple[str, Future] | None = None
        self._maker: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()  # the command's thread prepares and takes; its main thread closes
        self._closed = False

    def prepare(self) -> None:
        """Start making the next run's file (once until it is taken)."""
        with self._lock:
            if self._closed or self._ahead is not None or not self.sqlite:
                return
            self._maker = self._maker or ThreadPoolExecutor(1, thread_name_prefix="run-file-ahead")
            run_id = str(uuid.uuid4())  # as Dagster names a run
            self._ahead = (run_id, self._maker.submit(self.instance.get_records_for_run, run_id, limit=1))

    def take(self) -> str | None:
        """The prepared run id (its file made, or left to the run if making it failed), or None."""
        with self._lock:
            ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        run_id, made = ahead
        with suppress(Exception):  # the run makes it, and meets what failed here itself
            made.result()
        return run_id

    def discard(self, run_id: str) -> None:
        """Delete the file of `run_id` if no run has that id (its start failed before the run existed)."""
        with suppress(Exception):  # the instance out of reach: the empty file stays
            if self.instance.get_run_by_id(run_id) is None:
                file = _event_file(self.instance, run_id)
                for path in (file, file.with_name(f"{file.name}-wal"), file.with_name(f"{file.name}-shm")):
                    with suppress(OSError):
                        path.unlink()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        if (run_id := self.take()) is not None:
            self.discard(run_id)
        if self._maker is not None:
            self._maker.shutdown()


def _relax_files(instance: DagsterInstance) -> None:
    """`_commit_without_sync` for the files under the root of `instance`, named as SQLite names an open file: the
    real path, symbolic links resolved."""
    global _instance_folders
    with _folders_lock:  # a new set each time: a connecting thread reads the one it took, unchanged
        _instance_folders = _instance_folders | {os.path.realpath(instance.root_directory) + "/"}


def _commit_without_sync(connection: object, _record: object) -> None:
    """A SQLite instance's files (WAL) commit without waiting for the disk (`synchronous=NORMAL`, as the catalog's):
    a commit synced its file, two per chunk logged and several per run started or ended, and a load's other writes
    made each sync wait (3.3 s of a 346 MB case's 10). A power cut may then lose the last commits, never the file:
    the catalog keeps the loads and leases, `unreported` logs again the events the instance lacks, run monitoring
    fails a run left started, and a sensor requesting a run again meets the catalog's leases. Only files under an
    instance this process opened; other SQLite files (the catalog) keep their own settings."""
    folders = _instance_folders
    if not isinstance(connection, sqlite3.Connection) or not folders:
        return
    with suppress(sqlite3.Error):
        path = connection.execute("PRAGMA database_list").fetchall()[0][2]
        if path and any(path.startswith(folder) for folder in folders):
            connection.execute("PRAGMA synchronous=NORMAL")


def _replace_if_dropped(connection: object, _record: object, _proxy: object) -> None:
    """A kept connection the server dropped (restarted) is replaced as it is taken, as `pool_pre_ping` would (the
    storage's pool cannot be given it): SQLAlchemy's pessimistic disconnect handling, with dagster-postgres's
    connect retries for a server not back yet. Only PostgreSQL connections in autocommit (the instance's): on
    another, a ping would open a transaction."""
    if not (isinstance(connection, psycopg2.extensions.connection) and connection.autocommit is True):
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except psycopg2.Error as error:
        raise DisconnectionError(str(error)) from error


@contextmanager
def storage_errors(settings: Settings) -> Iterator[None]:
    """Whatever is done with the instance in the block: its storage out of reach is an `InstanceDown`."""
    try:
        yield
    except Problem:  # told already (the catalog down while the instance was used: not the instance's fault)
        raise
    except Exception as error:
        if storage_unreachable(error):
            raise InstanceDown(
                f"the Dagster instance's storage ({_storage_name(settings)}) cannot be used: {first_line(error)}",
                "start its server (or free its disk), or correct LOADER_DAGSTER_PG_URL; then run the command again",
            ) from error
        raise


def storage_unreachable(error: BaseException) -> bool:
    """Whether `error` (or its cause) means the instance's database cannot be reached or written."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, psycopg2.OperationalError | psycopg2.InterfaceError):
            return True
        text = str(current).lower()
        if any(sign in text for sign in _SQLITE_UNUSABLE):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


_SQLITE_UNUSABLE = ("unable to open database file", "disk i/o error", "database or disk is full")


def _storage_name(settings: Settings) -> str:
    return settings.dagster_pg_url or f"SQLite under {settings.dagster_home}"


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def daemon_problem(instance: DagsterInstance, settings: Settings) -> NoDaemon | None:
    """None when a dagster-daemon beats for this instance; else the problem, with its fix."""
    now = time.time()
    beats = instance.get_daemon_heartbeats()
    if any(now - beat.timestamp < DAEMON_SILENT_SECONDS for beat in beats.values()):
        return None
    return NoDaemon.at(str(settings.dagster_home))


def webserver_problem(address: str) -> str | None:
    """None when a Dagster webserver answers at `address` (host:port); else why not."""
    try:
        with urllib.request.urlopen(f"http://{address}/server_info", timeout=2) as response:
            json.load(response)
    except (OSError, ValueError) as error:
        return f"no Dagster webserver at {address} ({type(error).__name__}); `dagster dev -w workspace.yaml` starts one"
    return None

"""Connections to the catalog: SQLite (embedded default) or PostgreSQL, with the schema created or checked.

SQLite runs in WAL mode with a busy timeout; write transactions start with `BEGIN IMMEDIATE` so that two
processes racing for the same notices queue up instead of failing on a lock upgrade. A catalog that cannot be
reached (its server down, its file unreadable, its disk full) is a `CatalogDown` naming it, raised here, where
every transaction starts.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, Engine, Table, create_engine, event, inspect, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Select

from loader_assets.catalog.migrations import upgrade
from loader_assets.catalog.schema import SCHEMA_VERSION, catalog_info, metadata
from loader_assets.problems import CatalogDown
from loader_assets.settings import psycopg2_url

CATALOG_ID = "catalog_id"
ID_BATCH = 5000  # ids per statement: under SQLite's bound-parameter limit, small enough for PostgreSQL


def id_batches(ids: Sequence[int]) -> Iterator[list[int]]:
    """`ids` in slices small enough for one `IN (…)`."""
    for start in range(0, len(ids), ID_BATCH):
        yield list(ids[start : start + ID_BATCH])


def bulk_insert(connection: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows, each with every column it needs (no Python-side defaults are applied): COPY on
    PostgreSQL (several times faster than multi-row INSERTs), executemany elsewhere."""
    if not rows:
        return
    if connection.dialect.name != "postgresql":
        connection.execute(table.insert(), list(rows))
        return
    columns = list(rows[0])
    data = io.StringIO()
    writer = csv.writer(data, lineterminator="\n")
    for row in rows:  # csv: None is an empty unquoted field, which COPY reads as NULL
        writer.writerow([row[name] for name in columns])
    data.seek(0)
    names = ", ".join(connection.dialect.identifier_preparer.quote(name) for name in columns)
    cursor = connection.connection.driver_connection.cursor()  # the same transaction
    try:
        cursor.copy_expert(f"COPY {table.name} ({names}) FROM STDIN WITH (FORMAT csv)", data)
    finally:
        cursor.close()


RANGES_PER_STATEMENT = 200  # runs of consecutive ids OR-ed in one condition


def id_filters(column: ColumnElement[int], ids: Iterable[int]) -> Iterator[ColumnElement[bool]]:
    """Conditions that together select exactly `ids`, each small enough for one statement: runs of consecutive
    ids (a level, a batch: notices are registered in runs) as BETWEEN, scattered ones in IN lists."""
    ordered = np.sort(np.fromiter(ids, dtype=np.int64))
    ordered = ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered  # sorted, unique
    if not len(ordered):
        return
    breaks = np.flatnonzero(np.diff(ordered) != 1) + 1
    starts, ends = ordered[np.r_[0, breaks]], ordered[np.r_[breaks - 1, len(ordered) - 1]]
    runs = [(int(a), int(b)) for a, b in zip(starts, ends, strict=True) if b - a >= 2]
    singles = [int(i) for a, b in zip(starts, ends, strict=True) if b - a < 2 for i in range(a, b + 1)]
    for start in range(0, len(runs), RANGES_PER_STATEMENT):
        yield or_(*(column.between(a, b) for a, b in runs[start : start + RANGES_PER_STATEMENT]))
    for batch in id_batches(singles):
        yield column.in_(batch)


def driver_rows(connection: Connection, query: Select) -> list[tuple]:
    """The rows as the driver's plain tuples: SQLAlchemy's Row objects cost ~1 µs each, seconds for the 10^5
    notices of a level. Only for queries whose parameters are numbers (they are written into the SQL)."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchall()
    finally:
        cursor.close()


class CatalogVersionError(CatalogDown):
    """The catalog was written by another schema version than this code knows how to use."""


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (pysqlite's own is deferred)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class CatalogDB:
    """Engines of one catalog: `write()` and `read()` give a connection inside a transaction."""

    def __init__(self, url: str) -> None:
        self.url = psycopg2_url(url)
        self.dialect = make_url(self.url).get_backend_name()
        if self.dialect == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self._writer = _sqlite_engine(self.url, immediate=True)
            self._reader = _sqlite_engine(self.url, immediate=False)
        else:
            self._writer = self._reader = create_engine(self.url, pool_pre_ping=True)
        self._create_or_check()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        with self._unreachable_as_down(), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self._unreachable_as_down(), self._reader.begin() as connection:
            yield connection

    @contextmanager
    def _unreachable_as_down(self) -> Iterator[None]:
        try:
            yield
        except DBAPIError as error:
            if (damage := _damage(error)) is not None:
                raise CatalogDown(f"the catalog at {shown_url(self.url)} is damaged ({damage})",
                                  "restore its file from a backup, or point LOADER_CATALOG_URL at a new catalog and "
                                  "register the cases again") from error  # fmt: skip
            why = unreachable_reason(error)
            if why is None:
                raise
            raise CatalogDown(f"the catalog at {shown_url(self.url)} cannot be used ({why})",
                              "start its server (or free its disk), or correct LOADER_CATALOG_URL") from error  # fmt: skip

    def _locked_version(self, connection: Connection) -> str | None:
        """The schema version read again under a lock that serialises upgrades (SQLite's write lock is one)."""
        if self.dialect == "postgresql":
            connection.exec_driver_sql("LOCK TABLE catalog_info IN ACCESS EXCLUSIVE MODE")
        return connection.execute(select(catalog_info.c.value).where(catalog_info.c.key == "schema_version")).scalar()

    @cached_property
    def catalog_id(self) -> str:
        """This catalog's identity (a UUID): stamped into every worker database it creates."""
        with self.read() as connection:
            return connection.execute(select(catalog_info.c.value).where(catalog_info.c.key == CATALOG_ID)).scalar_one()

    def dispose(self) -> None:
        self._writer.dispose()
        self._reader.dispose()

    def _create_or_check(self) -> None:
        with self.write() as connection:
            existing = set(inspect(connection).get_table_names())
            if not existing:
                metadata.create_all(connection)
                connection.execute(catalog_info.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                connection.execute(catalog_info.insert().values(key=CATALOG_ID, value=str(uuid.uuid4())))
                return
            version = None
            if "catalog_info" in existing:
                version = connection.execute(
                    select(catalog_info.c.value).where(catalog_info.c.key == "schema_version")
                ).scalar()
            if version is not None and version.isdigit() and 1 <= int(version) < SCHEMA_VERSION:
                version = self._locked_version(connection)  # another process may be upgrading it right now
            if version is not None and version.isdigit() and 1 <= int(version) < SCHEMA_VERSION:
                upgrade(connection, int(version))
            elif version != str(SCHEMA_VERSION):
                raise CatalogVersionError(
                    f"catalog {shown_url(self.url)} has schema version {version or 'unknown'}, "
                    f"this loader_assets uses version {SCHEMA_VERSION}: no upgrade path is known",
                    "point LOADER_CATALOG_URL at a new catalog and register the cases again",
                )


@cache
def catalog_db(url: str) -> CatalogDB:
    """One CatalogDB per URL and process, so engines and pools are shared."""
    return CatalogDB(url)


def check_reachable(url: str) -> None:
    """Raise `CatalogDown` unless the catalog at `url` answers (and has a schema this code can use)."""
    with catalog_db(url).read() as connection:
        connection.execute(text("SELECT 1"))


def shown_url(url: str) -> str:
    """The URL as it may be printed: its password masked."""
    return make_url(url).render_as_string(hide_password=True)


# What a driver says when the catalog itself is out of reach, not when a statement is wrong.
_UNREACHABLE = ("could not connect", "connection refused", "server closed the connection", "terminating connection",
                "connection already closed", "unable to open database file", "disk i/o error", "database or disk is full",
                "no space left", "could not translate host name", "timeout expired", "the database system is")  # fmt: skip
_DAMAGED = ("file is not a database", "database disk image is malformed")


def _driver_line(error: DBAPIError) -> str:
    """The driver's first line of `error`."""
    text = str(error.orig or error).strip()
    return text.splitlines()[0] if text else repr(error)


def _damage(error: DBAPIError) -> str | None:
    """SQLite's words for a catalog file that is not (or no longer) a database."""
    first = _driver_line(error)
    return first if any(words in first.lower() for words in _DAMAGED) else None


def unreachable_reason(error: DBAPIError) -> str | None:
    """The driver's first line when `error` means the catalog cannot be reached or written at all, else None."""
    first = _driver_line(error)
    if error.connection_invalidated or any(words in first.lower() for words in _UNREACHABLE):
        return first
    return None

"""Reads of notices and their attempts that loading, planning and validating ask (state changes: `store`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy import case as sql_case

from loader_assets.catalog.database import CatalogDB, driver_rows, id_batches, id_filters
from loader_assets.catalog.schema import attempts, notices
from loader_assets.catalog.time import utcnow


def status_tally(db: CatalogDB, case: str, *, table: str | None = None, level: int | None = None) -> dict[str, int]:
    """Notices of a case (one table, or one level) per status; statuses with none are absent."""
    query = select(notices.c.status, func.count()).where(notices.c.case == case).group_by(notices.c.status)
    if table is not None:
        query = query.where(notices.c.table == table)
    if level is not None:
        query = query.where(notices.c.level == level)
    with db.read() as connection:
        return dict(connection.execute(query).all())


def notice_ids(
    db: CatalogDB,
    case: str,
    *,
    table: str | None = None,
    level: int | None = None,
    chunks: list[int] | None = None,
    statuses: tuple[str, ...] | None = None,
) -> list[int]:
    """Ids of a case's notices, narrowed by table, level, chunks and status."""
    query = select(notices.c.id).where(notices.c.case == case).order_by(notices.c.id)
    if table is not None:
        query = query.where(notices.c.table == table)
    if level is not None:
        query = query.where(notices.c.level == level)
    if chunks is not None:
        query = query.where(notices.c.chunk.in_(chunks))
    if statuses is not None:
        query = query.where(notices.c.status.in_(statuses))
    with db.read() as connection:
        return list(connection.execute(query).scalars())


# What planning runs needs of a notice: (id, case, level, chunk, size, priority, attempts). Plain tuples, as
# the driver gives them: 10^5 named ones cost half a second.
PlanRow = tuple[int, str, int, int | None, int, int, int]


def plan_rows(db: CatalogDB, ids: Iterable[int]) -> list[PlanRow]:
    n = notices.c
    rows: list[PlanRow] = []
    with db.read() as connection:
        for condition in id_filters(n.id, ids):
            query = select(n.id, n.case, n.level, n.chunk, n.size, n.priority, n.attempts).where(condition)
            rows += driver_rows(connection, query)
    return rows


@dataclass(frozen=True)
class LevelFiles:
    """A table's notices and bytes in one load level, chunked files apart from regular ones."""

    level: int
    chunked: bool
    table: str
    notices: int
    bytes: int


def level_files(db: CatalogDB, case: str) -> list[LevelFiles]:
    n = notices.c
    chunked = n.chunk.is_not(None)
    query = (
        select(n.level, chunked, n.table, func.count(), func.coalesce(func.sum(n.size), 0))
        .where(n.case == case)
        .group_by(n.level, chunked, n.table)
    )
    with db.read() as connection:
        rows = connection.execute(query).all()
    return [
        LevelFiles(level, bool(is_chunked), table, count, int(size)) for level, is_chunked, table, count, size in rows
    ]


def sample_files(db: CatalogDB, case: str, per_table: int) -> dict[str, list[tuple[str, str, int]]]:
    """The first `per_table` non-empty files of each table: (path, format, size)."""
    n = notices.c
    rank = func.row_number().over(partition_by=n.table, order_by=n.id).label("rank")
    ranked = select(n.table, n.path, n.format, n.size, rank).where(n.case == case, n.size > 0).subquery()
    query = select(ranked.c.table, ranked.c.path, ranked.c.format, ranked.c.size).where(ranked.c.rank <= per_table)
    samples: dict[str, list[tuple[str, str, int]]] = {}
    with db.read() as connection:
        for table, path, fmt, size in connection.execute(query):
            samples.setdefault(table, []).append((path, fmt, size))
    return samples


def known_notices(db: CatalogDB, ids: Iterable[int]) -> set[int]:
    """Which of `ids` are notices of the catalog."""
    known: set[int] = set()
    with db.read() as connection:
        for batch in id_batches(sorted(set(ids))):
            known |= set(connection.execute(select(notices.c.id).where(notices.c.id.in_(batch))).scalars())
    return known


def run_known(db: CatalogDB, run_id: str) -> bool:
    """Whether a run ever opened an attempt here."""
    with db.read() as connection:
        return connection.execute(select(attempts.c.id).where(attempts.c.run_id == run_id).limit(1)).first() is not None


def claimed_by_run(db: CatalogDB, run_id: str, ids: Iterable[int]) -> set[int]:
    """Which of `ids` run `run_id` opened an attempt on."""
    claimed: set[int] = set()
    with db.read() as connection:
        for batch in id_batches(sorted(set(ids))):
            claimed |= set(
                connection.execute(
                    select(attempts.c.notice).where(attempts.c.notice.in_(batch), attempts.c.run_id == run_id)
                ).scalars()
            )
    return claimed


@dataclass(frozen=True)
class WorkerLoad:
    """What runs loaded into one worker: files, rows and bytes of their done attempts."""

    worker: str
    files: int
    rows: int
    bytes: int


def loaded_by_runs(db: CatalogDB, run_ids: Iterable[str]) -> list[WorkerLoad]:
    """Per worker, the attempts of these runs that are done (a regular table counts on each worker as `all`)."""
    query = (
        select(attempts.c.worker, func.count(), func.coalesce(func.sum(attempts.c.rows), 0), func.sum(notices.c.size))
        .join(notices, notices.c.id == attempts.c.notice)
        .where(attempts.c.run_id.in_(list(run_ids)), attempts.c.outcome == "done")
        .group_by(attempts.c.worker)
        .order_by(attempts.c.worker)
    )
    with db.read() as connection:
        return [
            WorkerLoad(worker, files, int(rows), int(size or 0))
            for worker, files, rows, size in connection.execute(query)
        ]


def lost_by_runs(db: CatalogDB, run_ids: Iterable[str]) -> int:
    """Attempts of these runs whose notice was taken back from them (a lease lapsed, a holder seen dead)."""
    with db.read() as connection:
        return connection.execute(
            select(func.count()).where(attempts.c.run_id.in_(list(run_ids)), attempts.c.outcome == "lost")
        ).scalar_one()


def held_under_live_lease(db: CatalogDB, case: str, level: int) -> int:
    """Notices of the level some run is loading right now."""
    with db.read() as connection:
        return connection.execute(
            select(func.count()).where(
                notices.c.case == case,
                notices.c.level == level,
                notices.c.status == "running",
                notices.c.lease_until >= utcnow(),
            )
        ).scalar_one()


@dataclass(frozen=True)
class Unfinished:
    id: int
    path: str
    status: str
    error: str | None


def first_unfinished(db: CatalogDB, case: str, level: int) -> Unfinished | None:
    """The first failed notice of the level, else the first other one not done."""
    with db.read() as connection:
        row = connection.execute(
            select(notices.c.id, notices.c.path, notices.c.status, notices.c.error)
            .where(notices.c.case == case, notices.c.level == level, notices.c.status != "done")
            .order_by(notices.c.status != "failed", notices.c.id)  # failed before ready
            .limit(1)
        ).first()
    return Unfinished(**row._mapping) if row is not None else None


@dataclass(frozen=True)
class DoneFile:
    """A done notice of a partitioned table: where its rows are and what its file held."""

    notice_id: int
    chunk: int
    overlap: bool
    path: str
    format: str
    rows: int
    attempt_id: int
    fingerprint: dict[str, str] | None  # None for an attempt loaded before fingerprints existed


def done_files(db: CatalogDB, case: str, table: str, *, chunk: int | None = None) -> list[DoneFile]:
    """The done notices of a partitioned table (or of one of its chunks)."""
    n = notices.c
    query = _done(case, table, n.id, n.chunk, n.overlap, n.path, n.format, n.rows, n.attempt_id, attempts.c.fingerprint)
    if chunk is not None:
        query = query.where(n.chunk == chunk)
    with db.read() as connection:
        rows = connection.execute(query).all()
    return [
        DoneFile(row.id, row.chunk, row.overlap, row.path, row.format, row.rows or 0, row.attempt_id, row.fingerprint)
        for row in rows
    ]


def loaded_chunks(db: CatalogDB, case: str) -> dict[str, list[int | None]]:
    """Per table, its chunks (None: a regular table) whose every notice is done."""
    n = notices.c
    not_done = func.sum(sql_case((n.status != "done", 1), else_=0))
    query = select(n.table, n.chunk).where(n.case == case).group_by(n.table, n.chunk).having(not_done == 0)
    loaded: dict[str, list[int | None]] = {}
    with db.read() as connection:
        for table, chunk in connection.execute(query.order_by(n.table, n.chunk)):
            loaded.setdefault(table, []).append(chunk)
    return loaded


def done_signature(db: CatalogDB, case: str) -> str:
    """Changes whenever a notice of the case becomes done (or stops being done)."""
    n = notices.c
    query = select(func.count(), func.max(n.finished_at)).where(n.case == case, n.status == "done")
    with db.read() as connection:
        count, last = connection.execute(query).one()
    return f"{count}@{last}"


@dataclass(frozen=True)
class LoadedFile:
    """A done notice with the attempt that loaded it: what a materialization of its chunk says, and which run
    (on which host and process) should have reported it."""

    notice_id: int
    attempt_id: int
    table: str
    chunk: int | None
    overlap: bool
    path: str
    worker: str | None
    rows: int | None
    size: int
    run_id: str
    host: str
    pid: int
    finished_at: datetime | None


def loaded_files(db: CatalogDB, case: str, table: str, chunks: list[int | None]) -> list[LoadedFile]:
    """The done notices of these chunks of a table (None: the regular table itself), with their attempts."""
    n, a = notices.c, attempts.c
    query = _done(case, table, n.id, n.attempt_id, n.table, n.chunk, n.overlap, n.path, n.worker, n.rows, n.size,
                  a.run_id, a.host, a.pid, a.finished_at)  # fmt: skip
    found: list[LoadedFile] = []
    with db.read() as connection:
        if None in chunks:
            found += [LoadedFile(*row) for row in connection.execute(query.where(n.chunk.is_(None)))]
        for batch in id_batches(sorted(chunk for chunk in chunks if chunk is not None)):
            found += [LoadedFile(*row) for row in connection.execute(query.where(n.chunk.in_(batch)))]
    return found


def _done(case: str, table: str, *columns: ColumnElement) -> Select:
    """The done notices of a table joined with the attempts that loaded them, chunk by chunk."""
    n = notices.c
    return (
        select(*columns)
        .join(attempts, attempts.c.id == n.attempt_id)
        .where(n.case == case, n.table == table, n.status == "done")
        .order_by(n.chunk, n.overlap, n.path)
    )


@dataclass(frozen=True)
class PartitionOwner:
    """A notice's current attempt and where it writes (`worker`: a name, `all`, or None before it writes)."""

    notice_id: int
    table: str
    chunk: int | None
    overlap: bool
    status: str
    attempt_id: int
    worker: str | None


def partition_owners(db: CatalogDB, case: str, tables: set[str]) -> list[PartitionOwner]:
    n = notices.c
    with db.read() as connection:
        rows = connection.execute(
            select(n.id, n.table, n.chunk, n.overlap, n.status, n.attempt_id, n.worker).where(
                n.case == case, n.table.in_(sorted(tables)), n.attempt_id.is_not(None)
            )
        ).all()
    return [PartitionOwner(*row) for row in rows]


@dataclass(frozen=True)
class Hold:
    """A running notice's lock: who holds it and whether its lease has lapsed."""

    notice_id: int
    host: str | None
    pid: int | None
    lapsed: bool


def reclaimable_holds(db: CatalogDB) -> list[Hold]:
    """Every running notice's hold (the caller decides which owners are dead)."""
    now = utcnow()
    n = notices.c
    with db.read() as connection:
        rows = connection.execute(select(n.id, n.owner_host, n.owner_pid, n.lease_until).where(n.status == "running"))
        return [Hold(i, host, pid, lease is not None and lease < now) for i, host, pid, lease in rows]


@dataclass(frozen=True)
class CaseFile:
    """A notice as verifying a case reads it."""

    table: str
    chunk: int | None
    overlap: bool
    path: str
    format: str
    rows: int | None  # what its done attempt loaded (None: not done)


def case_files(db: CatalogDB, case: str) -> list[CaseFile]:
    n = notices.c
    with db.read() as connection:
        rows = connection.execute(
            select(n.table, n.chunk, n.overlap, n.path, n.format, n.rows).where(n.case == case).order_by(n.id)
        ).all()
    return [CaseFile(*row) for row in rows]


def pending_chunk_bytes(db: CatalogDB) -> dict[str, dict[int, int]]:
    """Bytes of the notices not done yet, per case and chunk (regular tables left out)."""
    n = notices.c
    query = (
        select(n.case, n.chunk, func.sum(n.size))
        .where(n.status != "done", n.chunk.is_not(None))
        .group_by(n.case, n.chunk)
    )
    pending: dict[str, dict[int, int]] = {}
    with db.read() as connection:
        for case, chunk, size in connection.execute(query):
            pending.setdefault(case, {})[chunk] = int(size or 0)
    return pending

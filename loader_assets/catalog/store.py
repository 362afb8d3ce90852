"""The state machine of notices: the ONE place where a notice's status or lock changes.

    ready/failed ──claim──► running ──finish──► done | failed
                               │
                               └─ lease expired / owner dead / released ──► failed (attempt `lost`)

`claim` is one conditional UPDATE … RETURNING: whoever runs it, only notices that are free are taken, and
each notice is taken by exactly one caller. Every claim writes an attempt row first; the worker loader names
the partition of the rows it writes after that attempt, so the rows of any attempt that did not end `done`
can be dropped exactly.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, bindparam, false, select, update
from sqlalchemy import case as sql_case

from loader_assets.catalog import schema
from loader_assets.catalog.claims import ClaimContext, Refused, claimable, refusals
from loader_assets.catalog.database import CatalogDB, catalog_db, id_batches
from loader_assets.catalog.gates import bump, bump_notices
from loader_assets.catalog.schema import attempts, cases, notices
from loader_assets.catalog.time import utcnow
from loader_assets.problems import CasePaused, Unknown
from loader_assets.settings import Settings

FINAL_OUTCOMES = ("done", "failed")


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (a SIGKILLed child stays a zombie until reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def process_alive_here(host: str | None, pid: int | None, here: str | None = None) -> bool:
    """False only for a process of this host (`here`) that is gone; another host's cannot be seen from here."""
    if host == (here or socket.gethostname()) and pid:
        return pid_alive(pid)
    return True


@dataclass(frozen=True)
class Owner:
    """Who holds a lock: the Dagster run (or CLI run id) and the process doing the work."""

    run_id: str
    host: str
    pid: int

    @classmethod
    def current(cls, run_id: str) -> Owner:
        return cls(run_id=run_id, host=socket.gethostname(), pid=os.getpid())


@dataclass(frozen=True)
class Claim:
    """A notice taken by one attempt, with what the loader needs to know."""

    notice_id: int
    attempt_id: int
    case: str
    table: str
    level: int
    chunk: int | None
    overlap: bool
    path: str
    format: str
    size: int
    mtime: float  # the file as registered when claimed: a load that ends with another file is not `done`
    # Earlier attempts whose rows, if any reached a worker, must go before this attempt loads.
    discard_attempts: tuple[int, ...]


@dataclass(frozen=True)
class Released:
    """A lock taken back from a holder that is gone, or released by hand."""

    notice_id: int
    attempt_id: int | None
    case: str
    table: str
    chunk: int | None
    overlap: bool
    worker: str | None
    run_id: str | None


class Store:
    """State transitions of the catalog, under its policy: how long a lease lasts, after how many failed attempts
    automatic scheduling parks a notice. All timestamps are naive UTC."""

    def __init__(self, db: CatalogDB, *, lease_seconds: float = 300.0, max_attempts: int = 3) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts

    @classmethod
    def of(cls, settings: Settings) -> Store:
        """The catalog the settings name, under their policy."""
        return cls.from_url(settings.catalog_url, lease_seconds=settings.lease_seconds,
                            max_attempts=settings.max_attempts)  # fmt: skip

    @classmethod
    def from_url(cls, url: str, *, lease_seconds: float = 300.0, max_attempts: int = 3) -> Store:
        return cls(catalog_db(url), lease_seconds=lease_seconds, max_attempts=max_attempts)

    # -- claiming -------------------------------------------------------------------------------------

    def claim(
        self, notice_ids: Iterable[int], owner: Owner, *, force: bool = False, now: datetime | None = None
    ) -> list[Claim]:
        """Take the notices among `notice_ids` that `claims.RULES` let through; returns exactly those taken."""
        now = now or utcnow()
        ids = sorted(set(notice_ids))
        claims: list[Claim] = []
        with self.db.write() as connection:
            for batch in id_batches(ids):
                taken = self._take(connection, batch, owner, ClaimContext(now, force=force))
                if taken:
                    claims.extend(self._open_attempts(connection, taken, owner, now))
                    bump_notices(connection, taken, now)  # their tables' verdicts no longer hold
        return claims

    def _take(self, connection: Connection, ids: list[int], owner: Owner, ctx: ClaimContext) -> list[int]:
        now = ctx.now
        statement = (
            update(notices)
            .where(notices.c.id.in_(ids), claimable(ctx))
            .values(
                status="running",
                locked_by=owner.run_id,
                owner_host=owner.host,
                owner_pid=owner.pid,
                locked_at=now,
                heartbeat_at=now,
                lease_until=now + self.lease,
                started_at=now,
                finished_at=None,
                error=None,
                attempts=notices.c.attempts + 1,
                updated_at=now,
            )
            .returning(notices.c.id)
        )
        return sorted(connection.execute(statement).scalars())

    def _open_attempts(self, connection: Connection, ids: list[int], owner: Owner, now: datetime) -> list[Claim]:
        # Any attempt still `running` lost its lease to us; a `done` one is replaced by this load.
        connection.execute(
            update(attempts)
            .where(attempts.c.notice.in_(ids), attempts.c.outcome == "running")
            .values(outcome="lost", finished_at=now, error="lease taken over by run " + owner.run_id)
        )
        connection.execute(
            update(attempts)
            .where(attempts.c.notice.in_(ids), attempts.c.outcome == "done")
            .values(outcome="superseded")
        )
        rows = [
            {
                "notice": i,
                "run_id": owner.run_id,
                "host": owner.host,
                "pid": owner.pid,
                "started_at": now,
                "outcome": "running",
            }
            for i in ids
        ]
        new_ids = connection.execute(
            attempts.insert().returning(attempts.c.id, attempts.c.notice, sort_by_parameter_order=True), rows
        ).all()
        attempt_of = {notice: attempt for attempt, notice in new_ids}
        connection.execute(
            update(notices).where(notices.c.id == bindparam("nid")).values(attempt_id=bindparam("aid")),
            [{"nid": n, "aid": a} for n, a in attempt_of.items()],
        )
        discard = self._unfinished_attempts(connection, ids, exclude=set(attempt_of.values()))
        names = ("id", "case", "table", "level", "chunk", "overlap", "path", "format", "size", "mtime")
        columns = [notices.c[name] for name in names]
        selected = connection.execute(select(*columns).where(notices.c.id.in_(ids)).order_by(notices.c.id)).all()
        return [
            Claim(
                notice_id=row.id,
                attempt_id=attempt_of[row.id],
                case=row.case,
                table=row.table,
                level=row.level,
                chunk=row.chunk,
                overlap=row.overlap,
                path=row.path,
                format=row.format,
                size=row.size,
                mtime=row.mtime,
                discard_attempts=tuple(discard.get(row.id, ())),
            )
            for row in selected
        ]

    @staticmethod
    def _unfinished_attempts(connection: Connection, ids: list[int], exclude: set[int]) -> dict[int, list[int]]:
        result: dict[int, list[int]] = {}
        rows = connection.execute(
            select(attempts.c.notice, attempts.c.id)
            .where(attempts.c.notice.in_(ids), attempts.c.outcome != "done")
            .order_by(attempts.c.id)
        )
        for notice, attempt in rows:
            if attempt not in exclude:
                result.setdefault(notice, []).append(attempt)
        return result

    def why_not_claimed(self, notice_ids: Iterable[int], *, force: bool = False) -> dict[int, Refused]:
        """For notices a claim did not take: who holds them, or which rule refused them."""
        ids = sorted(set(notice_ids))
        reasons: dict[int, Refused] = {}
        with self.db.read() as connection:
            for batch in id_batches(ids):
                reasons.update(refusals(connection, batch, ClaimContext(utcnow(), force=force)))
        return reasons

    # -- while loading ---------------------------------------------------------------------------------

    def heartbeat(self, attempt_ids: Iterable[int], *, now: datetime | None = None) -> set[int]:
        """Extend the leases of these attempts; returns the notices they still hold (a missing one was taken back).

        Per attempt, not per run: in a multiprocess executor a dead step's leases lapse beside its live siblings."""
        now = now or utcnow()
        held: set[int] = set()
        with self.db.write() as connection:
            for batch in id_batches(sorted(set(attempt_ids))):
                held |= set(
                    connection.execute(
                        update(notices)
                        .where(notices.c.attempt_id.in_(batch), notices.c.status == "running")
                        .values(heartbeat_at=now, lease_until=now + self.lease, updated_at=now)
                        .returning(notices.c.id)
                    ).scalars()
                )
        return held

    def set_workers(self, workers: dict[int, str], *, now: datetime | None = None) -> set[int]:
        """Record where each attempt (id -> worker) writes, before it writes, so recovery knows where to clean.

        Returns the attempts that still hold their notice under a live lease; the others (a run stopped beyond
        its lease, then resumed, before its heartbeat noticed) must not write at all.
        """
        now = now or utcnow()
        held: set[int] = set()
        with self.db.write() as connection:
            for worker in sorted(set(workers.values())):
                ids = sorted(a for a, w in workers.items() if w == worker)
                for batch in id_batches(ids):
                    taken = list(
                        connection.execute(
                            update(notices)
                            .where(notices.c.attempt_id.in_(batch), notices.c.status == "running",
                                   notices.c.lease_until >= now)
                            .values(worker=worker)
                            .returning(notices.c.attempt_id)
                        ).scalars()
                    )  # fmt: skip
                    connection.execute(update(attempts).where(attempts.c.id.in_(taken)).values(worker=worker))
                    held |= set(taken)
        return held

    def finish(
        self,
        attempt_id: int,
        outcome: str,
        *,
        rows: int | None = None,
        warnings: int | None = None,
        error: str | None = None,
        fingerprint: dict[str, str] | None = None,
        claimed_file: tuple[int, float] | None = None,
        changed_on_disk: tuple[int, float] | None = None,
        now: datetime | None = None,
    ) -> str | None:
        """Record the end of an attempt (with the key fingerprint of its file) and release its notice, together.

        Returns the notice's status, or None when the attempt no longer holds it (its lease was taken back):
        the caller must then discard what it wrote. A `done` whose file changed during the load — registered
        meanwhile (the notice's size and mtime are no longer `claimed_file`), or `changed_on_disk` (the size and
        mtime the loader found after the load, when they differ from those before it) — ends `ready` and
        changed instead: the caller discards its rows, the new content loads next time.
        """
        assert outcome in FINAL_OUTCOMES, f"outcome must be one of {FINAL_OUTCOMES}, got {outcome!r}"
        now = now or utcnow()
        held = and_(notices.c.attempt_id == attempt_id, notices.c.status == "running")
        with self.db.write() as connection:
            if outcome == "done" and changed_on_disk is not None:
                size, mtime = changed_on_disk
                connection.execute(update(notices).where(held).values(size=size, mtime=mtime, changed=True))
            stale = outcome == "done" and (
                changed_on_disk is not None or _registered_anew(connection, held, claimed_file)
            )
            status, error = ("ready", "file changed during its load: loaded again") if stale else (outcome, error)
            released = connection.execute(
                update(notices)
                .where(held)
                .values(
                    status=status,
                    rows=rows if status == "done" else None,
                    error=error,
                    finished_at=now,
                    updated_at=now,
                    changed=False if status == "done" else notices.c.changed,
                    retry_after=_backoff(notices.c.attempts, now) if status == "failed" else None,
                    **_UNLOCKED,
                )
                .returning(notices.c.id)
            ).first()
            connection.execute(
                update(attempts)
                .where(attempts.c.id == attempt_id, attempts.c.outcome == "running")
                .values(
                    outcome=("failed" if stale else outcome) if released else "lost",
                    finished_at=now,
                    rows=rows,
                    warnings=warnings,
                    fingerprint=fingerprint,
                    error=error if released else f"lock lost before finishing ({error or outcome})",
                )
            )
            return status if released is not None else None

    def give_back(self, attempt_ids: Iterable[int], reason: str, *, now: datetime | None = None) -> set[int]:
        """The attempts ended through no fault of their files (a server down, an interrupt): their notices are
        `ready` again and the attempts are not counted (automatic scheduling parks a notice only for its own
        failures); each attempt's history keeps the reason, as `released`. Returns the notices given back.

        Only notices these attempts still hold: one taken over meanwhile belongs to its new holder."""
        now = now or utcnow()
        given: set[int] = set()
        with self.db.write() as connection:
            for batch in id_batches(sorted(set(attempt_ids))):
                returned = connection.execute(
                    update(notices)
                    .where(notices.c.attempt_id.in_(batch), notices.c.status == "running")
                    .values(status="ready", attempts=notices.c.attempts - 1, error=reason, finished_at=now,
                            updated_at=now, retry_after=None, **_UNLOCKED)
                    .returning(notices.c.id, notices.c.attempt_id)
                ).all()  # fmt: skip
                mine = [attempt for _notice, attempt in returned]
                connection.execute(
                    update(attempts)
                    .where(attempts.c.id.in_(mine), attempts.c.outcome == "running")
                    .values(outcome="released", finished_at=now, error=reason)
                )
                given |= {notice for notice, _attempt in returned}
            bump_notices(connection, sorted(given), now)
        return given

    # -- recovery -------------------------------------------------------------------------------------

    def reclaim(
        self,
        *,
        notice_ids: Iterable[int] | None = None,
        case: str | None = None,
        host: str | None = None,
        now: datetime | None = None,
        after_select: Callable[[], None] | None = None,
    ) -> list[Released]:
        """Take back locks whose owner is dead on this host, or whose lease has expired, as `failed` (among
        `notice_ids`, or of `case`, or all).

        `after_select` is a test's hook at the racy point: after the holders were read, before any release."""
        now = now or utcnow()
        host = host or socket.gethostname()
        query = select(
            notices.c.id, notices.c.attempt_id, notices.c.owner_host, notices.c.owner_pid,
            notices.c.lease_until, notices.c.locked_by,
        ).where(notices.c.status == "running")  # fmt: skip
        if case is not None:
            query = query.where(notices.c.case == case)
        with self.db.write() as connection:
            if notice_ids is None:
                running = connection.execute(query).all()
            else:
                running = [row for batch in id_batches(sorted(set(notice_ids)))
                           for row in connection.execute(query.where(notices.c.id.in_(batch))).all()]  # fmt: skip
            releases: dict[int, _Release] = {}
            for row in running:
                if row.lease_until is not None and row.lease_until < now:
                    reason = f"stale: lease of run {row.locked_by} expired at {row.lease_until:%Y-%m-%d %H:%M:%S}"
                    releases[row.id] = _Release(reason, row.attempt_id, expired_by=now)
                elif not process_alive_here(row.owner_host, row.owner_pid, host):
                    reason = f"owner gone: process {row.owner_pid} of run {row.locked_by} on {host} is dead"
                    releases[row.id] = _Release(reason, row.attempt_id)
            if after_select is not None:
                after_select()
            return self._release(connection, releases, now)

    def release_run(self, run_id: str, reason: str, *, now: datetime | None = None) -> list[Released]:
        """Release by hand every lock of `run_id` (e.g. a run an operator knows is dead)."""
        now = now or utcnow()
        with self.db.write() as connection:
            held = connection.execute(
                select(notices.c.id, notices.c.attempt_id).where(
                    notices.c.locked_by == run_id, notices.c.status == "running"
                )
            ).all()
            releases = {row.id: _Release(f"released by hand: {reason}", row.attempt_id) for row in held}
            return self._release(connection, releases, now)

    @staticmethod
    def _release(connection: Connection, releases: dict[int, _Release], now: datetime) -> list[Released]:
        """Release each notice only if the attempt seen holds it still (and, for a lapsed lease, it is still
        lapsed): a claim that took it over meanwhile is never released by a decision made on what it replaced."""
        released: list[Released] = []
        for notice_id, release in releases.items():
            fence = [
                notices.c.id == notice_id,
                notices.c.status == "running",
                notices.c.attempt_id == release.attempt_id,
            ]
            if release.expired_by is not None:
                fence.append(notices.c.lease_until < release.expired_by)
            row = connection.execute(
                update(notices)
                .where(*fence)
                .values(
                    status="failed", error=release.reason, finished_at=now, updated_at=now, retry_after=None,
                    **_UNLOCKED,
                )
                .returning(notices.c.case, notices.c.table, notices.c.chunk, notices.c.overlap, notices.c.worker)
            ).first()  # fmt: skip
            if row is None:
                continue
            run_id = connection.execute(select(attempts.c.run_id).where(attempts.c.id == release.attempt_id)).scalar()
            connection.execute(
                update(attempts)
                .where(attempts.c.id == release.attempt_id, attempts.c.outcome == "running")
                .values(outcome="lost", finished_at=now, error=release.reason)
            )
            released.append(
                Released(notice_id, release.attempt_id, row.case, row.table, row.chunk, row.overlap, row.worker, run_id)
            )
        bump_notices(connection, [item.notice_id for item in released], now)
        return released

    def record_reconciliation(
        self,
        case: str,
        notes: dict[int, str],
        missing: dict[int, str],
        tables: set[str],
        *,
        now: datetime | None = None,
    ) -> None:
        """What reconciling a case's workers did: a line in the history of each attempt whose stray partition was
        dropped, done notices whose partition is gone failed (to load again), and the gates of both reopened."""
        now = now or utcnow()
        with self.db.write() as connection:
            for attempt_id, note in notes.items():
                connection.execute(
                    update(attempts)
                    .where(attempts.c.id == attempt_id)
                    .values(error=sql_case((attempts.c.error.is_(None), note), else_=attempts.c.error + "; " + note))
                )
            failed = []
            for notice_id, reason in missing.items():
                done = connection.execute(
                    update(notices)
                    .where(notices.c.id == notice_id, notices.c.status == "done")
                    .values(status="failed", error=reason, updated_at=now, retry_after=None)
                    .returning(notices.c.attempt_id)
                ).scalar()
                if done is not None:
                    connection.execute(
                        update(attempts).where(attempts.c.id == done).values(outcome="failed", error=reason)
                    )
                    failed.append(notice_id)
            bump_notices(connection, failed, now)
            bump(connection, case, tables, now)

    # -- operator actions ------------------------------------------------------------------------------

    def reset(self, notice_ids: Iterable[int], *, now: datetime | None = None) -> int:
        """Make failed or done notices `ready` again with a fresh attempt budget (history is kept)."""
        now = now or utcnow()
        count = 0
        with self.db.write() as connection:
            for batch in id_batches(sorted(set(notice_ids))):
                reset = connection.execute(
                    update(notices)
                    .where(notices.c.id.in_(batch), notices.c.status.in_(["failed", "done"]))
                    .values(status="ready", attempts=0, error=None, retry_after=None, updated_at=now)
                    .returning(notices.c.id)
                ).scalars()
                ids = list(reset)
                bump_notices(connection, ids, now)
                count += len(ids)
        return count

    def set_case_state(self, case: str, state: str) -> None:
        """Pause (no new claims) or resume a case; not one being dropped (only `drop` ends that)."""
        assert state in schema.CASE_STATES, f"state must be one of {schema.CASE_STATES}, got {state!r}"
        with self.db.write() as connection:
            mine = and_(cases.c.case == case, cases.c.dropping == false())  # one statement: no drop starts between
            if connection.execute(update(cases).where(mine).values(state=state)).rowcount == 0:
                if connection.execute(select(cases.c.case).where(cases.c.case == case)).first() is None:
                    raise Unknown.named("case", case, "status")
                raise CasePaused.of(case, "dropping")


def mark_changed(connection: Connection, notice_id: int, size: int, mtime: float, now: datetime) -> None:
    """A registered file changed on disk: remember it and make it loadable again (never kept silently).

    A running notice keeps running (its loader finishes it); the next load replaces its rows.
    """
    connection.execute(
        update(notices)
        .where(notices.c.id == notice_id)
        .values(
            size=size,
            mtime=mtime,
            changed=True,
            updated_at=now,
            status=sql_case((notices.c.status == "running", notices.c.status), else_="ready"),
        )
    )


def _registered_anew(connection: Connection, held: ColumnElement[bool], claimed: tuple[int, float] | None) -> bool:
    """The held notice's file was registered again, changed, since it was claimed."""
    if claimed is None:
        return False
    now = connection.execute(select(notices.c.size, notices.c.mtime).where(held)).first()
    return now is not None and (now.size, now.mtime) != claimed


@dataclass(frozen=True)
class _Release:
    """Why a held notice is taken back, fenced by the attempt that was seen holding it."""

    reason: str
    attempt_id: int | None
    expired_by: datetime | None = None  # for a lapsed lease: only while it is still lapsed at this time


_UNLOCKED = {"locked_by": None, "owner_host": None, "owner_pid": None, "lease_until": None}


def _backoff(attempts_column, now: datetime):  # type: ignore[no-untyped-def]
    """Retry after 1, 2, 4 … minutes (capped at an hour), so automatic retries do not hammer a worker."""
    return sql_case(
        *[(attempts_column <= n, now + timedelta(minutes=min(2 ** (n - 1), 60))) for n in range(1, 8)],
        else_=now + timedelta(hours=1),
    )

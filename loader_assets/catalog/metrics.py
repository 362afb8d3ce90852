"""The numbers the Prometheus exporter serves, read from the catalog on each scrape (so they survive any restart):
notices per case, level, table and shown status; rows and bytes loaded per worker and table; gate states; held
locks and the oldest; stalls; seconds since a case last finished a notice."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from loader_assets.catalog.findings import STALLED
from loader_assets.catalog.schema import attempts, level_gates, notices
from loader_assets.catalog.store import Store
from loader_assets.catalog.time import utcnow
from loader_assets.catalog.views import shown_status


@dataclass(frozen=True)
class Numbers:
    notices: list[tuple[str, int, str, str, int]]  # case, level, table, shown status, notices
    loaded: list[tuple[str, str, str, int, int]]  # case, table, worker, rows, bytes (done attempts)
    gates: list[tuple[str, int, str, str]]  # case, level, table, status
    locks: list[tuple[str, int, float]]  # case, held locks, age of the oldest in seconds
    stalls: list[tuple[str, int]]  # case, stalled statements given back
    idle: list[tuple[str, float]]  # case, seconds since its last finished notice


def numbers(store: Store) -> Numbers:
    n, a, g = notices.c, attempts.c, level_gates.c
    now = utcnow()
    shown = shown_status(store.max_attempts)
    with store.db.read() as connection:
        counted = connection.execute(
            select(n.case, n.level, n.table, shown, func.count()).group_by(n.case, n.level, n.table, shown)
        ).all()
        loaded = connection.execute(
            select(n.case, n.table, a.worker, func.coalesce(func.sum(a.rows), 0), func.coalesce(func.sum(n.size), 0))
            .join(notices, n.id == a.notice)
            .where(a.outcome == "done", n.status == "done", n.attempt_id == a.id)
            .group_by(n.case, n.table, a.worker)
        ).all()
        gates = connection.execute(select(g.case, g.level, g.table, g.status)).all()
        locks = connection.execute(
            select(n.case, func.count(), func.min(n.locked_at)).where(n.status == "running").group_by(n.case)
        ).all()
        stalls = connection.execute(
            select(n.case, func.count())
            .join(notices, n.id == a.notice)
            .where(a.outcome == "released", a.error.like(f"% {STALLED}:%"))
            .group_by(n.case)
        ).all()
        last = connection.execute(
            select(n.case, func.max(n.finished_at)).where(n.finished_at.is_not(None)).group_by(n.case)
        ).all()
    return Numbers(
        notices=[(c, int(level), t, s, int(k)) for c, level, t, s, k in counted],
        loaded=[(c, t, w or "", int(rows), int(size)) for c, t, w, rows, size in loaded],
        gates=[(c, int(level), t, s) for c, level, t, s in gates],
        locks=[(c, int(k), (now - oldest).total_seconds() if oldest else 0.0) for c, k, oldest in locks],
        stalls=[(c, int(k)) for c, k in stalls],
        idle=[(c, (now - finished).total_seconds()) for c, finished in last],
    )

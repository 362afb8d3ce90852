"""What deserves an alert, as the catalog knows it — a gate that failed, a statement that stalled, a notice parked
after its last automatic attempt — and the alerts already delivered, so each goes out once."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import and_, select

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import alerts_sent, attempts, level_gates, notices
from loader_assets.catalog.time import utcnow

STALLED = "stalled"  # the word a stall's diagnosis carries (engine.watchdog)
STALLED_WORKER = re.compile(rf"worker (\S+) \([^)]*\) {STALLED}:")  # the diagnosis names its server first


@dataclass(frozen=True)
class Finding:
    """Something to tell: its key (the same event, the same key), kind, where, what and the command showing more."""

    key: str
    kind: str  # run | gate | stall | parked
    case: str | None
    level: int | None
    table: str | None
    worker: str | None
    cause: str
    more: str


def failed_gates(db: CatalogDB) -> list[Finding]:
    g = level_gates.c
    with db.read() as connection:
        rows = connection.execute(
            select(g.case, g.level, g.table, g.generation, g.details).where(g.status == "failed")
        ).all()
    found = []
    for case, level, table, generation, details in rows:
        checks = ", ".join((details or {}).get("failed_checks", []))
        cause = f"level {level} of {case}/{table} failed: checks {checks}"
        found.append(
            Finding(
                f"gate:{case}:{level}:{table}@{generation}",
                "gate",
                case,
                level,
                table,
                None,
                cause,
                f"loader-assets status --case {case}",
            )
        )
    return found


def stalls(db: CatalogDB) -> list[Finding]:
    a, n = attempts.c, notices.c
    query = (
        select(a.id, a.worker, a.error, n.case, n.level, n.table, n.id)
        .join(notices, n.id == a.notice)
        .where(a.outcome == "released", a.error.like(f"% {STALLED}:%"))
    )
    with db.read() as connection:
        rows = connection.execute(query).all()
    return [
        Finding(
            f"stall:{attempt}",
            "stall",
            case,
            level,
            table,
            _stalled_worker(error or "", worker),
            error or "",
            "loader-assets doctor",
        )
        for attempt, worker, error, case, level, table, _notice in rows
    ]


def _stalled_worker(error: str, worker: str | None) -> str | None:
    """The worker whose statement stalled (a regular table's attempt is on every worker: its diagnosis says)."""
    named = STALLED_WORKER.search(error)
    return named.group(1) if named else worker


def parked(db: CatalogDB, max_attempts: int) -> list[Finding]:
    n = notices.c
    query = select(n.id, n.attempt_id, n.case, n.level, n.table, n.worker, n.error, n.path).where(
        and_(n.status == "failed", n.attempts >= max_attempts)
    )
    with db.read() as connection:
        rows = connection.execute(query).all()
    found = []
    for notice, attempt, case, level, table, worker, error, path in rows:
        cause = f"{path} failed {max_attempts} times, last: {error}"
        more = f"loader-assets history {notice}; then loader-assets reset {notice}"
        found.append(Finding(f"parked:{notice}:{attempt}", "parked", case, level, table, worker, cause, more))
    return found


def unsent(db: CatalogDB, findings: Iterable[Finding]) -> list[Finding]:
    findings = list(findings)
    keys = [f.key for f in findings]
    sent: set[str] = set()
    with db.read() as connection:
        for start in range(0, len(keys), 1000):
            part = keys[start : start + 1000]
            sent |= set(connection.execute(select(alerts_sent.c.key).where(alerts_sent.c.key.in_(part))).scalars())
    return [f for f in findings if f.key not in sent]


def record_sent(db: CatalogDB, findings: Iterable[Finding]) -> None:
    now = utcnow()
    rows = [{"key": f.key, "kind": f.kind, "case": f.case, "sent_at": now} for f in findings]
    if rows:
        with db.write() as connection:
            connection.execute(alerts_sent.insert(), rows)

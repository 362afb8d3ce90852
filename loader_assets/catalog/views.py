"""What operators print: status counts, gates, locks, the history of a notice (read-only frames)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy import case as sql_case

from loader_assets.catalog.claims import gate_closed, parked
from loader_assets.catalog.database import CatalogDB, id_batches
from loader_assets.catalog.schema import attempts, case_state, cases, level_gates, notices
from loader_assets.catalog.store import Store
from loader_assets.catalog.time import utcnow

if TYPE_CHECKING:
    import pandas as pd  # imported where used: half a second of every command's start-up

LOCK_COLUMNS = ("id", "case", "table", "chunk", "locked_by", "owner_host", "owner_pid", "locked_at", "heartbeat_at",
                "lease_until")  # fmt: skip


# Beside the statuses: ready notices a closed gate holds back, failed ones out of automatic attempts.
SHOWN_STATUSES = ("ready", "gate-blocked", "running", "done", "failed", "parked")


def shown_status(max_attempts: int) -> ColumnElement[str]:
    """SQL on `notices`: the status an operator sees (gate-blocked and parked apart)."""
    return sql_case(
        (and_(notices.c.status == "ready", gate_closed()), "gate-blocked"),
        (parked(max_attempts), "parked"),
        else_=notices.c.status,
    ).label("status")


def shown_statuses(store: Store, ids: list[int]) -> pd.Series:
    """Notice id -> the status an operator sees."""
    import pandas as pd

    found: dict[int, str] = {}
    shown = shown_status(store.max_attempts)
    with store.db.read() as connection:
        for batch in id_batches(sorted(set(ids))):
            found.update(connection.execute(select(notices.c.id, shown).where(notices.c.id.in_(batch))).all())
    return pd.Series(found, name="status", dtype=object)


def chunk_statuses(store: Store, case: str) -> pd.DataFrame:
    """Table, chunk and shown status of each chunked notice of the case."""
    import pandas as pd

    query = select(notices.c.table, notices.c.chunk, shown_status(store.max_attempts)).where(
        notices.c.case == case, notices.c.chunk.is_not(None)
    )
    with store.db.read() as connection:
        return pd.DataFrame(connection.execute(query).all(), columns=["table", "chunk", "status"])


def status_rows(store: Store, case: str | None = None) -> list[dict[str, object]]:
    """Notices per case / level / table: a row each, with a count per shown status plus the total (no pandas:
    `status` prints them at the end of every load, where pandas' import would cost a quarter second)."""
    shown = shown_status(store.max_attempts)
    query = select(notices.c.case, notices.c.level, notices.c.table, shown, func.count().label("n"))
    if case is not None:
        query = query.where(notices.c.case == case)
    query = query.group_by(notices.c.case, notices.c.level, notices.c.table, shown)
    with store.db.read() as connection:
        found = connection.execute(query).all()
    rows: dict[tuple[str, int, str], dict[str, object]] = {}
    for case_name, level, table, status, n in found:
        row = rows.setdefault((case_name, level, table), {"case": case_name, "level": level, "table": table,
                                                           **dict.fromkeys(SHOWN_STATUSES, 0), "total": 0})  # fmt: skip
        row[status] = n
        row["total"] += n  # type: ignore[operator]
    return [rows[key] for key in sorted(rows)]


def status_counts(store: Store, case: str | None = None) -> pd.DataFrame:
    return counts_frame(status_rows(store, case))


def counts_frame(rows: list[dict[str, object]]) -> pd.DataFrame:
    """`status_rows` as a frame indexed by case / level / table."""
    import pandas as pd

    columns = ["case", "level", "table", *SHOWN_STATUSES, "total"]
    return pd.DataFrame(rows, columns=columns).set_index(["case", "level", "table"])


def gate_rows(db: CatalogDB, case: str | None = None) -> list[dict[str, object]]:
    """Each gate with its generation, the validation holding it (until its lease lapses), its verdict's failed checks
    and warnings (and their first keys)."""
    query = select(
        level_gates.c.case,
        level_gates.c.level,
        level_gates.c.table,
        level_gates.c.status,
        level_gates.c.generation,
        level_gates.c.validating_run,
        level_gates.c.validating_until,  # the validation's lease: past it, the next validation takes the lock
        level_gates.c.check_run,
        level_gates.c.updated_at,
        level_gates.c.details,
    ).order_by(level_gates.c.case, level_gates.c.level, level_gates.c.table)
    if case is not None:
        query = query.where(level_gates.c.case == case)
    with db.read() as connection:
        found = connection.execute(query).mappings().all()
    return [{**{k: v for k, v in row.items() if k != "details"}, "checks": _verdict(row["details"])} for row in found]


def _verdict(details: dict | None) -> str:
    """`failed: x (first keys …); warning: orphan_rows (36 rows; first keys 3900…: 36)`."""
    details = details or {}
    parts = []
    for label, names in (("failed", details.get("failed_checks", [])), ("warning", details.get("warnings", []))):
        for name in names:
            found = details.get(name, {})
            rows = f"{found['rows']} rows; " if "rows" in found else ""
            first = found.get("first keys (key: rows)") or found.get("first") or found.get("first mismatches") or ""
            parts.append(f"{label}: {name} ({rows}first {first})" if rows or first else f"{label}: {name}")
    return "; ".join(parts)


def locks(db: CatalogDB, case: str | None = None) -> pd.DataFrame:
    """Held locks with owner, age and lease left; `stale` marks a lease that has run out."""
    import pandas as pd

    query = (
        select(*(notices.c[name] for name in LOCK_COLUMNS))
        .where(notices.c.locked_by.is_not(None))
        .order_by(notices.c.id)
    )
    if case is not None:
        query = query.where(notices.c.case == case)
    with db.read() as connection:
        frame = pd.DataFrame(connection.execute(query).mappings().all())
    if frame.empty:
        return frame
    now = utcnow()
    frame["age_s"] = (now - frame["locked_at"]).dt.total_seconds().round(1)
    frame["lease_left_s"] = (frame["lease_until"] - now).dt.total_seconds().round(1)
    frame["stale"] = frame["lease_left_s"] < 0
    return frame


def history(db: CatalogDB, notice_id: int) -> pd.DataFrame:
    """Every attempt at a notice, oldest first."""
    import pandas as pd

    query = select(attempts).where(attempts.c.notice == notice_id).order_by(attempts.c.id)
    with db.read() as connection:
        return pd.DataFrame(connection.execute(query).mappings().all())


@dataclass(frozen=True)
class Overview:
    """One case at a glance: what `status`, `locks` and the gates say, as the UI's overview asset shows it."""

    case: str
    state: str
    counts: dict[str, dict[str, int]]  # "<level> <table>" -> shown status -> notices (as `status` prints them)
    gates: list[dict[str, object]]  # level, table, status, checks
    held_locks: int
    stale_locks: int
    unfinished_chunks: list[int]  # chunks with a notice not done, first ones

    def markdown(self) -> str:
        head = "| level | table | " + " | ".join(SHOWN_STATUSES) + " | total |"
        rule = "|" + "---|" * (len(SHOWN_STATUSES) + 3)
        rows = [
            f"| {key.split(' ', 1)[0]} | {key.split(' ', 1)[1]} | "
            + " | ".join(str(counts.get(s, 0)) for s in SHOWN_STATUSES) + f" | {counts.get('total', 0)} |"
            for key, counts in self.counts.items()
        ]  # fmt: skip
        gates = [f"- level {g['level']} {g['table']}: **{g['status']}** {g['checks']}".rstrip() for g in self.gates]
        return "\n".join([f"**case {self.case}: {self.state}**", "", head, rule, *rows, "", *gates])


def overview(store: Store, case: str, *, shown_chunks: int = 20) -> Overview:
    db = store.db
    with db.read() as connection:
        state = connection.execute(select(case_state()).where(cases.c.case == case)).scalar_one()
        unfinished = connection.execute(
            select(notices.c.chunk).where(notices.c.case == case, notices.c.status != "done", notices.c.chunk.is_not(None))
            .group_by(notices.c.chunk).order_by(notices.c.chunk).limit(shown_chunks)
        ).scalars().all()  # fmt: skip
    counts = {f"{row['level']} {row['table']}": {s: row[s] for s in (*SHOWN_STATUSES, "total")}
              for row in status_rows(store, case)}  # fmt: skip
    shown_gates = [{k: row[k] for k in ("level", "table", "status", "checks")} for row in gate_rows(db, case)]
    lock_frame = locks(db, case)
    stale = 0 if lock_frame.empty else int(lock_frame["stale"].sum())
    return Overview(case, state, counts, shown_gates, len(lock_frame), stale, list(unfinished))

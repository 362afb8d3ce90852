"""Read-only views of the catalog that operators print: status counts, locks, the history of a notice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from loader_assets.catalog.engine import CatalogDB
from loader_assets.catalog.schema import NOTICE_STATUSES, attempts, cases, level_gates, notices, tables
from loader_assets.catalog.store import utcnow


def status_counts(db: CatalogDB, case: str | None = None) -> pd.DataFrame:
    """Notices per case / level / table and status, one column per status plus the total."""
    query = select(notices.c.case, notices.c.level, notices.c.table, notices.c.status, func.count().label("n"))
    if case is not None:
        query = query.where(notices.c.case == case)
    query = query.group_by(notices.c.case, notices.c.level, notices.c.table, notices.c.status)
    with db.read() as connection:
        frame = pd.DataFrame(connection.execute(query).all(), columns=["case", "level", "table", "status", "n"])
    table = frame.pivot_table(
        index=["case", "level", "table"], columns="status", values="n", fill_value=0, aggfunc="sum"
    )
    table = table.reindex(columns=list(NOTICE_STATUSES), fill_value=0)
    table["total"] = table.sum(axis=1)
    return table.astype(int)


def status_tally(db: CatalogDB, case: str, *, table: str | None = None, level: int | None = None) -> dict[str, int]:
    """Notices of a case (one table, or one level) per status; statuses with none are absent."""
    query = select(notices.c.status, func.count()).where(notices.c.case == case).group_by(notices.c.status)
    if table is not None:
        query = query.where(notices.c.table == table)
    if level is not None:
        query = query.where(notices.c.level == level)
    with db.read() as connection:
        return dict(connection.execute(query).all())


def gates(db: CatalogDB, case: str | None = None) -> pd.DataFrame:
    query = select(
        level_gates.c.case,
        level_gates.c.level,
        level_gates.c.table,
        level_gates.c.status,
        level_gates.c.check_run,
        level_gates.c.updated_at,
    ).order_by(level_gates.c.case, level_gates.c.level)
    if case is not None:
        query = query.where(level_gates.c.case == case)
    with db.read() as connection:
        return pd.DataFrame(connection.execute(query).mappings().all())


def locks(db: CatalogDB, case: str | None = None) -> pd.DataFrame:
    """Held locks with owner, age and lease left; `stale` marks a lease that has run out."""
    query = (
        select(
            notices.c.id,
            notices.c.case,
            notices.c.table,
            notices.c.chunk,
            notices.c.locked_by,
            notices.c.owner_host,
            notices.c.owner_pid,
            notices.c.locked_at,
            notices.c.heartbeat_at,
            notices.c.lease_until,
        )
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
    query = select(attempts).where(attempts.c.notice == notice_id).order_by(attempts.c.id)
    with db.read() as connection:
        return pd.DataFrame(connection.execute(query).mappings().all())


@dataclass(frozen=True)
class TableLayout:
    name: str
    kind: str  # director | child | regular
    level: int
    director_table: str | None
    director_key: str | None
    columns: list[dict]
    indexes: list[dict]

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]


@dataclass(frozen=True)
class CaseLayout:
    """What loading and validating a case needs to know of it, read once from the catalog."""

    case: str
    database: str
    root: Path
    charset: str
    dialect: dict[str, dict[str, str]]
    num_stripes: int
    num_sub_stripes: int
    overlap: float
    state: str
    tables: dict[str, TableLayout]

    def tables_of_kind(self, kind: str) -> list[TableLayout]:
        return [table for table in self.tables.values() if table.kind == kind]


def case_layouts(db: CatalogDB, case: str | None = None) -> dict[str, CaseLayout]:
    """Every registered case (or one) with its tables, by case id."""
    case_query = select(cases).order_by(cases.c.case)
    table_query = select(tables).order_by(tables.c.case, tables.c.level, tables.c.name)
    if case is not None:
        case_query = case_query.where(cases.c.case == case)
        table_query = table_query.where(tables.c.case == case)
    with db.read() as connection:
        case_rows = connection.execute(case_query).all()
        table_rows = connection.execute(table_query).all()
    by_case: dict[str, dict[str, TableLayout]] = {row.case: {} for row in case_rows}
    for row in table_rows:
        by_case[row.case][row.name] = TableLayout(
            name=row.name,
            kind=row.kind,
            level=row.level,
            director_table=row.director_table,
            director_key=row.director_key,
            columns=row.columns,
            indexes=row.indexes,
        )
    return {
        row.case: CaseLayout(
            case=row.case,
            database=row.database,
            root=Path(row.root),
            charset=row.charset,
            dialect=row.dialect,
            num_stripes=row.num_stripes,
            num_sub_stripes=row.num_sub_stripes,
            overlap=row.overlap,
            state=row.state,
            tables=by_case[row.case],
        )
        for row in case_rows
    }


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

"""The layout of a registered case, read once from the catalog: what loading and validating it needs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select

from loader_assets import levels
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import case_state, cases, tables
from loader_assets.problems import Unknown
from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.metadata import Dialect


@dataclass(frozen=True)
class TableLayout:
    name: str
    kind: str  # director | child | regular
    level: int  # its load level
    director_table: str | None
    director_key: str | None
    columns: list[dict]
    indexes: list[dict]
    dialects: dict[str, Dialect]  # the table JSON's own options over the case's (empty: the case's)

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]

    @property
    def validation_level(self) -> int | None:
        return levels.validation_level(self.kind)


@dataclass(frozen=True)
class CaseLayout:
    case: str
    database: str
    root: Path
    charset: str
    dialects: dict[str, Dialect]  # per format, parsed from the stored options
    num_stripes: int
    num_sub_stripes: int
    overlap: float
    state: str
    tables: dict[str, TableLayout]
    strict_children: bool = False
    max_num_warnings: int = 0
    registered_at: datetime | None = None  # when this incarnation of the case was first registered

    @property
    def incarnation(self) -> str:
        """Which registration of the case this is: a case dropped and registered again is another one, even
        where the catalog hands out the same attempt ids again (SQLite reuses them once the rows are gone)."""
        return f"{self.case}@{self.registered_at.isoformat() if self.registered_at else ''}"

    @property
    def chunker(self) -> Chunker:
        """The case's partitioning: which chunk each position of the sky is in."""
        return Chunker(self.num_stripes, self.num_sub_stripes, self.overlap)

    def dialect_of(self, fmt: str, table: TableLayout | None = None) -> Dialect:
        """How a file of this format (of this table) is read: the table's own dialect, else the case's."""
        own = table.dialects.get(fmt) if table is not None else None
        return own or self.dialects.get(fmt) or Dialect.of(fmt)

    def tables_of_kind(self, kind: str) -> list[TableLayout]:
        return [table for table in self.tables.values() if table.kind == kind]

    def validated_tables(self) -> list[TableLayout]:
        return [table for table in self.tables.values() if table.validation_level is not None]

    def director_of(self, table: TableLayout) -> TableLayout:
        return self.tables[table.director_table or ""]


def case_layouts(db: CatalogDB, case: str | None = None) -> dict[str, CaseLayout]:
    """Every registered case (or one) with its tables, by case id."""
    case_query = select(cases, case_state().label("shown_state")).order_by(cases.c.case)
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
            dialects=_dialects(row.dialect),
        )
    return {
        row.case: CaseLayout(
            case=row.case,
            database=row.database,
            root=Path(row.root),
            charset=row.charset,
            dialects=_dialects(row.dialect),
            num_stripes=row.num_stripes,
            num_sub_stripes=row.num_sub_stripes,
            overlap=row.overlap,
            state=row.shown_state,  # registering or dropping: refused like a pause
            tables=by_case[row.case],
            strict_children=row.strict_children,
            max_num_warnings=row.max_num_warnings,
            registered_at=row.created_at,
        )
        for row in case_rows
    }


def _dialects(stored: dict | None) -> dict[str, Dialect]:
    return {fmt: Dialect.of(fmt, options) for fmt, options in (stored or {}).items()}


def case_layout(db: CatalogDB, case: str) -> CaseLayout:
    """One registered case; `Unknown` naming it (and the fix) when it is not registered."""
    layouts = case_layouts(db, case)
    if case not in layouts:
        raise Unknown(
            f"no case {case}", "`loader-assets status` lists them; `loader-assets register CASE_DIR` adds one"
        )
    return layouts[case]

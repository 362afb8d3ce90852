"""Register a qserv-ingest case directory in the catalog: its case, tables, batches and notices.

A case of millions of files never sits in memory: it is checked first, every file looked for
(`qserv.metadata.CaseReader`: nothing is written when one is refused), then written a batch per transaction
while the case is `registering` — nothing of it is claimed — and only then opened (an operator's pause is
kept apart, in its state). Interrupted anywhere, registering again finishes the job: every step is idempotent,
the Dagster partitions (`on_chunks`) included. A file whose size or mtime changed is flagged and made
loadable again, never kept silently.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, and_, select, update

from loader_assets import levels
from loader_assets.catalog.database import bulk_insert
from loader_assets.catalog.gates import bump, open_gate
from loader_assets.catalog.schema import batches, cases, notices, tables
from loader_assets.catalog.store import Store, mark_changed, utcnow
from loader_assets.problems import BadInput
from loader_assets.qserv.metadata import BatchSpec, CaseMetadata, CaseReader, TableSpec
from loader_assets.wording import counted

CASE_NAME = re.compile(r"^[A-Za-z0-9_]+$")


class RegistrationError(BadInput):
    """The case cannot be registered as asked; nothing was written."""

    def __init__(self, cause: str, fix: str = "correct the case or the options; nothing was registered") -> None:
        super().__init__(cause, fix)


@dataclass
class Registration:
    """What one registration did, for the CLI and the tests."""

    case: str
    database: str
    tables: int = 0
    batches: int = 0
    new_notices: int = 0
    unchanged_notices: int = 0
    changed_paths: list[str] = field(default_factory=list)
    changed_tables: set[str] = field(default_factory=set)  # with new or changed files: their gates reopen
    chunks: list[int] = field(default_factory=list)

    def summary(self) -> str:
        changed = f", {len(self.changed_paths)} changed (flagged, ready to reload)" if self.changed_paths else ""
        return (
            f"case {self.case} (database {self.database}): {counted(self.tables, 'table')}, "
            f"{counted(self.batches, 'batch', 'batches')}, "
            f"{counted(self.new_notices, 'new notice')}, {self.unchanged_notices} unchanged{changed}, "
            f"{counted(len(self.chunks), 'chunk')}"
        )


def check_case_name(case: str) -> str:
    if not CASE_NAME.match(case):
        raise RegistrationError(f"case name {case!r} is invalid: use letters, digits and '_' only")
    return case


@dataclass(frozen=True)
class CaseOptions:
    """Per-case choices given at registration; None keeps what the case has (or the default)."""

    strict_children: bool | None = None  # orphan child rows fail level 4 instead of warning
    max_num_warnings: int | None = None  # LOAD DATA warnings tolerated per file (Qserv's name)


def register_case(
    store: Store,
    root: Path,
    case: str | None = None,
    *,
    comment: str | None = None,
    options: CaseOptions = CaseOptions(),
    allow_links_out: bool = False,
    on_chunks: Callable[[str, list[int]], object] | None = None,
) -> Registration:
    """Register (or register again) the case at `root`; `case` defaults to the directory's name. `on_chunks`
    gets the case and every chunk id of it before it leaves `registering` (the CLI adds them to Dagster).

    Every file stays under `root`; a symlink leading out of it is followed only with `allow_links_out`."""
    root = root.resolve()
    case = check_case_name(case or root.name)
    reader = CaseReader(root, allow_links_out=allow_links_out)
    reader.check()
    metadata = reader.metadata
    result = Registration(case=case, database=metadata.database)
    with store.db.write() as connection:
        resumed = _write_case(connection, case, metadata, comment, options)
        for table in metadata.tables:
            _write_table(connection, case, table)
            result.tables += 1
    chunks: set[int] = set()
    for table, batch in reader.batches():
        with store.db.write() as connection:
            _write_notices(connection, case, table, batch, _write_batch(connection, case, table, batch), result)
        result.batches += 1
        chunks.update(file.chunk for file in batch.files if file.chunk is not None)
    result.chunks = sorted(chunks)
    if on_chunks is not None:
        on_chunks(case, result.chunks)
    # An interrupted registration wrote batches this one found unchanged: every table's verdict is redone.
    changed = {table.name for table in metadata.tables} if resumed else result.changed_tables
    with store.db.write() as connection:
        bump(connection, case, sorted(changed), utcnow())  # once per table: new data, new verdicts
        connection.execute(update(cases).where(cases.c.case == case).values(registering=False))
    return result


def _write_case(
    connection: Connection, case: str, metadata: CaseMetadata, comment: str | None, options: CaseOptions
) -> bool:
    """The case row, now `registering`; True when an earlier registration of it was interrupted."""
    if options.max_num_warnings is not None and options.max_num_warnings < 0:
        raise RegistrationError(f"max_num_warnings must be 0 or more, got {options.max_num_warnings}")
    chosen = {name: value for name, value in dataclasses.asdict(options).items() if value is not None}
    owner = connection.execute(select(cases.c.case).where(cases.c.database == metadata.database)).scalar()
    if owner is not None and owner != case:
        raise RegistrationError(f"database {metadata.database!r} is already loaded by case {owner!r}")
    existing = connection.execute(select(cases).where(cases.c.case == case)).first()
    values = {
        "database": metadata.database,
        "num_stripes": metadata.num_stripes,
        "num_sub_stripes": metadata.num_sub_stripes,
        "overlap": metadata.overlap,
        "charset": metadata.charset,
        "dialect": {fmt: dataclasses.asdict(d) for fmt, d in metadata.dialects.items()},
        "root": str(metadata.root),
    }
    if existing is None:
        connection.execute(cases.insert().values(case=case, comment=comment, created_at=utcnow(), registering=True,
                                                 **values, **chosen))  # fmt: skip
        return False
    if existing.dropping:
        raise RegistrationError(f"case {case!r} is being dropped (a drop under way or cut short)",
                                f"once no drop runs, `loader-assets drop {case} --force` finishes it; then register "
                                "it again")  # fmt: skip
    if existing.root != values["root"] or existing.database != values["database"]:
        raise RegistrationError(
            f"case {case!r} is registered from {existing.root} (database {existing.database}); "
            f"refusing to register it again from {values['root']} (database {values['database']})"
        )
    if chosen.get("strict_children", existing.strict_children) != existing.strict_children:
        children = select(tables.c.name).where(tables.c.case == case, tables.c.kind == levels.CHILD)
        bump(connection, case, connection.execute(children).scalars(), utcnow())  # their verdicts change meaning
    changes = {"dialect": values["dialect"], **chosen, **({"comment": comment} if comment is not None else {})}
    resumed = existing.registering
    changes["registering"] = True  # claims of the case stop until every batch is written
    connection.execute(update(cases).where(cases.c.case == case).values(**changes))
    return resumed


def _write_table(connection: Connection, case: str, table: TableSpec) -> None:
    values = {
        "kind": table.kind,
        "level": table.level,
        "director_table": table.director_table,
        "director_key": table.director_key,
        "latitude_key": table.latitude_key,
        "longitude_key": table.longitude_key,
        "columns": table.columns,
        "indexes": table.indexes,
        "dialect": {fmt: dataclasses.asdict(d) for fmt, d in table.dialects.items()},
    }
    key = and_(tables.c.case == case, tables.c.name == table.name)
    existing = connection.execute(select(tables).where(key)).first()
    if existing is None:
        connection.execute(tables.insert().values(case=case, name=table.name, **values))
        open_gate(connection, case, table.name, table.kind, utcnow())
        return
    if existing.dialect != values["dialect"]:  # a catalog migrated from version 1 learns the table's dialect
        connection.execute(update(tables).where(key).values(dialect=values["dialect"]))
    if existing.columns != table.columns or existing.kind != table.kind:
        raise RegistrationError(
            f"table {table.name!r} of case {case!r} changed its schema or kind since it was registered; "
            "register the new schema as a new case"
        )


def _write_batch(connection: Connection, case: str, table: TableSpec, batch: BatchSpec) -> int:
    key = and_(batches.c.case == case, batches.c.table == table.name, batches.c.directory == batch.directory)
    existing = connection.execute(select(batches.c.id).where(key)).scalar()
    if existing is not None:
        return existing
    return connection.execute(
        batches.insert()
        .values(
            case=case, table=table.name, directory=batch.directory, step=batch.step, task=batch.task, level=table.level
        )
        .returning(batches.c.id)
    ).scalar_one()


def _write_notices(
    connection: Connection, case: str, table: TableSpec, batch: BatchSpec, batch_id: int, result: Registration
) -> None:
    known = {
        row.path: row
        for row in connection.execute(
            select(notices.c.id, notices.c.path, notices.c.size, notices.c.mtime).where(notices.c.batch == batch_id)
        )
    }
    now = utcnow()
    new_rows = []
    for spec in batch.files:
        row = known.get(spec.path)
        if row is None:
            new_rows.append(
                {"case": case, "batch": batch_id, "table": table.name, "level": table.level, "chunk": spec.chunk,
                 "overlap": spec.overlap, "path": spec.path, "format": spec.format, "size": spec.size,
                 "mtime": spec.mtime, "changed": False, "status": "ready", "priority": 0, "attempts": 0,
                 "created_at": now, "updated_at": now}
            )  # fmt: skip
        elif (row.size, row.mtime) != (spec.size, spec.mtime):
            mark_changed(connection, row.id, spec.size, spec.mtime, now)
            result.changed_tables.add(table.name)
            result.changed_paths.append(spec.path)
        else:
            result.unchanged_notices += 1
    if new_rows:
        bulk_insert(connection, notices, new_rows)
        result.changed_tables.add(table.name)
    result.new_notices += len(new_rows)

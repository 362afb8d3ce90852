"""Schema migrations of the catalog, so that a catalog written by an older loader_assets keeps working.

Each step upgrades version N-1 to N with Alembic's operations (used as a library: no migration environment
to ship) inside the transaction that then records the new version.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    column,
    false,
    select,
    table,
    text,
    update,
)

from loader_assets.catalog.schema import SCHEDULE_STATES, SCHEMA_VERSION, cases, catalog_info
from loader_assets.qserv.metadata import dialect_options

if TYPE_CHECKING:
    from alembic.operations import Operations


def _v2(op: Operations) -> None:
    """Gates fenced by a generation and a validation lock; per-case child strictness and warning budget;
    per-table dialects; the key fingerprint of each attempt."""
    op.add_column("cases", Column("strict_children", Boolean, nullable=False, server_default=false()))
    op.add_column("cases", Column("max_num_warnings", Integer, nullable=False, server_default=text("0")))
    op.add_column("tables", Column("dialect", JSON))
    op.add_column("level_gates", Column("generation", Integer, nullable=False, server_default=text("0")))
    op.add_column("level_gates", Column("validations", Integer, nullable=False, server_default=text("0")))
    op.add_column("level_gates", Column("validating_run", String(64)))
    op.add_column("level_gates", Column("validating_host", String(255)))
    op.add_column("level_gates", Column("validating_pid", Integer))
    op.add_column("level_gates", Column("validating_since", DateTime))
    op.add_column("attempts", Column("fingerprint", JSON))
    op.create_table(
        "chunk_checks",
        Column("case", String(64), ForeignKey("cases.case"), primary_key=True),
        Column("table", String(64), primary_key=True),
        Column("chunk", Integer, primary_key=True),
        Column("version", String(40), nullable=False),
        Column("census", JSON, nullable=False),
        Column("updated_at", DateTime, nullable=False),
    )
    _unescape_stored_dialects(op.get_bind())
    op.get_bind().execute(catalog_info.insert().values(key="catalog_id", value=str(uuid.uuid4())))


def _unescape_stored_dialects(connection: Connection) -> None:
    """Version 1 kept dialect values as written in metadata.json; Qserv reads them as MySQL string-literal
    contents (`\\t` is a tab), which is what the catalog now stores."""
    for case, stored in connection.execute(select(cases.c.case, cases.c.dialect)).all():
        fixed = {
            fmt: dialect_options(options, list(options), f"case {case}") for fmt, options in (stored or {}).items()
        }
        connection.execute(update(cases).where(cases.c.case == case).values(dialect=fixed))


def _v3(op: Operations) -> None:
    """A schedule spanning levels hands out each level's notices once its gate opens; a schedule can be cancelled."""
    with op.batch_alter_table("schedules") as batch:  # SQLite: the table is copied with the new constraint
        batch.add_column(Column("submitted_ids", JSON))
        batch.drop_constraint("schedule_state", type_="check")
        batch.create_check_constraint("schedule_state", f"state IN {SCHEDULE_STATES}")


def _v4(op: Operations) -> None:
    """Registration streams a batch at a time: nothing of a case is claimed while it is `registering`."""
    op.add_column("cases", Column("registering", Boolean, nullable=False, server_default=false()))


def _v5(op: Operations) -> None:
    """Alerts go out once: the ones delivered are remembered."""
    op.create_table(
        "alerts_sent",
        Column("key", String(255), primary_key=True),
        Column("kind", String(16), nullable=False),
        Column("case", String(64)),
        Column("sent_at", DateTime, nullable=False),
    )


def _v6(op: Operations) -> None:
    """A drop cut short is told apart from a pause: only `drop` finishes it."""
    op.add_column("cases", Column("dropping", Boolean, nullable=False, server_default=false()))


def _v7(op: Operations) -> None:
    """A validation's lock has a lease it renews: a holder that died on any host loses it (`load` validates without
    a Dagster run whose end would say so)."""
    op.add_column("level_gates", Column("validating_until", DateTime))
    # A lock taken before leases lapses at once: a dead holder's is released, a live one's verdict is dropped.
    gates = table("level_gates", column("validating_since", DateTime), column("validating_until", DateTime),
                  column("validating_run", String))  # fmt: skip
    op.execute(
        update(gates).where(gates.c.validating_run.is_not(None)).values(validating_until=gates.c.validating_since)
    )


STEPS: dict[int, Callable[[Operations], None]] = {2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7}


def upgrade(connection: Connection, version: int) -> None:
    """Bring a catalog at `version` to SCHEMA_VERSION, one step at a time."""
    # Imported here: Alembic is a quarter of a second of every command's start-up, and only an old catalog needs it.
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    operations = Operations(MigrationContext.configure(connection))
    for step in range(version + 1, SCHEMA_VERSION + 1):
        STEPS[step](operations)
        connection.execute(update(catalog_info).where(catalog_info.c.key == "schema_version").values(value=str(step)))

"""Saved selections: named queries in the catalog that the saved-selection sensor loads from on every tick.

save(store, "dc2_sources", "case = dc2 AND table = Source", priority=5)
matching_schedulable(store, row, now, limit=5000)   # what the sensor hands to runs this tick
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import ColumnElement, Select, select, update

from loader_assets.catalog.claims import schedulable
from loader_assets.catalog.schema import batches, notices, selections
from loader_assets.catalog.store import Store
from loader_assets.catalog.time import utcnow
from loader_assets.problems import BadInput, Unknown
from loader_assets.selection.language import compile_batch_query, compile_notice_query

if TYPE_CHECKING:
    import pandas as pd  # imported where used: half a second of every command's start-up

__all__ = [
    "MAX_MATCH_LIMIT",
    "SavedSelection",
    "delete",
    "list_saved",
    "matching_schedulable",
    "save",
    "saved_selections",
    "schedulable_statement",
    "set_enabled",
]

NAME = re.compile(r"^[A-Za-z0-9_]+$")
TARGETS = ("notices", "batches")
MAX_MATCH_LIMIT = 100_000  # one tick's worth: a sensor never pulls an unbounded id list into memory


class SavedRow(Protocol):
    """What `matching_schedulable` reads of a saved selection: a `selections` row or a `SavedSelection`."""

    @property
    def name(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def enabled(self) -> bool: ...


@dataclass(frozen=True)
class SavedSelection:
    name: str
    query: str
    target: str
    priority: int
    enabled: bool
    comment: str | None
    created_at: datetime


def _check_name(name: str) -> str:
    if not NAME.match(name):
        raise BadInput(f"selection name {name!r} is invalid", "use letters, digits and '_' only")
    return name


def _condition(query: str, target: str, now: datetime | None = None) -> ColumnElement[bool]:
    """The saved query as a condition on notices; a batch query selects the notices of its batches."""
    if target == "notices":
        return compile_notice_query(query, now)
    if target == "batches":
        return notices.c.batch.in_(select(batches.c.id).where(compile_batch_query(query, now)))
    raise BadInput(f"target {target!r} is not one of {', '.join(TARGETS)}", "choose one of them")


def save(
    store: Store,
    name: str,
    query: str,
    *,
    target: str = "notices",
    priority: int = 0,
    enabled: bool = True,
    comment: str | None = None,
) -> None:
    """Save (or update) a named query; it is compiled first, so a broken query is never saved."""
    _check_name(name)
    _condition(query, target)  # raises QueryError with the position of the mistake
    values = {"query": query, "target": target, "priority": priority, "enabled": enabled, "comment": comment}
    with store.db.write() as connection:
        if connection.execute(update(selections).where(selections.c.name == name).values(**values)).rowcount == 0:
            connection.execute(selections.insert().values(name=name, created_at=utcnow(), **values))


def saved_selections(store: Store, *, enabled_only: bool = False) -> list[SavedSelection]:
    """Saved selections by name."""
    query = select(selections).order_by(selections.c.name)
    if enabled_only:
        query = query.where(selections.c.enabled.is_(True))
    with store.db.read() as connection:
        return [SavedSelection(**row._mapping) for row in connection.execute(query)]


def list_saved(store: Store) -> pd.DataFrame:
    """Saved selections as a frame, one row per name."""
    import pandas as pd

    rows = saved_selections(store)
    return pd.DataFrame(rows, columns=list(SavedSelection.__dataclass_fields__))


def _load(store: Store, name: str) -> SavedSelection:
    with store.db.read() as connection:
        row = connection.execute(select(selections).where(selections.c.name == name)).first()
    if row is None:
        raise Unknown.named("saved selection", name, "selections list")
    return SavedSelection(**row._mapping)


def set_enabled(store: Store, name: str, enabled: bool) -> None:
    """Let the saved-selection sensor load from it, or stop it (what is running finishes)."""
    with store.db.write() as connection:
        statement = update(selections).where(selections.c.name == name).values(enabled=enabled)
        if connection.execute(statement).rowcount == 0:
            raise Unknown.named("saved selection", name, "selections list")


def delete(store: Store, name: str) -> None:
    with store.db.write() as connection:
        if connection.execute(selections.delete().where(selections.c.name == name)).rowcount == 0:
            raise Unknown.named("saved selection", name, "selections list")


def schedulable_statement(row: SavedRow, now: datetime, limit: int, max_attempts: int) -> Select[tuple[int]]:
    """The one SELECT behind `matching_schedulable` (exposed so benchmarks can EXPLAIN it)."""
    return (
        select(notices.c.id)
        .where(_condition(row.query, row.target, now), schedulable(now, max_attempts))
        .order_by(notices.c.priority.desc(), notices.c.id)
        .limit(limit)
    )


def matching_schedulable(
    store: Store, name_or_row: str | SavedRow, now: datetime, limit: int, *, max_attempts: int | None = None
) -> list[int]:
    """Ids of the notices the saved selection selects that a sensor may schedule now, best first, at most `limit`.

    One SQL query when given a row (the sensor reads the enabled rows once per tick); a name costs one more.
    A disabled selection schedules nothing.
    """
    if not 1 <= limit <= MAX_MATCH_LIMIT:
        raise BadInput(f"limit {limit} is not between 1 and {MAX_MATCH_LIMIT}", "ask for fewer notices at a time")
    row = _load(store, name_or_row) if isinstance(name_or_row, str) else name_or_row
    if not row.enabled:
        return []
    attempts_limit = max_attempts if max_attempts is not None else store.max_attempts
    with store.db.read() as connection:
        return list(connection.execute(schedulable_statement(row, now, limit, attempts_limit)).scalars())

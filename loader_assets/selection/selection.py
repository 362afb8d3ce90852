"""Selections: what operators look at, trim, annotate and hand to the run queue, in notebooks and the CLI.

    sel = select("case = dc2 AND status = failed AND attempts < 3")
    sel.summary()                      # counts, locks, what a sensor would not take now and why
    sel = sel.drop([12]).edit(edited)  # rows matched by id, never by position
    sel.apply_edits()                  # priority / comment only: status changes only through the Store
    sel.schedule(priority=5).watch()

A selection is a snapshot: its frame is what the catalog held when it was read. `summary()` and `watch()`
read the catalog again, because they answer "what is the state now".
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, Self

import pandas as pd
from sqlalchemy import ColumnElement, Connection, bindparam, false, func, update
from sqlalchemy import case as sql_case
from sqlalchemy import select as sql_select

from loader_assets.catalog import schedules
from loader_assets.catalog.claims import FREE_STATUSES, RULES, ClaimContext, Refusal, first_refusal
from loader_assets.catalog.database import id_batches
from loader_assets.catalog.schema import NOTICE_STATUSES, batches, notices
from loader_assets.catalog.store import Store
from loader_assets.catalog.time import utcnow
from loader_assets.catalog.views import SHOWN_STATUSES, shown_statuses
from loader_assets.problems import BadInput, Failed
from loader_assets.selection import PREVIEW_ROWS
from loader_assets.selection.language import (
    BATCH_FIELDS,
    BOOL,
    FLOAT,
    INT,
    NOTICE_FIELDS,
    TIME,
    FieldSpec,
    compile_batch_query,
    compile_notice_query,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["BatchSelection", "SchedulePreview", "Scheduled", "Selection", "Summary", "select", "select_batches"]

# Fields an operator may edit in a selection's frame; everything else is the state machine's or registration's.
EDITABLE = ("priority", "comment")
HEAD_ROWS = 10
# Reasons a ready/failed notice is not schedulable now, in the order of the claim rules (first match wins).
REFUSAL_ORDER = tuple(rule.refusal.value for rule in RULES if rule.refusal not in (Refusal.HELD, Refusal.DONE))

_DTYPES = {INT: "Int64", FLOAT: "float64", BOOL: "boolean", TIME: "datetime64[us]"}


def _frame_fields(fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
    """The fields a frame shows: the target's own, not the `batch.*` family seen from notices."""
    return {name: spec for name, spec in fields.items() if "." not in name}


NOTICE_FRAME_FIELDS = _frame_fields(NOTICE_FIELDS)
BATCH_FRAME_FIELDS = _frame_fields(BATCH_FIELDS)


def _typed_frame(rows: list[Any], fields: dict[str, FieldSpec]) -> pd.DataFrame:
    """Rows as a frame indexed by id, with nullable dtypes so an integer with NULLs stays an integer."""
    frame = pd.DataFrame(rows, columns=list(fields))
    for name, spec in fields.items():
        if spec.kind in _DTYPES:
            frame[name] = frame[name].astype(_DTYPES[spec.kind])
    return frame.set_index("id")


def _json_ready(value: Any) -> Any:
    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, datetime):  # pd.Timestamp too
        return value.isoformat()
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------------------ summaries


def _refusal_reason(now: datetime, max_attempts: int) -> ColumnElement[str | None]:
    """SQL: why a ready/failed notice is not schedulable now (the first claim rule refusing it); else NULL."""
    return sql_case(
        (notices.c.status.not_in(FREE_STATUSES), None),
        else_=first_refusal(ClaimContext(now, automatic=True, max_attempts=max_attempts)),
    )


def _current_state(store: Store, ids: list[int], now: datetime, max_attempts: int) -> pd.DataFrame:
    """The catalog's present state of `ids`: status, lock and refusal reason of each."""
    columns = [
        notices.c.id,
        notices.c.case,
        notices.c.level,
        notices.c.status,
        notices.c.locked_by,
        notices.c.owner_host,
        notices.c.locked_at,
        notices.c.heartbeat_at,
        notices.c.lease_until,
        notices.c.finished_at,
        _refusal_reason(now, max_attempts).label("refusal"),
    ]
    rows: list[Any] = []
    with store.db.read() as connection:
        for batch in id_batches(ids):
            rows += connection.execute(sql_select(*columns).where(notices.c.id.in_(batch))).all()
    return pd.DataFrame(rows, columns=[column.name for column in columns])


def _status_counts(state: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One column per status plus the total, one row per `by` group."""
    if state.empty:
        return pd.DataFrame(columns=[*NOTICE_STATUSES, "total"], dtype=int)
    table = pd.crosstab([state[name] for name in by], state["status"])
    table = table.reindex(columns=list(NOTICE_STATUSES), fill_value=0)
    table["total"] = table.sum(axis=1)
    table.columns.name = None
    return table


def _locks(state: pd.DataFrame, now: datetime) -> pd.DataFrame:
    """Per run holding locks: how many, where, since when, last heartbeat, and how many leases ran out."""
    held = state[state["locked_by"].notna()]
    if held.empty:
        return pd.DataFrame(columns=["notices", "hosts", "since", "last_heartbeat", "stale"])
    return held.groupby("locked_by").agg(
        notices=("id", "size"),
        hosts=("owner_host", lambda hosts: ", ".join(sorted(set(hosts.dropna())))),
        since=("locked_at", "min"),
        last_heartbeat=("heartbeat_at", "max"),
        stale=("lease_until", lambda lease: int((lease < now).sum())),
    )


def _refusals(state: pd.DataFrame) -> pd.DataFrame:
    counts = state["refusal"].dropna().value_counts()
    order = [reason for reason in REFUSAL_ORDER if reason in counts.index]
    return counts.reindex(order).rename("notices").rename_axis("reason").to_frame()


@dataclass(frozen=True)
class Summary:
    """State of a selection's notices now: counts, locks, and why ready/failed ones would not be scheduled."""

    counts: pd.DataFrame  # index (case, level); a column per status and the total
    locks: pd.DataFrame  # index run id (locked_by)
    refusals: pd.DataFrame  # index reason, column notices; only ready/failed notices not schedulable now
    now: datetime

    def _sections(self) -> list[tuple[str, pd.DataFrame, str]]:
        return [
            ("notices by case, level and status", self.counts, "no notices"),
            ("locks held now, by run", self.locks, "no locks held"),
            (f"ready/failed notices a sensor would not take at {self.now:%Y-%m-%d %H:%M:%S}", self.refusals, "none"),
        ]

    def __str__(self) -> str:
        return "\n\n".join(
            f"{title}:\n{empty if frame.empty else frame.to_string()}" for title, frame, empty in self._sections()
        )

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return "".join(
            f"<h4>{title}</h4>" + (f"<p>{empty}</p>" if frame.empty else frame.to_html())
            for title, frame, empty in self._sections()
        )


# ------------------------------------------------------------------------------------------ schedules


@dataclass(frozen=True)
class SchedulePreview:
    """What `schedule(dry_run=True)` would request: nothing was written."""

    notice_ids: tuple[int, ...]
    counts: pd.DataFrame  # per case and level: notices by status, total, and how many a claim could take
    priority: int
    force: bool

    def __str__(self) -> str:
        return (
            f"dry run: would schedule {len(self.notice_ids)} notices (priority {self.priority}, force {self.force})\n"
            + self.counts.to_string()
        )


class RunLookup(Protocol):
    """Where the runs of a schedule are found (the Dagster instance, through `defs.runs.InstanceRuns`)."""

    def runs_of_schedule(self, schedule_id: int) -> list[tuple[str, str]]:
        """(run id, status) of each run requested for the schedule."""
        ...


NO_RUN_WARNING_S = 60  # `watch` says so when a schedule got no run this long


@dataclass(frozen=True)
class Scheduled:
    """A frozen list of notices handed to the run queue as one `schedules` row."""

    schedule_id: int
    notice_ids: tuple[int, ...]
    store: Store = field(repr=False, compare=False)

    def run_ids(self, runs: RunLookup) -> list[str]:
        """Runs the scheduler sensor created for this schedule (none before its next tick)."""
        return [run_id for run_id, _status in runs.runs_of_schedule(self.schedule_id)]

    def watch(
        self,
        timeout: float = 3600,
        interval: float = 2,
        progress: Callable[[str], object] = print,
        *,
        runs: RunLookup | None = None,
        stop: threading.Event | None = None,
    ) -> pd.DataFrame:
        """Poll until none of the notices is ready or running (or `stop` is set); one progress line per change.

        A notice that had failed before this schedule was made (or was done, for a forced schedule) waits too,
        until an attempt finishes after it: it keeps its old status until the sensor's run claims it.
        Returns the final count per status. Raises `Failed` naming the notices left after `timeout` s.
        """
        store, started, last_line, warned = self.store, time.monotonic(), None, False
        deadline = started + timeout
        ids = list(self.notice_ids)
        schedule = schedules.get(store.db, self.schedule_id)
        made_at, forced = schedule.created_at, schedule.force
        # Already in a final state before the schedule: failed ones (and done ones, when forced) will be loaded
        # again, so they count only once an attempt has finished after the schedule was made.
        reloaded = ["failed", "done"] if forced else ["failed"]
        while True:
            state = _current_state(store, ids, utcnow(), store.max_attempts)
            counts = state["status"].value_counts()
            run_statuses = runs.runs_of_schedule(self.schedule_id) if runs is not None else []
            line = self._progress_line(counts, Counter(status for _run, status in run_statuses))
            if line != last_line:
                progress(line)
                last_line = line
            if runs is not None and not run_statuses and not warned and time.monotonic() - started > NO_RUN_WARNING_S:
                progress(f"warning: no run for schedule {self.schedule_id} after {NO_RUN_WARNING_S} s: is a "
                         "dagster-daemon running for this instance? (`loader-assets doctor`)")  # fmt: skip
                warned = True
            not_yet = state["status"].isin(reloaded) & ~(pd.to_datetime(state["finished_at"]) >= made_at)
            left = state[state["status"].isin(["ready", "running"]) | not_yet]
            if left.empty or (stop is not None and stop.is_set()):
                return counts.reindex(list(NOTICE_STATUSES), fill_value=0).rename("notices").to_frame()
            if time.monotonic() >= deadline:
                raise Failed(
                    self._timeout_message(timeout, left), "`loader-assets schedule list` and the UI's runs say why"
                )
            if stop is not None:
                stop.wait(interval)
            else:
                time.sleep(interval)

    def _progress_line(self, counts: pd.Series, runs: Counter[str]) -> str:
        notices_part = ", ".join(f"{status} {counts.get(status, 0)}" for status in NOTICE_STATUSES)
        runs_part = ", ".join(f"{status} {n}" for status, n in sorted(runs.items())) or "none yet"
        return f"schedule {self.schedule_id}: {len(self.notice_ids)} notices: {notices_part} | runs: {runs_part}"

    def _timeout_message(self, timeout: float, left: pd.DataFrame) -> str:
        shown = sorted(left["id"].tolist())
        more = f" and {len(shown) - 20} more" if len(shown) > 20 else ""
        return (
            f"schedule {self.schedule_id}: after {timeout:g} s, {len(shown)} notices are still ready or running: "
            f"{', '.join(map(str, shown[:20]))}{more}"
        )


# ------------------------------------------------------------------------------------------ selections


class _Rows:
    """What notice and batch selections share: a frame indexed by id, trimmed by id, shown in notebooks."""

    target = "rows"

    def __init__(self, store: Store, query: str, frame: pd.DataFrame, now: datetime | None) -> None:
        self.store = store
        self.query = query
        self.frame = frame
        self.now = now  # None: the live clock wherever "now" matters
        self.total: int | None = None  # set on a preview: how many the query selects, of which `frame` is the first

    def _with_frame(self, frame: pd.DataFrame) -> Self:
        return type(self)(self.store, self.query, frame, self.now)

    def _clock(self) -> datetime:
        return self.now or utcnow()

    @property
    def ids(self) -> list[int]:
        return sorted(int(i) for i in self.frame.index)

    def freeze(self) -> tuple[int, ...]:
        return tuple(self.ids)

    def __len__(self) -> int:
        return len(self.frame)

    def _known(self, ids: Iterable[int]) -> list[int]:
        wanted = sorted(set(ids))
        unknown = [i for i in wanted if i not in self.frame.index]
        if unknown:
            raise BadInput(f"not in this selection of {self.target}: {', '.join(map(str, unknown))}",
                           "drop or keep ids the selection holds")  # fmt: skip
        return wanted

    def drop(self, ids: Iterable[int]) -> Self:
        """A new selection without `ids` (each must be in this one)."""
        return self._with_frame(self.frame.drop(index=self._known(ids)))

    def keep(self, ids: Iterable[int]) -> Self:
        """A new selection of only `ids` (each must be in this one)."""
        return self._with_frame(self.frame.loc[self._known(ids)])

    def records(self) -> list[dict[str, Any]]:
        """Rows as plain dicts with the catalog's field names: None when missing, times as ISO text."""
        return [
            {name: _json_ready(value) for name, value in row.items()}
            for row in self.frame.reset_index().to_dict("records")
        ]

    def grid(self, **options: Any) -> None:
        """An interactive, searchable table of the frame (itables) in a notebook: times to the second, file
        modification times as dates, sizes in kB/MB."""
        from itables import show

        show(readable(self.frame.reset_index()), **options)

    def summary(self) -> Any:
        raise NotImplementedError

    def _head(self) -> pd.DataFrame:
        return self.frame.head(HEAD_ROWS)

    @property
    def is_preview(self) -> bool:
        """The frame holds only the first rows of what the query selects (`notebook.select` of a big query)."""
        return self.total is not None and self.total > len(self)

    def _title(self) -> str:
        more = f", first {HEAD_ROWS} shown" if len(self) > HEAD_ROWS else ""
        if self.is_preview:
            return f"{self.total} {self.target} selected by {self.query!r}: a preview of the first {len(self)}{more}"
        return f"{len(self)} {self.target} selected by {self.query!r}{more}"

    def __repr__(self) -> str:
        return f"{self._title()}\n\n{self.summary()}\n\n{self._head().to_string()}"

    def _repr_html_(self) -> str:
        summary = self.summary()
        summary_html = summary._repr_html_() if hasattr(summary, "_repr_html_") else summary.to_html()
        return f"<p>{self._title()}</p>{summary_html}{self._head().to_html()}"


class Selection(_Rows):
    """Notices selected by a query: `frame` indexed by notice id, with the batch's step, task and directory."""

    target = "notices"

    def __init__(
        self,
        store: Store,
        query: str,
        frame: pd.DataFrame,
        now: datetime | None,
        catalog_values: pd.DataFrame | None = None,
    ) -> None:
        super().__init__(store, query, frame, now)
        # The editable columns as the catalog holds them: what `apply_edits` compares against.
        self._catalog_values = catalog_values if catalog_values is not None else frame[list(EDITABLE)].copy()

    def _with_frame(self, frame: pd.DataFrame) -> Selection:
        return Selection(self.store, self.query, frame, self.now, self._catalog_values)

    # -- looking

    def summary(self, max_attempts: int | None = None) -> Summary:
        now = self._clock()
        limit = max_attempts if max_attempts is not None else self.store.max_attempts
        state = _current_state(self.store, self.ids, now, limit)
        return Summary(_status_counts(state, ["case", "level"]), _locks(state, now), _refusals(state), now)

    def plot(self, ax: Axes | None = None) -> Axes:
        """Bar chart of the notices per level, stacked by status as the operator sees it (gate-blocked, parked)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        shown = self.frame[["level"]].join(shown_statuses(self.store, self.ids))
        counts = shown.groupby(["level", "status"]).size().unstack(fill_value=0) if not shown.empty else shown
        counts = counts.reindex(columns=list(SHOWN_STATUSES), fill_value=0)  # the same colours in every plot
        if counts.empty:
            ax.set_title(f"no notices selected by {self.query!r}")
            return ax
        counts.plot.bar(stacked=True, ax=ax, rot=0)
        ax.set_xlabel("level")
        ax.set_ylabel("notices")
        ax.set_title(self.query)
        return ax

    # -- editing

    def edit(self, edited: pd.DataFrame) -> Selection:
        """A new selection from an edited copy of the frame, matched by `id` (index or column), never position.

        Rows left out are dropped; `priority` and `comment` take the edited values (written by `apply_edits`).
        Any other edited column is refused: status and locks change only through the Store.
        """
        edited = _indexed_by_id(edited)
        ids = self._known(edited.index)
        _refuse_read_only_changes(self.frame.loc[ids], edited.loc[ids])
        frame = self.frame.loc[ids].copy()
        for column in EDITABLE:
            if column in edited.columns:
                frame[column] = _editable_values(column, edited.loc[ids, column])
        return self._with_frame(frame)

    def pending_edits(self) -> pd.DataFrame:
        """Rows whose priority or comment differ from the catalog, with the new values."""
        baseline = self._catalog_values.loc[self.frame.index]
        changed = pd.concat([_differs(baseline[c], self.frame[c]) for c in EDITABLE], axis=1).any(axis=1)
        return self.frame.loc[changed, list(EDITABLE)]

    def apply_edits(self) -> int:
        """Write the edited priority and comment values to the catalog; returns how many notices changed."""
        baseline = self._catalog_values.loc[self.frame.index]
        written: set[int] = set()
        with self.store.db.write() as connection:
            for column in EDITABLE:
                changed = self.frame.loc[_differs(baseline[column], self.frame[column]), column]
                _write_column(connection, column, changed)
                written.update(int(i) for i in changed.index)
        self._catalog_values = self._catalog_values.copy()
        self._catalog_values.loc[self.frame.index, list(EDITABLE)] = self.frame[list(EDITABLE)]
        return len(written)

    # -- scheduling

    def schedule(self, priority: int = 0, force: bool = False, dry_run: bool = False) -> Scheduled | SchedulePreview:
        """Hand the frozen ids to the run queue: one `schedules` row the scheduler sensor turns into runs.

        `force` also reloads done notices. With `dry_run`, nothing is written: the preview counts per case
        and level what would be requested. A preview schedules everything its query selects.
        """
        ids = tuple(selected_ids(self.query, store=self.store, now=self.now)) if self.is_preview else self.freeze()
        if dry_run:
            return SchedulePreview(ids, self._preview_counts(force), priority, force)
        if not ids:
            raise BadInput(f"nothing to schedule: no notice selected by {self.query!r}", "change the query")
        schedule_id = schedules.add(self.store.db, ids, priority=priority, force=force, query=self.query)
        return Scheduled(schedule_id, ids, self.store)

    def _preview_counts(self, force: bool) -> pd.DataFrame:
        state = _current_state(self.store, self.ids, self._clock(), self.store.max_attempts)
        counts = _status_counts(state, ["case", "level"])
        claimable = [*FREE_STATUSES, "done"] if force else list(FREE_STATUSES)
        counts["requested"] = counts[claimable].sum(axis=1)
        return counts


class BatchSelection(_Rows):
    """Batches selected by a query, one row per batch with the counts and status derived from its notices."""

    target = "batches"

    def summary(self) -> pd.DataFrame:
        """Batches by case, level and derived status, with the number of notices they hold."""
        if self.frame.empty:
            return pd.DataFrame(columns=[*NOTICE_STATUSES, "total"], dtype=int)
        return _status_counts(self.frame.reset_index(), ["case", "level"])

    def notices(self) -> Selection:
        """Every notice of these batches."""
        condition = notices.c.batch.in_(self.ids) if self.ids else false()
        return _read_selection(self.store, f"notices of batches selected by {self.query!r}", condition, self.now)


def readable(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy for people: datetimes to the second, `mtime` (epoch seconds) as a date, `size` in B/kB/MB/GB."""
    frame = frame.copy()
    for column in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[column]):
            frame[column] = frame[column].dt.strftime("%Y-%m-%d %H:%M:%S")
    if "mtime" in frame:
        frame["mtime"] = pd.to_datetime(frame["mtime"], unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    if "size" in frame:
        frame["size"] = frame["size"].map(_size)
    return frame


def _size(value: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return str(value)


# ------------------------------------------------------------------------------------------ editing helpers


def _indexed_by_id(frame: pd.DataFrame) -> pd.DataFrame:
    if "id" in frame.columns:
        frame = frame.set_index("id")
    elif frame.index.name != "id":
        raise BadInput(
            "the edited frame has no `id` column or index", "keep the ids: rows are matched by id, never by position"
        )
    duplicated = sorted(set(frame.index[frame.index.duplicated()]))
    if duplicated:
        raise BadInput(f"ids appear more than once in the edited frame: {', '.join(map(str, duplicated))}",
                       "keep one row per id")  # fmt: skip
    return frame


def _differs(before: pd.Series, after: pd.Series) -> pd.Series:
    """Element-wise "value changed", with missing equal to missing and no dtype surprises."""
    both_missing = before.isna() & after.isna()
    as_objects = [series.astype(object).where(series.notna(), None) for series in (before, after)]
    return ~(as_objects[0].eq(as_objects[1]) | both_missing)


def _refuse_read_only_changes(original: pd.DataFrame, edited: pd.DataFrame) -> None:
    changed = {
        column: sorted(int(i) for i in original.index[_differs(original[column], edited[column])])
        for column in original.columns.intersection(edited.columns)
        if column not in EDITABLE
    }
    changed = {column: ids for column, ids in changed.items() if ids}
    if changed:
        listing = "; ".join(f"{column} of {', '.join(map(str, ids))}" for column, ids in changed.items())
        raise BadInput(
            f"only {' and '.join(EDITABLE)} can be edited here, not {listing}",
            "status and locks change through the Store (loader-assets reset / release)",
        )


def _editable_values(column: str, values: pd.Series) -> pd.Series:
    if column == "comment":
        return values.astype(object).where(values.notna(), None)
    whole = pd.to_numeric(values, errors="coerce")
    bad = sorted(int(i) for i in values.index[whole.isna() | (whole % 1 != 0)])
    if bad:
        raise BadInput(f"priority is not a whole number for notices {', '.join(map(str, bad))}", "write whole numbers")
    return whole.astype("Int64")


def _write_column(connection: Connection, column: str, values: pd.Series) -> None:
    if values.empty:
        return
    parameters = [{"notice_id": int(i), "value": _json_ready(value)} for i, value in values.items()]
    connection.execute(
        update(notices)
        .where(notices.c.id == bindparam("notice_id"))
        .values({column: bindparam("value"), "updated_at": utcnow()}),
        parameters,
    )


# ------------------------------------------------------------------------------------------ reading


def _read_selection(
    store: Store, query: str, condition: ColumnElement[bool], now: datetime | None, limit: int | None = None
) -> Selection:
    # The batch fields come from a join here, not the per-row subqueries the language uses; an alias keeps
    # the language's subqueries over `batches` from correlating to this join.
    batch = batches.alias("notice_batch")
    columns = [
        batch.c[name].label(name) if name in ("step", "task", "directory") else notices.c[name]
        for name in NOTICE_FRAME_FIELDS
    ]
    statement = (
        sql_select(*columns)
        .select_from(notices.join(batch, batch.c.id == notices.c.batch))
        .where(condition)
        .order_by(notices.c.id)
        .limit(limit)
    )
    with store.db.read() as connection:
        rows = connection.execute(statement).all()
    return Selection(store, query, _typed_frame(rows, NOTICE_FRAME_FIELDS), now)


def select(query: str, *, store: Store, now: datetime | None = None, limit: int | None = None) -> Selection:
    """Notices selected by `query` (see `describe_fields()`); `now` fixes the clock of `age()` and `now()`."""
    return _read_selection(store, query, compile_notice_query(query, now), now, limit)


def preview(query: str, *, store: Store, now: datetime | None = None, limit: int | None = PREVIEW_ROWS) -> Selection:
    """The first `limit` notices `query` selects (all with None), with `.total` counted by the catalog when there
    are more: a selection of millions stays a bounded frame, and its `schedule()` takes every notice selected."""
    chosen = select(query, store=store, now=now, limit=limit)
    if limit is not None and len(chosen) == limit:
        chosen.total = count(query, store=chosen.store, now=now)
    return chosen


def count(query: str, *, store: Store, now: datetime | None = None) -> int:
    """How many notices `query` selects, counted by the catalog (nothing read into memory)."""
    statement = sql_select(func.count()).select_from(notices).where(compile_notice_query(query, now))
    with store.db.read() as connection:
        return int(connection.execute(statement).scalar_one())


COUNTED_BY = ("case", "level", "table", "status")


def counts(query: str, *, by: Iterable[str] = COUNTED_BY, store: Store,
           now: datetime | None = None) -> pd.DataFrame:  # fmt: skip
    """Notices `query` selects, counted by the catalog per `by` (fields of the catalog's notices)."""
    columns = [notices.c[name] for name in by]
    statement = (
        sql_select(*columns, func.count().label("notices"))
        .where(compile_notice_query(query, now))
        .group_by(*columns)
        .order_by(*columns)
    )
    with store.db.read() as connection:
        rows = connection.execute(statement).all()
    return pd.DataFrame(rows, columns=[*by, "notices"]).set_index(list(by))


def selected_ids(query: str, *, store: Store, now: datetime | None = None) -> list[int]:
    """The ids `query` selects, only those: what a schedule of millions of notices needs."""
    statement = sql_select(notices.c.id).where(compile_notice_query(query, now)).order_by(notices.c.id)
    with store.db.read() as connection:
        return list(connection.execute(statement).scalars())


def select_batches(
    query: str, *, store: Store, now: datetime | None = None, limit: int | None = None
) -> BatchSelection:
    """Batches selected by `query`, with the notice counts and status derived from their notices."""
    columns = [spec.expression.label(name) for name, spec in BATCH_FRAME_FIELDS.items()]
    statement = sql_select(*columns).where(compile_batch_query(query, now)).order_by(batches.c.id).limit(limit)
    with store.db.read() as connection:
        rows = connection.execute(statement).all()
    return BatchSelection(store, query, _typed_frame(rows, BATCH_FRAME_FIELDS), now)

"""loader_assets for a notebook, for people with basic Python: one import, plain functions, readable frames.

from loader_assets import notebook as nb

nb.setup()                               # where the catalog, the Dagster instance and the workers are
case = nb.register(nb.sample())          # a sample case, registered (or nb.register("/path/to/case"))
nb.load(case)                            # levels 1 to 4 here, gates included; or nb.load(case, level=1)
nb.status(case); nb.plot(case)           # notices per level and status; a chunk-by-chunk picture
failed = nb.select(f"case = '{case}' AND status = 'failed'")   # a selection: .frame, .grid(), .drop(), …
nb.watch(nb.schedule(failed))            # through the run queue (the dagster-daemon), until done
nb.verify(case)                          # rows in the files = rows in the catalog = rows on the workers
"""

from __future__ import annotations

import shutil
import time
import uuid
from contextlib import redirect_stderr
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pandas as pd

from loader_assets import levels
from loader_assets.catalog import views
from loader_assets.catalog.layout import case_layout
from loader_assets.engine.runner import LevelResult
from loader_assets.operations import cases as case_actions
from loader_assets.operations import loading, notices, scheduling
from loader_assets.operations.context import Context
from loader_assets.problems import Failed, Problem
from loader_assets.selection import selection as _selection
from loader_assets.selection.selection import Scheduled, Selection
from loader_assets.settings import Settings

__all__ = [
    "cases",
    "counts",
    "gates",
    "history",
    "load",
    "plot",
    "register",
    "restore",
    "sample",
    "save_selection",
    "schedule",
    "select",
    "setup",
    "spoil",
    "status",
    "verify",
    "wait_for_gate",
    "watch",
]

_context: Context | None = None


def setup(state_dir: str | Path | None = None) -> None:
    """Say where everything is. With nothing set, the repository's `.state` (where `make demo` put it all)."""
    global _context
    repository = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "Makefile").exists()), Path.cwd())
    settings = Settings.from_env(state_dir=Path(state_dir) if state_dir else None,
                                 default_state_dir=repository / ".state")  # fmt: skip
    _context = Context(settings)
    from loader_assets.catalog.database import shown_url

    pd.set_option("display.max_colwidth", None)  # whole error messages
    pd.set_option("display.width", 200)
    print("catalog:      ", shown_url(settings.catalog_url))
    print("Dagster home: ", settings.dagster_home)
    print("workers:      ", ", ".join(_ctx().cluster.workers))
    daemon = _daemon_problem()
    print("daemon:       ", "running" if daemon is None else f"NOT RUNNING: {daemon.fix}")


def _ctx() -> Context:
    if _context is None:
        setup()
    assert _context is not None
    return _context


def cases() -> pd.DataFrame:
    """Every registered case with its state and notice counts."""
    frame = views.status_counts(_ctx().store)
    if frame.empty:
        return frame
    return frame.groupby(level="case").sum()


def sample(chunks: int = 6, rows_per_chunk: int = 200) -> Path:
    """Write a sample case (Object with overlaps, Source, ForcedSource, Filter) under a fresh name."""
    from loader_assets.qserv.sample import write_sample_case

    name = f"demo_{uuid.uuid4().hex[:8]}"
    return write_sample_case(_ctx().settings.state_dir / "cases" / name, chunks=chunks,
                             rows_per_chunk=rows_per_chunk, database=name)  # fmt: skip


def register(path: str | Path, case: str | None = None, comment: str | None = None) -> str:
    """Register a case directory (metadata.json v12): its files become notices; returns the case's name."""
    done = case_actions.register(_ctx(), Path(path), case or Path(path).name, comment=comment)
    print(done.registration.summary())
    print(done.reload)
    return done.registration.case


@dataclass(frozen=True)
class Loaded:
    """How a `load` ended: `ok`, and `message` saying what passed or what failed first."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return f"{'OK' if self.ok else 'FAILED'}: {self.message}"


class _Lines:
    """A Progress collecting the level lines."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def level_started(self, level: int, notices: int) -> None:
        pass

    def level_ended(self, result: LevelResult) -> None:
        self.lines.append(f"level {result.level}: {result.message}")

    def note(self, line: str) -> None:
        pass


def load(case: str, level: int | None = None) -> Loaded:
    """Load the case in this process, level by level (or one level), as `loader-assets load` does."""
    said = _Lines()
    with redirect_stderr(StringIO()):  # Dagster's own event log: in the UI, under Runs
        try:
            loading.load(_ctx(), case, level=level, progress=said)
        except Problem as problem:
            return Loaded(False, problem.line())
    return Loaded(True, "; ".join(said.lines))


def status(case: str) -> pd.DataFrame:
    """Notices per level, table and status (gate-blocked and parked apart), as `loader-assets status` shows."""
    return views.counts_frame(notices.status(_ctx(), case).counts)


def gates(case: str) -> pd.DataFrame:
    """The case's validation gates: status and failing checks."""
    frame = pd.DataFrame(notices.status(_ctx(), case).gates)
    return frame if frame.empty else frame[["level", "table", "status", "checks", "updated_at"]]


def history(notice_id: int) -> pd.DataFrame:
    """Every attempt at a notice: run, worker, times, outcome, rows, error."""
    frame = notices.history(_ctx(), notice_id)
    return frame if frame.empty else frame[["id", "run_id", "worker", "started_at", "outcome", "rows", "error"]]


def plot(case: str, width: int = 1600):  # type: ignore[no-untyped-def]  # a matplotlib Figure
    """The case on the sky (an all-sky Mollweide map): each chunk where Qserv's geometry puts it, coloured by its
    most pressing status (failed, parked, running, ready, gate-blocked, done); readable at DP0.2's 146,332 chunks."""
    return notices.sky_map(_ctx(), case, width)


def select(query: str, limit: int | None = 10_000) -> Selection:
    """The notices `query` selects as a DataFrame (`.frame`, `.grid()`, `.drop()`, `.edit()`, …). Beyond `limit`
    rows (None: no limit) it is a preview of the first ones, with `.total` counted by the catalog; `schedule()` of a
    preview schedules everything the query selects. `counts(query)` counts by case, level, table and status."""
    found = scheduling.select(_ctx(), query, limit=limit)
    assert isinstance(found, Selection)
    return found


def counts(query: str) -> pd.DataFrame:
    """Notices `query` selects, counted by the catalog per case, level, table and status (nothing read whole)."""
    return _selection.counts(query, store=_ctx().store)


def save_selection(name: str, query: str, priority: int = 0, enabled: bool = True) -> None:
    """Save a query under a name: it becomes the sensor `selection_<name>` (on if `enabled`), loading what it
    selects whenever it may load; the UI shows it once the code location reloads (done here when it runs)."""
    reload = scheduling.save_selection(_ctx(), name, query, priority=priority, enabled=enabled)
    print(f"saved selection {name}; {reload}")


def schedule(selection: Selection, priority: int = 0) -> Scheduled:
    """Hand a selection to the run queue (refused when no dagster-daemon runs: nothing would start)."""
    return scheduling.schedule(_ctx(), selection, priority=priority)


def watch(scheduled: Scheduled, timeout: float = 600) -> pd.DataFrame:
    """Until none of the schedule's notices is ready or running: a line per change; the final counts."""
    return scheduling.watch(_ctx(), scheduled, timeout=timeout)


def wait_for_gate(case: str, level: int, timeout: float = 300) -> pd.DataFrame:
    """Until every gate of a validation level (2 or 4) has passed; its gates. A failed gate raises."""
    assert level in levels.VALIDATION_LEVELS, f"level {level} has no gate"
    deadline = time.monotonic() + timeout
    while True:
        found = gates(case)
        found = found[found["level"] == level] if not found.empty else found
        if not found.empty and (found["status"] == "passed").all():
            return found
        if not found.empty and (found["status"] == "failed").any():
            raise Failed(f"a level-{level} gate failed:\n{found.to_string()}", f"see nb.gates({case!r})")
        if time.monotonic() > deadline:
            raise Failed(f"level-{level} gates not passed after {timeout} s", f"see nb.gates({case!r})")
        time.sleep(2)


def verify(case: str) -> pd.DataFrame:
    """Per table: records in its files, rows the catalog recorded, rows on the workers; `exact` when equal."""
    return loading.verify(_ctx(), case).frame


@dataclass(frozen=True)
class Spoiled:
    """A file `spoil` changed, with what `restore` needs to put it back exactly."""

    path: Path
    copy: Path
    notice_id: int
    line: str


def spoil(case: str, notice_id: int, line: int, field: int, value: str) -> Spoiled:
    """Break a file on purpose (a demonstration): field `field` of line `line` (both from 1) becomes `value`."""
    path = case_layout(_ctx().store.db, case).root / select(f"id = {notice_id}").frame.loc[notice_id, "path"]
    copy = _ctx().settings.state_dir / "spoiled" / f"{uuid.uuid4().hex}-{path.name}"  # outside the case: no notice
    copy.parent.mkdir(exist_ok=True)
    shutil.copy2(path, copy)  # bytes and modification time
    lines = path.read_bytes().decode("latin1").splitlines(keepends=True)
    fields = lines[line - 1].split(",")
    fields[field - 1] = value
    lines[line - 1] = ",".join(fields)
    path.write_bytes("".join(lines).encode("latin1"))
    return Spoiled(path, copy, notice_id, lines[line - 1].strip())


def restore(spoiled: Spoiled) -> None:
    """Put back the file `spoil` changed, bytes and modification time, so the catalog sees what it registered."""
    shutil.copy2(spoiled.copy, spoiled.path)
    spoiled.copy.unlink()


def _daemon_problem() -> Problem | None:
    with redirect_stderr(StringIO()):
        try:
            return _ctx().dagster.daemon_problem()
        except Problem as problem:
            return problem

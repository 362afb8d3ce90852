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

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import pandas as pd

from loader_assets import levels, settings
from loader_assets.catalog import views
from loader_assets.catalog.store import Store
from loader_assets.selection import selection as _selection
from loader_assets.selection.selection import Selection, counts

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


def setup() -> None:
    """Say where everything is. With nothing set, the repository's `.state` (where `make demo` put it all)."""
    if "LOADER_STATE_DIR" not in os.environ:
        repository = next((p for p in [Path.cwd(), *Path.cwd().parents] if (p / "Makefile").exists()), Path.cwd())
        os.environ["LOADER_STATE_DIR"] = str(repository / ".state")
    from loader_assets.catalog.engine import shown_url
    from loader_assets.workers.cluster import ClusterConfig

    pd.set_option("display.max_colwidth", None)  # whole error messages
    pd.set_option("display.width", 200)
    print("catalog:      ", shown_url(settings.catalog_url()))
    print("Dagster home: ", settings.dagster_home())
    print("workers:      ", ", ".join(ClusterConfig.from_env().workers))
    daemon = _daemon_problem()
    print("daemon:       ", "running" if daemon is None else f"NOT RUNNING: {daemon.fix}")


def cases() -> pd.DataFrame:
    """Every registered case with its state and notice counts."""
    frame = views.status_counts(_store().db)
    if frame.empty:
        return frame
    return frame.groupby(level="case").sum()


def sample(chunks: int = 6, rows_per_chunk: int = 200) -> Path:
    """Write a sample case (Object with overlaps, Source, ForcedSource, Filter) under a fresh name."""
    from loader_assets.qserv.sample import write_sample_case

    name = f"demo_{uuid.uuid4().hex[:8]}"
    return write_sample_case(settings.state_dir() / "cases" / name, chunks=chunks, rows_per_chunk=rows_per_chunk,
                             database=name)  # fmt: skip


def register(path: str | Path, case: str | None = None, comment: str | None = None) -> str:
    """Register a case directory (metadata.json v12): its files become notices; returns the case's name."""
    from loader_assets.catalog.register import register_case
    from loader_assets.defs.instance import prepare_instance
    from loader_assets.defs.partitions import add_chunk_partitions, reload_code_location

    registration = register_case(_store(), Path(path), case or Path(path).name, comment=comment)
    add_chunk_partitions(prepare_instance(), registration.case, registration.chunks)
    print(registration.summary())
    print(reload_code_location())
    return registration.case


@dataclass(frozen=True)
class Loaded:
    """How a `load` ended: `ok`, and `message` saying what passed or what failed first."""

    ok: bool
    message: str

    def __repr__(self) -> str:
        return f"{'OK' if self.ok else 'FAILED'}: {self.message}"


def load(case: str, level: int | None = None) -> Loaded:
    """Load the case in this process, level by level (or one level), as `loader-assets load` does."""
    from loader_assets.definitions import build_definitions
    from loader_assets.defs.instance import prepare_instance
    from loader_assets.defs.runner import LevelFailed, load_case
    from loader_assets.workers.cluster import Cluster

    said: list[str] = []
    with redirect_stderr(StringIO()):  # Dagster's own event log: in the UI, under Runs
        try:
            load_case(case, build_definitions(), prepare_instance(), _store(), Cluster.from_env(),
                      levels=(level,) if level else levels.ALL, log=said.append, console_level="ERROR")  # fmt: skip
        except LevelFailed as failure:
            return Loaded(False, str(failure))
    return Loaded(True, "; ".join(line for line in said if line.startswith("level ")))


def status(case: str) -> pd.DataFrame:
    """Notices per level, table and status (gate-blocked and parked apart), as `loader-assets status` shows."""
    return views.status_counts(_store().db, case)


def gates(case: str) -> pd.DataFrame:
    """The case's validation gates: status and failing checks."""
    frame = views.gates(_store().db, case)
    return frame if frame.empty else frame[["level", "table", "status", "checks", "updated_at"]]


def history(notice_id: int) -> pd.DataFrame:
    """Every attempt at a notice: run, worker, times, outcome, rows, error."""
    frame = views.history(_store().db, notice_id)
    return frame if frame.empty else frame[["id", "run_id", "worker", "started_at", "outcome", "rows", "error"]]


def plot(case: str):  # type: ignore[no-untyped-def]  # a matplotlib Axes
    """Each table's chunks in a row, coloured by status (gate-blocked and parked apart)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    shown = views.chunk_statuses(_store().db, case)
    colours = {"done": "#2e7d32", "ready": "#9e9e9e", "gate-blocked": "#90caf9", "running": "#ffb300",
               "failed": "#c62828", "parked": "#6a1b9a"}  # fmt: skip
    order = list(colours)
    grid = shown.pivot_table(index="table", columns="chunk", values="status", aggfunc=lambda s: max(s, key=order.index))
    codes = grid.apply(lambda column: column.map(lambda s: order.index(s) if isinstance(s, str) else -1))
    _, ax = plt.subplots(figsize=(max(6, len(grid.columns) * 0.4), 1 + 0.5 * len(grid)))
    ax.imshow(codes.to_numpy(), cmap=ListedColormap(list(colours.values())), vmin=0, vmax=len(order) - 1,
              aspect="auto")  # fmt: skip
    ax.set_yticks(range(len(grid)), grid.index)
    ax.set_xticks(range(len(grid.columns)), grid.columns, rotation=90)
    ax.set_xlabel("chunk")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    ax.legend(handles, order, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(f"case {case}")
    return ax


def select(query: str, limit: int | None = _selection.PREVIEW_ROWS) -> Selection:
    """The notices `query` selects as a DataFrame (`.frame`, `.grid()`, `.drop()`, `.edit()`, …). Beyond `limit`
    rows (None: no limit) it is a preview of the first ones, with `.total` counted by the catalog; `schedule()` of a preview
    schedules everything the query selects. `counts(query)` counts by case, level, table and status."""
    return _selection.preview(query, store=_store(), limit=limit)


def save_selection(name: str, query: str, priority: int = 0, enabled: bool = True) -> None:
    """Save a query under a name: it becomes the sensor `selection_<name>` (on if `enabled`), loading what it
    selects whenever it may load; the UI shows it once the code location reloads (done here when it runs)."""
    from loader_assets.defs.partitions import reload_code_location
    from loader_assets.selection import saved

    saved.save(_store(), name, query, priority=priority, enabled=enabled)
    print(f"saved selection {name}; {reload_code_location()}")


def schedule(selection: Selection, priority: int = 0):  # type: ignore[no-untyped-def]  # a Scheduled
    """Hand a selection to the run queue (refused when no dagster-daemon runs: nothing would start)."""
    problem = _daemon_problem()
    if problem is not None:
        raise RuntimeError(f"{problem.cause}; {problem.fix}")
    return selection.schedule(priority=priority)


def watch(scheduled, timeout: float = 600) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """Until none of the schedule's notices is ready or running: a line per change; the final counts."""
    from loader_assets.defs.runs import InstanceRuns

    return scheduled.watch(timeout=timeout, interval=2, runs=InstanceRuns())


def wait_for_gate(case: str, level: int, timeout: float = 300) -> pd.DataFrame:
    """Until every gate of a validation level (2 or 4) has passed; its gates. A failed gate raises."""
    deadline = time.monotonic() + timeout
    while True:
        found = gates(case)
        found = found[found["level"] == level] if not found.empty else found
        if not found.empty and (found["status"] == "passed").all():
            return found
        if not found.empty and (found["status"] == "failed").any():
            raise RuntimeError(f"a level-{level} gate failed:\n{found.to_string()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"level-{level} gates not passed after {timeout} s")
        time.sleep(2)


def verify(case: str) -> pd.DataFrame:
    """Per table: records in its files, rows the catalog recorded, rows on the workers; `exact` when equal."""
    from loader_assets.catalog.layout import case_layout
    from loader_assets.qserv.metadata import Dialect
    from loader_assets.workers.census import row_counts
    from loader_assets.workers.cluster import Cluster
    from loader_assets.workers.formats import count_records
    from loader_assets.workers.schema import chunk_table_name

    store, cluster = _store(), Cluster.from_env()
    layout = case_layout(store.db, case)
    placement = cluster.placement(layout.database)
    rows = []
    for _id, notice in _selection.select(f"case = '{case}'", store=store).frame.iterrows():
        if pd.isna(notice["chunk"]):  # a regular table: a full copy on every worker
            where = {worker: notice["table"] for worker in cluster.workers}
        else:
            chunk = int(notice["chunk"])
            where = {placement[chunk]: chunk_table_name(notice["table"], chunk, bool(notice["overlap"]))}
        for worker, table_name in where.items():
            on_worker = row_counts(cluster.worker_url(worker), layout.database, [table_name])[table_name] or 0
            file_rows = count_records(layout.root / notice["path"], Dialect.of(notice["format"]))
            rows.append({"table": notice["table"], "file": file_rows, "catalog": int(notice["rows"] or 0),
                         "workers": on_worker})  # fmt: skip
    per_table = pd.DataFrame(rows).groupby("table").sum()
    per_table["exact"] = (per_table["file"] == per_table["catalog"]) & (per_table["catalog"] == per_table["workers"])
    return per_table


@dataclass(frozen=True)
class Spoiled:
    """A file `spoil` changed, with what `restore` needs to put it back exactly."""

    path: Path
    copy: Path
    notice_id: int
    line: str


def spoil(case: str, notice_id: int, line: int, field: int, value: str) -> Spoiled:
    """Break a file on purpose (a demonstration): field `field` of line `line` (both from 1) becomes `value`."""
    from loader_assets.catalog.layout import case_layout

    path = case_layout(_store().db, case).root / select(f"id = {notice_id}").frame.loc[notice_id, "path"]
    copy = settings.state_dir() / "spoiled" / f"{uuid.uuid4().hex}-{path.name}"  # outside the case: not a notice
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


@contextmanager
def _quiet() -> Iterator[None]:
    with redirect_stderr(StringIO()):
        yield


def _store() -> Store:
    return Store.from_url()


def _daemon_problem():  # type: ignore[no-untyped-def]  # a problems.Problem or None
    from loader_assets.defs.instance import daemon_check, prepare_instance

    with _quiet():
        return daemon_check(prepare_instance())

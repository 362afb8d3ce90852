"""The documented example catalog of `docs/selection-queries.md`: small, fixed, realistic.

Two cases: `dc2` (director Object, children Source and ForcedSource, regular Filter; the Object level-2 gate
passed) and `dp02` (Object and Source; its Object gate failed, so its Source notices wait). 30 notices in
8 batches with every status, parked and backing-off failures, a stale and a live run, changed files.
All times are relative to `now`, so a test passes the same `now` to the queries.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.schema import batches, cases, level_gates, notices, tables

EXAMPLE_NOW = datetime(2026, 11, 23, 12, 0, 0)
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)
MB = 1_000_000

CASES = [("dc2", "dc2_catalog", "DC2 run 2.2i object catalog"), ("dp02", "dp02_catalog", "DP0.2 preview")]

TABLES = [
    # case, name, kind, level, director
    ("dc2", "Object", "director", 1, None),
    ("dc2", "Source", "child", 3, "Object"),
    ("dc2", "ForcedSource", "child", 3, "Object"),
    ("dc2", "Filter", "regular", 1, None),
    ("dp02", "Object", "director", 1, None),
    ("dp02", "Source", "child", 3, "Object"),
]

GATES = [
    # case, level, table, status
    ("dc2", 2, "Object", "passed"),
    ("dc2", 4, "Source", "pending"),
    ("dc2", 4, "ForcedSource", "pending"),
    ("dp02", 2, "Object", "failed"),
]

BATCHES = [
    # id, case, table, directory, step, task, level, priority, comment
    (1, "dc2", "Object", "step1_1", 1, 1, 1, 0, None),
    (2, "dc2", "Object", "step1_2", 1, 2, 1, 0, "re-exported 2026-11-20"),
    (3, "dc2", "Source", "step2_1", 2, 1, 3, 0, None),
    (4, "dc2", "Source", "step2_2", 2, 2, 3, 0, None),
    (5, "dc2", "ForcedSource", "step3_1", 3, 1, 3, 0, None),
    (6, "dc2", "Filter", "misc", None, None, 1, 0, None),
    (7, "dp02", "Object", "step1_1", 1, 1, 1, 0, None),
    (8, "dp02", "Source", "step2_1", 2, 1, 3, 0, None),
]

LOST = "(2013, 'Lost connection to server during query')"
LOST_INIT = "(2013, \"Lost connection to MySQL server at 'reading initial communication packet'\")"
DUPLICATE = "(1062, \"Duplicate entry '1234567' for key 'PRIMARY'\")"
NO_TABLE = "(1146, \"Table 'dc2_catalog.ForcedSource_57867' doesn't exist\")"


def _done(worker: str, hours_ago: float, rows: int) -> dict[str, Any]:
    """A notice loaded once, `hours_ago` hours before now, in ten minutes."""
    return {"status": "done", "attempts": 1, "worker": worker, "rows": rows, "finished": hours_ago, "took": 1 / 6}


def _failed(worker: str, attempts: int, error: str, hours_ago: float, retry_in: float) -> dict[str, Any]:
    """A failed notice; `retry_in` hours from now its back-off ends (negative: already over)."""
    return {
        "status": "failed",
        "attempts": attempts,
        "worker": worker,
        "error": error,
        "finished": hours_ago,
        "took": 1 / 12,
        "retry_in": retry_in,
    }


def _running(worker: str, run: str, started_ago: float, heartbeat_ago: float) -> dict[str, Any]:
    return {"status": "running", "attempts": 1, "worker": worker, "run": run, "started": started_ago,
            "heartbeat": heartbeat_ago}  # fmt: skip


NOTICES: list[tuple[int, int, str, dict[str, Any]]] = [
    # id, batch, file name in the batch directory, state
    (1, 1, "chunk_57866.txt", {**_done("worker-1", 20, 120_000), "size": 52 * MB}),
    (2, 1, "chunk_57866_overlap.txt", {**_done("worker-1", 20, 1_900), "size": 800_000}),
    (3, 1, "chunk_57867.txt", {**_done("worker-2", 19, 110_500), "size": 48 * MB}),
    (4, 1, "chunk_57867_overlap.txt", {**_done("worker-2", 19, 3_400), "size": 1_500_000}),
    (5, 1, "chunk_57868.txt", {**_done("worker-1", 18, 99_000), "size": 45 * MB}),
    (6, 1, "chunk_57868_overlap.txt", {**_done("worker-1", 18, 5_200), "size": 2_400_000}),
    (7, 1, "chunk_57869.txt", {**_done("worker-2", 18, 101_000), "size": 46 * MB}),
    (8, 1, "chunk_57870.txt", {**_done("worker-1", 17, 97_300), "size": 44 * MB}),
    (9, 2, "chunk_57871.txt", {**_done("worker-2", 16, 88_000), "size": 40 * MB}),
    (10, 2, "chunk_57872.txt", {**_failed("worker-2", 3, "LOAD DATA: " + LOST, 5, -4), "size": 41 * MB}),
    (11, 2, "chunk_57873.txt", {**_failed("worker-1", 1, LOST_INIT, 0.1, 1 / 6), "size": 39 * MB}),
    (
        12,
        2,
        "chunk_57874.txt",
        {
            "status": "ready",
            "attempts": 1,
            "changed": True,
            "priority": 5,
            "comment": "file re-exported",
            "size": 43 * MB,
        },
    ),
    (13, 2, "chunk_57874_overlap.txt", {**_running("worker-1", "run-7f3a", 3.2, 3.0), "size": 1_200_000}),
    (14, 6, "Filter.csv", {**_done("worker-1", 30, 6), "size": 2_000}),
    (15, 3, "chunk_57866.csv", {**_done("worker-1", 6, 2_400_000), "size": 310 * MB}),
    (16, 3, "chunk_57867.csv", {**_running("worker-2", "run-9c21", 0.5, 0.01), "size": 290 * MB}),
    (17, 3, "chunk_57868.csv", {**_running("worker-1", "run-9c21", 0.5, 0.0125), "size": 305 * MB}),
    (18, 3, "chunk_57869.csv", {**_failed("worker-2", 2, DUPLICATE, 1, -1 / 12), "size": 280 * MB}),
    (19, 3, "chunk_57870.csv", {"status": "ready", "priority": 10, "size": 300 * MB}),
    (20, 4, "chunk_57871.csv", {**_failed("worker-1", 1, LOST, 0.5, -1 / 60), "size": 270 * MB}),
    (21, 4, "chunk_57872.csv", {"status": "ready", "size": 260 * MB}),
    (22, 4, "chunk_57873.csv", {"status": "ready", "comment": "hot chunk", "size": 275 * MB}),
    (23, 4, "chunk_57874.csv", {**_done("worker-2", 4, 2_100_000), "size": 265 * MB}),
    (24, 5, "chunk_57866.parquet", {"status": "ready", "size": 150 * MB}),
    (25, 5, "chunk_57867.parquet", {**_failed("worker-1", 4, NO_TABLE, 2, -1.5), "size": 155 * MB}),
    (26, 5, "chunk_57868.parquet", {**_done("worker-2", 3, 1_300_000), "size": 148 * MB}),
    (27, 7, "chunk_10.txt", {**_done("worker-3", 50, 30_000), "size": 12 * MB}),
    (28, 7, "chunk_11.txt", {"status": "ready", "size": 11 * MB}),
    (29, 7, "chunk_12.txt", {**_failed("worker-3", 1, LOST, 48, -47.9), "size": 13 * MB}),
    (30, 8, "chunk_10.csv", {"status": "ready", "size": 90 * MB}),
]


def _chunk_and_overlap(name: str) -> tuple[int | None, bool]:
    stem = name.rsplit(".", 1)[0]
    if not stem.startswith("chunk_"):
        return None, False
    return int(stem.split("_")[1]), stem.endswith("_overlap")


def _notice_row(notice_id: int, batch_id: int, name: str, state: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A full notices row (executemany needs the same keys in every row), times relative to `now`."""
    _, case, table, directory, *_rest, level, _priority, _comment = BATCHES[batch_id - 1]
    chunk, overlap = _chunk_and_overlap(name)
    status = state["status"]
    finished = now - state["finished"] * HOUR if "finished" in state else None
    started = finished - state["took"] * HOUR if finished else None
    running = status == "running"
    if running:
        started = now - state["started"] * HOUR
    return {
        "id": notice_id,
        "case": case,
        "batch": batch_id,
        "table": table,
        "level": level,
        "chunk": chunk,
        "overlap": overlap,
        "path": f"{directory}/{name}",
        "format": name.rsplit(".", 1)[1],
        "size": state["size"],
        "mtime": 1_795_000_000.0 + notice_id,
        "changed": state.get("changed", False),
        "status": status,
        "priority": state.get("priority", 0),
        "attempts": state.get("attempts", 0),
        "rows": state.get("rows"),
        "worker": state.get("worker"),
        "error": state.get("error"),
        "comment": state.get("comment"),
        "attempt_id": None,
        "locked_by": state.get("run"),
        "owner_host": "loader-host-1" if running else None,
        "owner_pid": 4000 + notice_id if running else None,
        "locked_at": started if running else None,
        "heartbeat_at": now - state["heartbeat"] * HOUR if running else None,
        "lease_until": now - state["heartbeat"] * HOUR + 5 * MINUTE if running else None,
        "retry_after": now + state["retry_in"] * HOUR if "retry_in" in state else None,
        "created_at": now - 3 * 24 * HOUR,
        "started_at": started,
        "finished_at": finished,
        "updated_at": finished or started or now - 3 * 24 * HOUR,
    }


def build_example_catalog(db: CatalogDB, now: datetime = EXAMPLE_NOW) -> None:
    """Write the example catalog into an empty catalog."""
    with db.write() as connection:
        connection.execute(
            cases.insert(),
            [
                {"case": case, "database": database, "dialect": {}, "root": f"/data/{case}", "comment": comment,
                 "created_at": now - 4 * 24 * HOUR, "state": "active"}
                for case, database, comment in CASES
            ],
        )  # fmt: skip
        connection.execute(
            tables.insert(),
            [
                {"case": case, "name": name, "kind": kind, "level": level, "director_table": director,
                 "director_key": "objectId" if director else None, "columns": [], "indexes": []}
                for case, name, kind, level, director in TABLES
            ],
        )  # fmt: skip
        connection.execute(
            level_gates.insert(),
            [
                {"case": case, "level": level, "table": table, "status": status, "updated_at": now - 12 * HOUR,
                 "details": {"failed_checks": ["row_count"]} if status == "failed" else None}
                for case, level, table, status in GATES
            ],
        )  # fmt: skip
        keys = ("id", "case", "table", "directory", "step", "task", "level", "priority", "comment")
        connection.execute(batches.insert(), [dict(zip(keys, row, strict=True)) for row in BATCHES])
        connection.execute(
            notices.insert(), [_notice_row(i, batch, name, state, now) for i, batch, name, state in NOTICES]
        )


def set_gate(db: CatalogDB, case: str, level: int, table: str, status: str) -> None:
    """Change a gate of the example catalog as its rows are written: straight into the table (the example is a
    still picture of a catalog, not a load)."""
    with db.write() as connection:
        connection.execute(
            level_gates.update()
            .where(level_gates.c.case == case, level_gates.c.level == level, level_gates.c.table == table)
            .values(status=status)
        )

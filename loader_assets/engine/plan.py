"""Plans of runs: a frozen list of notices grouped by case, level and worker into runs of bounded size.

A Dagster run costs seconds and a real case has 10^4-10^5 chunks, so one run loads many notices. Queued runs
are grouped by worker so the run queue can limit the runs per worker (the `loader/worker` tag) while the
queue runs those of different workers at once; `loader-assets load` runs bypass the queue and run one after
another, so each of them spans all workers (`per_worker=False`) and loads into all of them at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from loader_assets import tags
from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.notices import PlanRow, plan_rows
from loader_assets.catalog.store import Store
from loader_assets.engine.targets import ALL_WORKERS, chunk_sizes, place_chunks
from loader_assets.problems import ServerDown
from loader_assets.workers.cluster import Cluster, Shortage

MAX_NOTICES_PER_RUN = 1000


@dataclass(frozen=True)
class RunPlan:
    """One run to request: notices of one case and level, on one worker."""

    case: str
    level: int
    worker: str
    notice_ids: tuple[int, ...]
    priority: int = 0
    force: bool = False

    @property
    def tags(self) -> dict[str, str]:
        return {
            tags.CASE: self.case,
            tags.LEVEL: str(self.level),
            tags.WORKER: self.worker,
            tags.PRIORITY: str(self.priority),
            tags.DESCRIPTION: f"load case {self.case} level {self.level} on {self.worker}: "
            f"{len(self.notice_ids)} notices" + (" (forced)" if self.force else ""),
        }

    def run_key(self, prefix: str, attempts: dict[int, int]) -> str:
        """Same notices at the same attempt numbers -> same key: a retry gets a new run, a duplicate never."""
        digest = hashlib.sha1(",".join(f"{i}:{attempts.get(i, 0)}" for i in self.notice_ids).encode()).hexdigest()
        return f"{prefix}:{self.case}:{self.level}:{self.worker}:{digest[:16]}"


def plan_runs(
    store: Store,
    cluster: Cluster,
    notice_ids: Iterable[int],
    *,
    priority: int = 0,
    force: bool = False,
    max_per_run: int = MAX_NOTICES_PER_RUN,
    per_worker: bool = True,
) -> tuple[list[RunPlan], dict[int, int]]:
    """Group notices by case, level and worker (placing new chunks) into runs of at most `max_per_run`;
    without `per_worker`, a run takes the notices of all workers (its `loader/worker` tag is `all`).

    Returns the plans and the attempt number of every notice (for run keys).
    """
    rows = plan_rows(store.db, notice_ids)
    layouts = case_layouts(store.db)
    by_case: dict[str, list[PlanRow]] = {}
    for row in rows:
        by_case.setdefault(row[1], []).append(row)
    groups: dict[tuple[str, int, str], list[tuple[int | None, int, int]]] = {}
    for case, of_case in sorted(by_case.items()):
        sizes = chunk_sizes((chunk, size) for _id, _case, _level, chunk, size, _priority, _attempts in of_case)
        placement = place_chunks(cluster, layouts[case], sizes)
        for notice_id, _case, level, chunk, _size, notice_priority, _attempts in of_case:
            worker = ALL_WORKERS if chunk is None or not per_worker else placement[chunk]
            groups.setdefault((case, level, worker), []).append((chunk, notice_id, notice_priority))
    return split_groups(groups, priority, force, max_per_run), {row[0]: row[6] for row in rows}


def shortages(store: Store, cluster: Cluster, notice_ids: Iterable[int]) -> list[Shortage | ServerDown]:
    """Workers short of room for what these notices put on them (placing their new chunks): refused ones, those
    past 80 % of their free space, and workers that do not answer. Regular tables are left out."""
    rows = plan_rows(store.db, notice_ids)
    layouts = case_layouts(store.db)
    found: list[Shortage | ServerDown] = []
    for case in sorted({row[1] for row in rows}):
        sizes = chunk_sizes((chunk, size) for _id, of_case, _level, chunk, size, _p, _a in rows if of_case == case)
        placement = place_chunks(cluster, layouts[case], sizes)
        found += cluster.check_room(placement, sizes, layouts[case].database).values()
    return found


def split_groups(
    groups: dict[tuple[str, int, str], list[tuple[int | None, int, int]]], priority: int, force: bool, max_per_run: int
) -> list[RunPlan]:
    """Each (case, level, worker) group in chunk order, cut into runs; a run's priority is its best notice's."""
    plans = []
    for (case, level, worker), members in sorted(groups.items()):
        members = sorted(members, key=_chunk_then_id)
        for start in range(0, len(members), max_per_run):
            part = members[start : start + max_per_run]
            run_priority = max(priority, *(m[2] for m in part))
            plans.append(RunPlan(case, level, worker, tuple(m[1] for m in part), run_priority, force))
    return plans


def _chunk_then_id(member: tuple[int | None, int, int]) -> tuple[int, int]:
    return (-1 if member[0] is None else member[0], member[1])  # regular tables (no chunk) first

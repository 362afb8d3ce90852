"""The sweeper: what recovery does on a timer, for the holds and partitions nobody is asking for.

`findings` only reads (the `stale_sweeper` sensor asks it every tick); `sweep` acts (in the `sweep` job's run):
the dead or lapsed holds taken back by the one recovery rule (`engine.recovery`), then every case's worker
partitions reconciled with the catalog (`engine.reconcile`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from loader_assets.catalog.layout import CaseLayout, case_layouts
from loader_assets.catalog.notices import reclaimable_holds
from loader_assets.catalog.store import Store, process_alive_here
from loader_assets.engine.reconcile import reconcile
from loader_assets.engine.recovery import take_back
from loader_assets.workers.cluster import Cluster


@dataclass(frozen=True)
class Findings:
    """What a sweep would do now: holds to take back, partitions to drop or notices to reload, per case."""

    holds: tuple[int, ...] = ()  # notice ids
    cases: tuple[str, ...] = ()  # cases whose workers differ from the catalog

    def __bool__(self) -> bool:
        return bool(self.holds or self.cases)

    def key(self) -> str:
        """The same findings give the same key: a sweep is requested once for them."""
        return f"holds={','.join(map(str, self.holds))};cases={','.join(self.cases)}"


@dataclass
class SweepOutcome:
    released: int = 0
    dead_runs: dict[str, int] = field(default_factory=dict)  # run id -> notices taken back from it
    reconciled: dict[str, str] = field(default_factory=dict)  # case -> what changed

    def line(self) -> str:
        runs = f" of runs {sorted(self.dead_runs)}" if self.dead_runs else ""
        fixed = "; ".join(f"{case}: {what}" for case, what in sorted(self.reconciled.items()))
        return f"took back {self.released} locks{runs}" + (f"; {fixed}" if fixed else "; workers match the catalog")


def findings(store: Store, cluster: Cluster) -> Findings:
    """Read-only: holds whose lease lapsed or whose owner is dead on this host, and cases whose workers'
    partitions differ from their attempts."""
    holds = tuple(
        hold.notice_id for hold in reclaimable_holds(store.db) if hold.lapsed or not process_alive_here(hold.host, hold.pid)
    )  # fmt: skip
    cases = tuple(
        layout.case for layout in _to_reconcile(store) if reconcile(store, cluster, layout, dry_run=True).changed
    )
    return Findings(holds, cases)


def sweep(store: Store, cluster: Cluster, log: Callable[[str], None] = print) -> SweepOutcome:
    """Take back dead or lapsed holds (their rows dropped) and reconcile every case's workers."""
    outcome = SweepOutcome()
    released = take_back(store, cluster, warn=log)
    outcome.released = len(released)
    for item in released:
        if item.run_id:
            outcome.dead_runs[item.run_id] = outcome.dead_runs.get(item.run_id, 0) + 1
    for layout in _to_reconcile(store):
        result = reconcile(store, cluster, layout, log=log)
        if result.changed:
            outcome.reconciled[layout.case] = (
                f"{sum(map(len, result.dropped.values()))} stray partitions dropped, {len(result.missing)} missing"
            )
    return outcome


def _to_reconcile(store: Store) -> list[CaseLayout]:
    """Every case but those being dropped (their tables are going: nothing of them is to be made whole)."""
    return [layout for _, layout in sorted(case_layouts(store.db).items()) if layout.state != "dropping"]

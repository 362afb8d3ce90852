"""Small hand-written stand-ins for the Qserv cluster, the executor and the heartbeat's store.

Each implements only the methods the engine calls, with the same signatures.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from loader_assets import levels
from loader_assets.catalog.layout import CaseLayout
from loader_assets.catalog.store import Owner, Store
from loader_assets.engine.plan import RunPlan
from loader_assets.engine.runner import LevelResult, RunOutcome
from loader_assets_tests.gates import decide_gate


class FakeCluster:
    """Places chunks on its workers round-robin in chunk order; a placed chunk never moves."""

    def __init__(self, workers: Iterable[str] = ("w1", "w2")) -> None:
        self.workers = {name: f"mysql://{name}:3306" for name in workers}
        self.databases: dict[str, tuple[int, int, float]] = {}
        self.placement: dict[int, str] = {}

    def register_database(self, database: str, num_stripes: int, num_sub_stripes: int, overlap: float) -> str:
        self.databases[database] = (num_stripes, num_sub_stripes, overlap)
        return f"{num_stripes}_{num_sub_stripes}_{overlap}"

    def place_chunks(
        self, database: str, chunk_ids: Iterable[int], bytes_per_chunk: Mapping[int, int] | int = 0
    ) -> dict[int, str]:
        assert database in self.databases, f"{database} placed before register_database"
        names = sorted(self.workers)
        chunks = sorted(set(chunk_ids))
        for chunk in chunks:
            if chunk not in self.placement:
                self.placement[chunk] = names[len(self.placement) % len(names)]
        return {chunk: self.placement[chunk] for chunk in chunks}

    def check_room(self, placement: Mapping[int, str], sizes: Mapping[int, int] | int, database: str) -> dict:
        return {}  # room enough everywhere


class FakeExecutor:
    """Loads a plan by claiming its notices through the Store and finishing them; validates by deciding its gate
    through the fenced path.

    `failing_checks` maps a table name to the checks its validation fails; `load_error` fails every notice.
    """

    def __init__(
        self, store: Store, *, failing_checks: dict[str, list[str]] | None = None, load_error: str | None = None
    ) -> None:
        self.store = store
        self.failing_checks = failing_checks or {}
        self.load_error = load_error
        self.plans: list[RunPlan] = []
        self.validated: list[tuple[int, str]] = []  # (level, table), in order
        self.load_follows: list[tuple[int, bool]] = []  # (level, whether the runner said a load follows it)

    def run_load(self, plan: RunPlan) -> RunOutcome:
        self.plans.append(plan)
        run_id = f"run-{len(self.plans)}"
        for claim in self.store.claim(plan.notice_ids, Owner.current(run_id), force=plan.force):
            if self.load_error is None:
                self.store.finish(claim.attempt_id, "done", rows=10, warnings=0)
            else:
                self.store.finish(claim.attempt_id, "failed", error=self.load_error)
        return RunOutcome(run_id)

    def run_validation(self, layout: CaseLayout, level: int, store: Store, cluster: object, *,
                       load_follows: bool = False) -> RunOutcome:  # fmt: skip
        self.load_follows.append((level, load_follows))
        for table in layout.tables_of_kind(levels.validated_kind(level)):
            self.validated.append((level, table.name))
            failed = self.failing_checks.get(table.name, [])
            decide_gate(
                self.store, layout.case, table.name, "failed" if failed else "passed", {"failed_checks": failed}
            )
        return RunOutcome(f"validation-{len(self.validated)}")


class Told:
    """A runner `Progress` that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.started: list[tuple[int, int]] = []

    def level_started(self, level: int, notices: int) -> None:
        self.started.append((level, notices))

    def level_ended(self, result: LevelResult) -> None:
        self.lines.append(f"level {result.level}: {result.message}")

    def note(self, line: str) -> None:
        self.lines.append(line)


class FakeLeaseStore:
    """The one method a Heartbeat calls: `heartbeat(attempt_ids)` returns the notices still held.

    The first `failures` calls raise `error`, as a catalog that is briefly unreachable would; `beats` is set after
    `wanted` calls.
    """

    def __init__(self, held: set[int], *, failures: int = 0, wanted: int = 1, error: Exception | None = None) -> None:
        self.held = held
        self.failures = failures
        self.error = error or ConnectionError("catalog unreachable")
        self.wanted = wanted
        self.calls: list[list[int]] = []
        self.beats = threading.Event()

    def heartbeat(self, attempt_ids: list[int]) -> set[int]:
        self.calls.append(attempt_ids)
        if len(self.calls) >= self.wanted:
            self.beats.set()
        if len(self.calls) <= self.failures:
            raise self.error
        return set(self.held)

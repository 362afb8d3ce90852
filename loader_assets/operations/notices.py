"""What an operator reads of notices and does to them: status, locks, history; reset and release."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loader_assets.catalog import views
from loader_assets.catalog.notices import known_notices, run_known
from loader_assets.catalog.store import Released
from loader_assets.operations.cases import known_case
from loader_assets.operations.context import Context
from loader_assets.problems import BadInput, Unknown

if TYPE_CHECKING:
    import pandas as pd  # imported where used: half a second of every command's start-up


@dataclass(frozen=True)
class Status:
    counts: list[dict[str, object]]  # a row per case / level / table: notices per shown status, and the total
    gates: list[dict[str, object]]  # each validation gate, its status and failing checks


def status(ctx: Context, case: str | None = None) -> Status:
    if case is not None:
        known_case(ctx, case)
    return Status(views.status_rows(ctx.store, case), views.gate_rows(ctx.store.db, case))


def sky_map(ctx: Context, case: str, width: int = 1600):  # type: ignore[no-untyped-def]  # a matplotlib Figure
    """The case on the sky, each chunk coloured by its most pressing notice's shown status (`skymap`)."""
    from loader_assets import skymap  # matplotlib is imported only when drawn

    layout = known_case(ctx, case)
    shown = views.chunk_statuses(ctx.store, case)
    return skymap.figure(layout.chunker, shown["chunk"], shown["status"].tolist(), f"case {case}", width)


def locks(ctx: Context, case: str | None = None) -> pd.DataFrame:
    return views.locks(ctx.store.db, case)


def history(ctx: Context, notice_id: int) -> pd.DataFrame:
    _known(ctx, [notice_id])
    return views.history(ctx.store.db, notice_id)


def reset(ctx: Context, notice_ids: list[int], *, force: bool = False) -> int:
    """Failed (or, with `force`, done) notices ready again with a fresh attempt budget; returns how many."""
    _known(ctx, notice_ids)
    statuses = views.shown_statuses(ctx.store, notice_ids)
    done = sorted(int(i) for i, status in statuses.items() if status == "done")
    if done and not force:
        raise BadInput(f"notices {', '.join(map(str, done[:10]))} are done: a reset loads their chunks again",
                       "add --force to reset them")  # fmt: skip
    return ctx.store.reset(notice_ids)


def release(ctx: Context, run_id: str, reason: str) -> list[Released]:
    """Release by hand every lock of a run (recorded in each attempt, with who released it)."""
    if not run_known(ctx.store.db, run_id):
        raise Unknown.named("run", run_id, "locks")
    return ctx.store.release_run(run_id, f"{reason} (by {getpass.getuser()}@{socket.gethostname()})")


def _known(ctx: Context, ids: list[int]) -> None:
    missing = sorted(set(ids) - known_notices(ctx.store.db, ids))
    if missing:
        raise Unknown.named("notice", ", ".join(map(str, missing[:10])), 'select "case = <case>"')

"""Each part a load needs, checked with its fix: the catalog, the czar, every worker, the Dagster instance and its
daemon, the webserver. `loader-assets doctor` prints them all; `load`, `drop` and `schedule` stop at the first that
fails (`preflight`)."""

from __future__ import annotations

from dataclasses import dataclass

from loader_assets.catalog.database import check_reachable, shown_url
from loader_assets.catalog.layout import case_layouts
from loader_assets.catalog.notices import pending_chunk_bytes
from loader_assets.operations.context import Context
from loader_assets.problems import CatalogDown, Problem, ServerDown
from loader_assets.workers.cluster import WARNED_SHARE, Cluster, Shortage

CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    problem: Problem | None  # None: fine
    detail: str = ""

    def line(self) -> str:
        if self.problem is None:
            return f"ok    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.problem.cause}\n      fix: {self.problem.fix}"


def catalog(ctx: Context) -> Check:
    url = ctx.settings.catalog_url
    try:
        check_reachable(url)
    except CatalogDown as problem:
        return Check("catalog", problem)
    return Check("catalog", None, shown_url(url))


def servers(cluster: Cluster) -> list[Check]:
    """The czar and each worker answer a connection (and accept the login)."""
    checks = []
    for server in [cluster.czar, *cluster.workers.values()]:
        try:
            server.open(connect_timeout=CONNECT_TIMEOUT).close()
        except ServerDown as problem:
            checks.append(Check(server.name, problem))
            continue
        checks.append(Check(server.name, None, f"{server.address.host}:{server.address.port}"))
    return checks


def disks(ctx: Context) -> list[Check]:
    """Each worker's free space against the bytes of the notices not done yet that its chunks hold (chunks not
    placed yet counted evenly over the workers); where it can be known."""
    layouts = case_layouts(ctx.store.db)
    workers = list(ctx.cluster.workers)
    need = dict.fromkeys(workers, 0.0)
    for case, sizes in pending_chunk_bytes(ctx.store.db).items():
        placement = ctx.cluster.placement_or_empty(layouts[case].database)
        for chunk, size in sizes.items():
            if chunk in placement:
                need[placement[chunk]] += size
            else:
                for worker in workers:
                    need[worker] += size / len(workers)
    checks = []
    for worker in workers:
        try:
            room = ctx.cluster.room(worker)
        except ServerDown as problem:
            checks.append(Check(f"disk of {worker}", problem))
            continue
        if room is None:
            checks.append(Check(f"disk of {worker}", None, "free space cannot be known (remote, no DISKS plugin)"))
            continue
        shortage = Shortage(ctx.cluster.worker(worker), room, int(need[worker]))
        if shortage.refused:
            checks.append(Check(f"disk of {worker}", shortage.problem()))
        else:
            warned = "warning: " if shortage.need > WARNED_SHARE * room.free else ""
            checks.append(Check(f"disk of {worker}", None, warned + shortage.line().split(": ", 1)[1]))
    return checks


def dagster(ctx: Context) -> list[Check]:
    """The instance opens, and a daemon beats for it."""
    try:
        daemon = ctx.dagster.daemon_problem()
    except Problem as problem:
        return [Check("instance", problem)]
    return [Check("instance", None, str(ctx.settings.dagster_home)), Check("daemon", daemon, "beating")]


def doctor(ctx: Context) -> tuple[list[Check], str]:
    """Every check, and a line about the webserver (informational: the CLI needs none)."""
    checks = [catalog(ctx)]
    try:
        checks += servers(ctx.cluster)
    except Problem as problem:  # no cluster configured
        checks.append(Check("workers", problem))
    if first_failure(checks) is None:
        checks += disks(ctx)
    checks += dagster(ctx)
    if "dagster" not in ctx.__dict__:  # the instance did not open
        return checks, f"not checked at {ctx.settings.webserver} (no instance)"
    return checks, ctx.dagster.webserver_problem() or f"answers at {ctx.settings.webserver}"


def first_failure(checks: list[Check]) -> Problem | None:
    return next((check.problem for check in checks if check.problem is not None), None)


def preflight(ctx: Context) -> None:
    """Stop before anything is launched when the catalog, the czar or a worker does not answer."""
    problem = first_failure([catalog(ctx), *servers(ctx.cluster)])
    if problem is not None:
        raise problem

"""Pre-flight checks of what a load needs: the catalog, the czar and every worker (the Dagster parts, daemon and
webserver, are checked in `defs.instance`). `loader-assets doctor` prints them all; `load` and `schedule` stop
at the first that fails, with its fix."""

from __future__ import annotations

from dataclasses import dataclass

from loader_assets import problems
from loader_assets.catalog.engine import shown_url, unreachable
from loader_assets.workers.cluster import ClusterConfig
from loader_assets.workers.connection import WorkerUnavailable, open_connection, parse_url

CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    name: str
    problem: problems.Problem | None  # None: fine
    detail: str = ""

    def line(self) -> str:
        if self.problem is None:
            return f"ok    {self.name}: {self.detail}"
        return f"FAIL  {self.name}: {self.problem.cause}\n      fix: {self.problem.fix}"


def catalog(url: str) -> Check:
    why = unreachable(url)
    return Check("catalog", None if why is None else problems.catalog_down(shown_url(url), why), shown_url(url))


def servers(config: ClusterConfig) -> list[Check]:
    """The czar and each worker answer a connection."""
    checks = []
    for name, url in [("czar", config.czar_url), *config.workers.items()]:
        address = parse_url(url)
        try:
            open_connection(url, connect_timeout=CONNECT_TIMEOUT).close()
        except WorkerUnavailable as error:
            checks.append(Check(name, server_down(config, url, error.reason)))
            continue
        checks.append(Check(name, None, f"{address.host}:{address.port}"))
    return checks


def server_down(config: ClusterConfig, url: str, reason: str) -> problems.Problem:
    """The problem of a server of `config` that did not answer (named as the configuration names it)."""
    names = {config.czar_url: "czar", **{u: n for n, u in config.workers.items()}}
    address = parse_url(url)
    name = names.get(url, "server")
    return problems.server_down(name, f"{address.host}:{address.port}", reason, czar=name == "czar")


def first_failure(checks: list[Check]) -> problems.Problem | None:
    return next((check.problem for check in checks if check.problem is not None), None)

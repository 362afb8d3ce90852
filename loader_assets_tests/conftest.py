"""Fixtures that start or reach the real servers: PostgreSQL and SQLite catalogs, a local MariaDB cluster,
a persistent Dagster instance and its daemon. Tests that use none of them are the `unit` tier (`make unit`)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from loader_assets import levels
from loader_assets.catalog.database import CatalogDB
from loader_assets.catalog.register import Registration
from loader_assets.catalog.store import Store
from loader_assets.engine.interruption import INTERRUPTION
from loader_assets.engine.plan import RunPlan
from loader_assets.engine.runner import LevelResult, RunOutcome
from loader_assets.operations import cases, loading
from loader_assets.operations.context import Context
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster, ClusterConfig
from loader_assets_tests.servers import REPOSITORY, postgres_database
from loader_assets_tests.servers import dagster_daemon as dagster_daemon_process

__all__ = ["REPOSITORY", "Platform"]

# Fixtures that reach a server: a test using any of them (directly or through another) is not a unit test.
SERVER_FIXTURES = {
    "postgres_url", "cluster_state", "cluster_config", "cluster", "platform", "dagster_daemon", "instance_on_postgresql"
}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test is `unit` (no server) or `servers`, told from the fixtures it uses, so `make unit` runs the first
    tier alone; a catalog fixture counts as a server on PostgreSQL only."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        on_postgres = getattr(getattr(item, "callspec", None), "params", {}).get("catalog_url") == "postgresql"
        in_unit = "unit" in item.path.relative_to(Path(__file__).parent).parts  # fakes there, never a server
        marked = item.get_closest_marker("servers") is not None  # starts its servers itself
        servers = marked or (not in_unit and (bool(names & SERVER_FIXTURES) or on_postgres))
        item.add_marker(pytest.mark.servers if servers else pytest.mark.unit)


@pytest.fixture(autouse=True)
def _nothing_left_behind(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test leaves no interrupt and no DAGSTER_HOME of its own (an entry point exports one) to the next."""
    if "DAGSTER_HOME" in os.environ:
        monkeypatch.setenv("DAGSTER_HOME", os.environ["DAGSTER_HOME"])
    else:
        monkeypatch.delenv("DAGSTER_HOME", raising=False)
    yield
    INTERRUPTION.reset()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def instance_on_postgresql(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The platform's Dagster instance in a PostgreSQL database of its own (its URL; asked for before `platform`)."""
    with postgres_database() as url:
        monkeypatch.setenv("LOADER_DAGSTER_PG_URL", url)
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A catalog URL on each backend: a SQLite file and a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def catalog_db(catalog_url: str) -> Iterator[CatalogDB]:
    db = CatalogDB(catalog_url)
    yield db
    db.dispose()


@pytest.fixture(scope="session")
def cluster_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A czar and two mariadbd workers on free loopback ports, for the whole session."""
    state_dir = tmp_path_factory.mktemp("cluster")
    local.start_cluster(state_dir, 2)
    try:
        yield state_dir
    finally:
        local.stop_cluster(state_dir)


@pytest.fixture(scope="session")
def cluster_config(cluster_state: Path) -> ClusterConfig:
    return ClusterConfig.load(cluster_state)


@pytest.fixture(scope="session")
def cluster(cluster_config: ClusterConfig) -> Cluster:
    return Cluster(cluster_config)


@dataclass
class Platform:
    """What a test drives, as an operator would: the operations' context over the session's servers."""

    root: Path
    ctx: Context

    @property
    def store(self) -> Store:
        return self.ctx.store

    @property
    def instance(self) -> dg.DagsterInstance:
        return self.ctx.dagster.instance

    @property
    def cluster(self) -> Cluster:
        return self.ctx.cluster

    def sample_case(
        self, *, chunks: int = 4, rows_per_chunk: int = 100, fmt: str = "csv", seed: int = 0
    ) -> Registration:
        """Write and register a sample case under a fresh name (the worker cluster is shared by the session)."""
        case = f"c{uuid.uuid4().hex[:8]}"
        root = write_sample_case(self.root / "cases" / case, chunks=chunks, rows_per_chunk=rows_per_chunk, fmt=fmt,
                                 database=case, seed=seed)  # fmt: skip
        return cases.register(self.ctx, root, case).registration

    def definitions(self) -> dg.Definitions:
        from loader_assets.definitions import build_definitions

        return build_definitions(self.ctx.settings)

    def load(self, case: str, levels: tuple[int, ...] = levels.ALL, *, force: bool = False) -> list[LevelResult]:
        """`loader-assets load CASE --level L` for each of `levels`, in order: the first that does not succeed
        raises its problem."""
        return [result for level in levels for result in loading.load(self.ctx, case, level=level, force=force)]

    def run_plan(self, plan: RunPlan) -> RunOutcome:
        """One load run of `plan` in this process, as `load` runs them."""
        return self.ctx.dagster.executor(self.ctx.settings.catalog_url).run_load(plan)

    def succeeded(self, run_id: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        return run is not None and run.status == dg.DagsterRunStatus.SUCCESS

    def materialized_in(self, run_id: str) -> list[dg.AssetMaterialization]:
        """The materializations a run logged, in order."""
        events = self.instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        return [event.asset_materialization for event in events if event.asset_materialization is not None]


@pytest.fixture
def platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster_config: ClusterConfig, catalog_url: str
) -> Iterator[Platform]:
    monkeypatch.setenv("LOADER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    monkeypatch.setenv("LOADER_CATALOG_URL", catalog_url)
    monkeypatch.setenv("LOADER_CZAR", cluster_config.czar_url)
    monkeypatch.setenv("LOADER_SENSOR_INTERVAL", "5")
    monkeypatch.setenv("LOADER_WORKERS", ",".join(f"{n}={u}" for n, u in cluster_config.workers.items()))
    monkeypatch.setenv("LOADER_DAGSTER_WEBSERVER", "127.0.0.1:1")  # no webserver to reload: answered at once
    ctx = Context.from_env()
    cases.init(ctx)
    yield Platform(tmp_path, ctx)
    ctx.close()


@pytest.fixture
def dagster_daemon(platform: Platform) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the platform's instance: sensors tick and queued runs launch."""
    with dagster_daemon_process(platform.instance, platform.root / "daemon.log") as daemon:
        yield daemon

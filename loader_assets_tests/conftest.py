"""Fixtures that start or reach the real servers: PostgreSQL and SQLite catalogs, a local MariaDB cluster,
a persistent Dagster instance and its daemon."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, text

from loader_assets.catalog.engine import CatalogDB
from loader_assets.catalog.register import Registration, register_case
from loader_assets.catalog.store import Store
from loader_assets.defs.instance import prepare_instance
from loader_assets.defs.partitions import add_chunk_partitions
from loader_assets.qserv.sample import write_sample_case
from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster, ClusterConfig

REPOSITORY = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get(
    "LOADER_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    name = f"loader_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
    root: Path
    store: Store
    instance: dg.DagsterInstance
    cluster: Cluster

    def sample_case(
        self, *, chunks: int = 4, rows_per_chunk: int = 100, fmt: str = "csv", seed: int = 0
    ) -> Registration:
        """Write and register a sample case under a fresh name (the worker cluster is shared by the session)."""
        case = f"c{uuid.uuid4().hex[:8]}"
        root = write_sample_case(self.root / "cases" / case, chunks=chunks, rows_per_chunk=rows_per_chunk, fmt=fmt,
                                 database=case, seed=seed)  # fmt: skip
        registration = register_case(self.store, root, case)
        add_chunk_partitions(self.instance, case, registration.chunks)
        return registration

    def definitions(self) -> dg.Definitions:
        from loader_assets.definitions import build_definitions  # importing the module reads the default catalog

        return build_definitions(self.store.db.url)


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
    instance = prepare_instance()
    yield Platform(tmp_path, Store.from_url(catalog_url), instance, Cluster.from_env())
    instance.dispose()


@pytest.fixture
def dagster_daemon(platform: Platform) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` on the platform's instance: sensors tick and queued runs launch."""
    log = open(platform.root / "daemon.log", "wb")  # noqa: SIM115 - closed below, after the process
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(REPOSITORY / "workspace.yaml")],
        cwd=REPOSITORY, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while {"SENSOR", "QUEUED_RUN_COORDINATOR"} - set(platform.instance.get_daemon_heartbeats()):
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"dagster-daemon did not start: {(platform.root / 'daemon.log').read_text()[-2000:]}"
                )
            time.sleep(1)
        yield daemon
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()

"""Tables to load into on the session's real cluster (the `cluster` fixture of the root conftest)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loader_assets.workers import local
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import Server
from loader_assets.workers.ddl import create_chunk_tables, create_database

OBJECT_COLUMNS = [
    {"name": "objectId", "type": "BIGINT NOT NULL"},
    {"name": "chunkId", "type": "INT NOT NULL"},
    {"name": "subChunkId", "type": "INT NOT NULL"},
    {"name": "ra", "type": "DOUBLE"},
    {"name": "decl", "type": "DOUBLE"},
    {"name": "name", "type": "VARCHAR(32)"},
    {"name": "payload", "type": "VARBINARY(64)"},
]
OBJECT_NAMES = [column["name"] for column in OBJECT_COLUMNS]
OBJECT_INDEXES = [
    {"index": "idx_objectId", "spec": "UNIQUE", "columns": [{"column": "objectId", "length": 0, "ascending": 1}]}
]


@pytest.fixture
def database() -> str:
    """A fresh database name per test, so tests never see each other's tables."""
    return f"test_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def worker(cluster: Cluster) -> Server:
    return cluster.worker("worker1")


ChunkTableFactory = Callable[..., str]


@pytest.fixture
def chunk_table(worker: Server, database: str) -> ChunkTableFactory:
    """Create `<database>.Object_<chunk>` (+ overlap) on worker1 and return the chunk table's name."""

    def create(chunk: int = 6630, columns: list[dict] | None = None, charset: str = "latin1") -> str:
        with worker.connect() as conn:
            create_database(conn, database, charset)
            create_chunk_tables(conn, database, "Object", columns or OBJECT_COLUMNS, OBJECT_INDEXES, chunk, charset)
        return f"Object_{chunk}"

    return create


@pytest.fixture
def small_packets(tmp_path: Path) -> Iterator[Server]:
    """A worker of its own whose max_allowed_packet is 1 MiB (the session's cluster allows 256 MiB)."""
    started = local.start_server(tmp_path, "small")
    try:
        server = Server("worker", "small", started.url)
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SET GLOBAL max_allowed_packet = 1048576")  # for the connections opened from now on
        yield server
    finally:
        local.stop_server(tmp_path, "small")

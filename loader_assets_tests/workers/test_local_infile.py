"""LOAD DATA LOCAL's data as this project sends it: files in 1 MiB packets, streams straight from memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pymysql
import pymysql.connections
import pytest

from loader_assets.workers import local_infile
from loader_assets.workers.connection import Server, quote_table


def test_pymysql_sends_local_files_through_this_module():
    """pymysql has no public hook: if it stops calling `_send_local_file`, its 16 KiB loop would come back
    silently, and streams would fail as missing files."""
    assert "_send_local_file" in pymysql.connections.MySQLResult._read_load_local_packet.__code__.co_names
    assert pymysql.connections._send_local_file is local_infile.send_local_file


@pytest.fixture
def pairs(worker: Server, database: str) -> Iterator[str]:
    with _pairs_table(worker, database) as table:
        yield table


@contextmanager
def _pairs_table(server: Server, database: str) -> Iterator[str]:
    table = quote_table(database, "pairs")
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
        cursor.execute(f"CREATE TABLE {table} (n INT NOT NULL, label VARCHAR(16) NOT NULL) ENGINE=MyISAM")
    try:
        yield table
    finally:
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")


def lines(first: int, last: int) -> bytes:
    return b"".join(f"{n}\tlabel {n}\n".encode() for n in range(first, last))


def load_local(worker: Server, table: str, name: str) -> tuple[int, tuple]:
    with worker.connect(local_infile=True) as conn, conn.cursor() as cursor:
        local_infile.execute(cursor, f"LOAD DATA LOCAL INFILE {conn.escape(name)} INTO TABLE {table}")
        loaded = cursor.rowcount
        cursor.execute(f"SELECT COUNT(*), SUM(n), COUNT(DISTINCT n) FROM {table}")
        return loaded, cursor.fetchone()


def test_a_stream_goes_whole_across_packets_and_empty_blocks(worker, pairs):
    blocks = [lines(0, 1), b"", lines(1, 200_000), memoryview(lines(200_000, 200_010))]  # the middle: ~3 MiB
    assert len(blocks[2]) > 2 * local_infile.PACKET_BYTES
    with local_infile.stream(iter(blocks)) as name:
        assert load_local(worker, pairs, name) == (200_010, (200_010, sum(range(200_010)), 200_010))
    assert local_infile._streams == {}


def test_the_kernel_sends_a_files_packets_over_a_plain_connection(worker):
    """pymysql keeps its socket and the next packet's sequence number where the kernel's sends read them; else every
    packet would go through `write_packet` again (0.5 ms a MB against 0.3), silently."""
    with worker.connect(local_infile=True) as conn:
        assert local_infile._kernel_sends(conn)


def test_a_file_goes_in_packets(worker, pairs, tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(lines(0, 150_000))
    assert path.stat().st_size > local_infile.PACKET_BYTES
    assert load_local(worker, pairs, str(path)) == (150_000, (150_000, sum(range(150_000)), 150_000))


def test_an_error_while_streaming_ends_the_statement_and_keeps_the_connection(worker, pairs):
    def failing():
        yield lines(0, 10)
        raise ValueError("converter failed")

    with worker.connect(local_infile=True) as conn, conn.cursor() as cursor:
        with local_infile.stream(failing()) as name, pytest.raises(ValueError, match="converter failed"):
            cursor.execute(f"LOAD DATA LOCAL INFILE {conn.escape(name)} INTO TABLE {pairs}")
        cursor.execute(f"SELECT COUNT(*) FROM {pairs}")  # the protocol is in step: the next statement answers
        assert cursor.fetchone() == (10,)


def test_a_stream_the_server_never_asked_for_is_forgotten(worker, database):
    with (
        worker.connect(local_infile=True) as conn,
        conn.cursor() as cursor,
        pytest.raises(pymysql.err.ProgrammingError),
        local_infile.stream(iter([b"1\n"])) as name,
    ):
        cursor.execute(f"LOAD DATA LOCAL INFILE {conn.escape(name)} INTO TABLE {quote_table(database, 'none')}")
    assert local_infile._streams == {}


def test_a_server_allowing_small_packets_gets_files_and_streams(small_packets, database, tmp_path):
    """A packet not below the server's max_allowed_packet resets the connection: each is kept to half of it."""
    path = tmp_path / "pairs.tsv"
    path.write_bytes(lines(0, 150_000))
    with _pairs_table(small_packets, database) as table:
        assert load_local(small_packets, table, str(path))[0] == 150_000
        with local_infile.stream(iter([lines(150_000, 300_000)])) as name:
            assert load_local(small_packets, table, name) == (150_000, (300_000, sum(range(300_000)), 300_000))


def test_an_unregistered_stream_is_never_read_as_a_file(worker, pairs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"{local_infile.STREAM_PREFIX}gone").write_bytes(lines(0, 5))  # a file of that very name
    with pytest.raises(pymysql.err.OperationalError, match="no stream"):
        load_local(worker, pairs, f"{local_infile.STREAM_PREFIX}gone")

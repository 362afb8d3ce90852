"""What `LOAD DATA LOCAL INFILE` sends once the server asks for its file: the file in 1 MiB packets, or the
blocks of a stream (a Parquet file converted to text) straight from memory.

pymysql reads the file and sends it 16 KiB at a time (0.64 ms of CPU a MB here, half the cost of parsing the
file's keys); 1 MiB packets cost 0.41 ms. A stream needs no named pipe: a pipe cost a copy into the kernel and
a 16 KiB read loop back out, and a signal could cut its writes short. pymysql has no public hook for this: its
module function `_send_local_file(filename, conn)` is replaced here (a test checks that pymysql still calls it
by that name); the packets go through its public `write_packet`, which maps a lost socket to its error.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.connections

# A packet's payload: far below MariaDB's smallest usual max_allowed_packet (16 MiB since 10.2), and large enough
# that the per-packet work (a call, a header, a send) is lost in the copying.
PACKET_BYTES = 1 << 20
STREAM_PREFIX = "loader-stream:"
_FILE_NOT_FOUND = 1017  # ER_FILE_NOT_FOUND, as pymysql reports an unreadable file

_streams: dict[str, Iterable[Any]] = {}  # name -> blocks (objects with the buffer protocol)
_lock = threading.Lock()


@contextmanager
def stream(blocks: Iterable[Any]) -> Iterator[str]:
    """A name for `LOAD DATA LOCAL INFILE '<name>'` that sends the bytes of `blocks`, in order, once."""
    name = f"{STREAM_PREFIX}{uuid.uuid4().hex}"
    with _lock:
        _streams[name] = blocks
    try:
        yield name
    finally:  # a statement refused before the server asked for it leaves its stream unread
        with _lock:
            _streams.pop(name, None)


def send_local_file(filename: bytes | str, conn: pymysql.connections.Connection) -> None:
    """Send what the server asked for (pymysql passes the name as the server's bytes): a registered stream, or
    the file by that name."""
    filename = os.fsdecode(filename)
    with _lock:
        blocks = _streams.pop(filename, None)
    if blocks is not None:
        for block in blocks:
            _send(memoryview(block).cast("B"), conn)
        return
    try:
        with open(filename, "rb", buffering=0) as file:
            buffer = bytearray(PACKET_BYTES)
            view = memoryview(buffer)
            while size := file.readinto(buffer):
                conn.write_packet(view[:size])
    except OSError as error:  # reading the file; write_packet raises pymysql's own errors
        raise pymysql.err.OperationalError(_FILE_NOT_FOUND, f"Can't open file '{filename}': {error}") from error


def _send(view: memoryview, conn: pymysql.connections.Connection) -> None:
    # Never an empty packet: it tells the server the data has ended.
    for start in range(0, len(view), PACKET_BYTES):
        conn.write_packet(view[start : start + PACKET_BYTES])


PYMYSQL_SEND_LOCAL_FILE = pymysql.connections._send_local_file  # its 16 KiB loop (a benchmark's bare load)
pymysql.connections._send_local_file = send_local_file

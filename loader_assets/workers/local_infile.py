"""What `LOAD DATA LOCAL INFILE` sends once the server asks for its file: the file in 1 MiB packets, or the
blocks of a stream (a Parquet file converted to text) straight from memory.

pymysql reads the file and sends it 16 KiB at a time (0.64 ms of CPU a MB here, half the cost of parsing the
file's keys); 1 MiB packets through its `write_packet` cost 0.41-0.50 ms (a copy into Python, another to join each
packet to its header); the kernel sending the file itself (`socket.sendfile`) 0.28. A stream needs no named
pipe: a pipe cost a copy into the kernel and a 16 KiB read loop back out, and a signal could cut its writes short.
pymysql has no public hook for this: its module function `_send_local_file(filename, conn)` is replaced here, and
the kernel's sends write each packet's header as `write_packet` does, with its socket and sequence number (a test
checks that pymysql still calls the function by that name and has both); over TLS, or without them, every packet
goes through `write_packet`, which maps a lost socket to its error.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import pymysql
import pymysql.connections
import pymysql.cursors

# A packet's payload: large enough that the per-packet work (a call, a header, a send) is lost in the copying. A
# server refuses a packet not below its max_allowed_packet (1 KiB at least; MariaDB's default is 16 MiB), so a
# connection sends at most half of its own (`measure`), and pymysql's 16 KiB when it was never measured.
PACKET_BYTES = 1 << 20
UNMEASURED_PACKET_BYTES = 16 * 1024
STREAM_PREFIX = "loader-stream:"
_FILE_NOT_FOUND = 1017  # ER_FILE_NOT_FOUND, as pymysql reports an unreadable file
_SERVER_GONE = 2006  # CR_SERVER_GONE_ERROR, as pymysql reports a socket that failed while writing
_LENGTH = struct.Struct("<I")  # a packet's header: its length in 3 bytes, then its sequence number

_streams: dict[str, Iterable[Any]] = {}  # name -> blocks (objects with the buffer protocol)
_packet_bytes: weakref.WeakKeyDictionary[pymysql.connections.Connection, int] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def execute(cursor: pymysql.cursors.Cursor, sql: str, args: object = None) -> None:
    """Run a LOAD DATA LOCAL statement: its packets sized first (`measure`). When the link breaks while the data
    goes, pymysql ends the exchange on the socket it has just closed, and that AttributeError hides the real
    error (the server gone): that one is raised instead."""
    measure(cursor.connection)
    try:
        cursor.execute(sql, args)
    except AttributeError as error:
        if isinstance(error.__context__, pymysql.err.MySQLError):
            raise error.__context__ from None
        raise


def measure(conn: pymysql.connections.Connection) -> None:
    """Learn the packet size this connection may send (a query, once per connection): before a LOAD DATA LOCAL,
    whose exchange has no room for one."""
    with _lock:
        if conn in _packet_bytes:
            return
    with conn.cursor() as cursor:
        cursor.execute("SELECT @@max_allowed_packet")
        limit = int(cursor.fetchone()[0])
    with _lock:
        _packet_bytes[conn] = max(1, min(PACKET_BYTES, limit // 2))


def _forget_after_fork() -> None:
    """A fork copies the lock as it was (perhaps held by a thread that does not exist in the child)."""
    global _lock
    _lock = threading.Lock()
    _streams.clear()
    _packet_bytes.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


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
        size = _packet_bytes.get(conn, UNMEASURED_PACKET_BYTES)
    if blocks is not None:
        for block in blocks:
            _send(memoryview(block).cast("B"), conn, size)
        return
    if filename.startswith(STREAM_PREFIX):  # never a file: a stream sent already, or never registered
        raise pymysql.err.OperationalError(_FILE_NOT_FOUND, f"no stream {filename} to send")
    try:
        with open(filename, "rb", buffering=0) as file:
            buffer = bytearray(size)
            view = memoryview(buffer)
            sent = file.readinto(buffer)
            if sent:
                conn.write_packet(view[:sent])  # which sets the socket's write timeout
            if sent and _kernel_sends(conn):
                _sendfile(conn, file, sent, size)
                return
            while read := file.readinto(buffer):
                conn.write_packet(view[:read])
    except OSError as error:  # reading the file; pymysql's own errors for the socket
        raise pymysql.err.OperationalError(_FILE_NOT_FOUND, f"Can't open file '{filename}': {error}") from error


def _kernel_sends(conn: pymysql.connections.Connection) -> bool:
    sock = getattr(conn, "_sock", None)
    plain = isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket)
    return plain and isinstance(getattr(conn, "_next_seq_id", None), int)


def _sendfile(conn: pymysql.connections.Connection, file: Any, offset: int, size: int) -> None:
    """The rest of the file from `offset`, in packets of `size` sent by the kernel, each after its header."""
    sock = conn._sock
    while (count := min(size, os.fstat(file.fileno()).st_size - offset)) > 0:
        try:
            sock.sendall(_LENGTH.pack(count)[:3] + bytes((conn._next_seq_id,)))
            sent = 0
            while sent < count and (step := sock.sendfile(file, offset + sent, count - sent)):
                sent += step
            if sent < count:  # the file shrank since its size was read: the packet is still owed in full
                sock.sendall(b"\n" * (count - sent))
        except OSError as error:
            raise pymysql.err.OperationalError(_SERVER_GONE, f"MySQL server has gone away ({error!r})") from error
        conn._next_seq_id = (conn._next_seq_id + 1) % 256
        if sent < count:
            raise pymysql.err.OperationalError(_FILE_NOT_FOUND, f"{file.name} shrank while it was being sent")
        offset += count


def _send(view: memoryview, conn: pymysql.connections.Connection, size: int) -> None:
    # Never an empty packet: it tells the server the data has ended.
    for start in range(0, len(view), size):
        conn.write_packet(view[start : start + size])


PYMYSQL_SEND_LOCAL_FILE = pymysql.connections._send_local_file  # its 16 KiB loop (a benchmark's bare load)
pymysql.connections._send_local_file = send_local_file

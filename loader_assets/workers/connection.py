"""Connecting to one MariaDB server of the cluster, the czar or a worker, known by its role and name.

URLs look like `mysql+pymysql://user@host:port`; the password comes only from the settings
(`LOADER_WORKER_PASSWORD`), so URLs can be logged, stored in `workers.json` and shown in messages. A server that
does not answer, refuses the login or goes away mid-statement is a `WorkerDown` or `CzarDown` naming it: this is
where the failure is caught, and where the server is known.
"""

from __future__ import annotations

import atexit
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pymysql

from loader_assets.problems import BadInput, CzarDown, ServerDown, WorkerDown

DEFAULT_PORT = 3306
CONNECT_SECONDS = 10  # a server that neither greets nor answers a ping within this is down (frozen, hung, gone)
CZAR, WORKER = "czar", "worker"
ACCESS_DENIED = 1045

# Client-side codes (20xx) plus server codes meaning "the server is going away or went away".
_UNAVAILABLE_CODES = frozenset({2002, 2003, 2005, 2006, 2013, 2055, 1053, 1927})
_DISK_FULL_CODES = frozenset({1021, 1114})  # ER_DISK_FULL, ER_RECORD_FILE_FULL


@dataclass(frozen=True)
class ServerAddress:
    user: str
    host: str
    port: int
    database: str | None = None


@dataclass(frozen=True)
class ServerOptions:
    """How every server is reached: the password, TLS, and how long a send may make no progress."""

    password: str = field(default="", repr=False)
    tls: bool = False  # pymysql builds a TLS context (~30 ms) on every connect: opt in
    # A worker shutting down cleanly can leave a LOAD DATA upload stuck on a zero TCP window until the kernel
    # drops the orphaned socket: a send that makes no progress for this long means the worker is gone. No read
    # timeout: finishing a big load legitimately takes long.
    write_timeout: float = 60.0


@dataclass(frozen=True)
class Server:
    """One MariaDB server of the cluster: `role` czar or worker, `name` as the configuration names it."""

    role: str
    name: str
    url: str
    options: ServerOptions = ServerOptions()

    @property
    def address(self) -> ServerAddress:
        return parse_url(self.url)

    def __str__(self) -> str:
        """`the czar (host:port)`, `worker worker1 (host:port)`: what messages call it."""
        address = self.address
        who = "the czar" if self.role == CZAR else f"worker {self.name}"
        return f"{who} ({address.host}:{address.port})"

    def open(self, *, local_infile: bool = False, connect_timeout: float = CONNECT_SECONDS) -> pymysql.Connection:
        """An autocommit connection with a utf8mb4 session; the caller closes it. A server that accepts but does
        not greet (frozen, hung) is down after `connect_timeout`: pymysql reads the greeting with its read
        timeout, which no statement of ours may have (a big LOAD DATA takes long to answer)."""
        address = self.address
        try:
            conn = pymysql.connect(
                host=address.host, port=address.port, user=address.user, password=self.options.password,
                database=address.database, charset="utf8mb4", autocommit=True, local_infile=local_infile,
                connect_timeout=connect_timeout, read_timeout=connect_timeout,
                write_timeout=self.options.write_timeout, ssl_disabled=not self.options.tls,
            )  # fmt: skip
            conn._read_timeout = None  # pymysql has no public way to lift it once connected
            return conn
        except pymysql.err.MySQLError as error:
            if _code(error) == ACCESS_DENIED:
                raise self.refused(error) from error
            if is_unavailable_error(error):
                raise self.down(f"does not answer ({_describe(error)})") from error
            raise

    @contextmanager
    def connect(self, *, local_infile: bool = False, reuse: bool = False) -> Iterator[pymysql.Connection]:
        """Open, yield and close a connection; a connection lost inside the block is this server down.

        `reuse`: take an idle connection of an earlier block and leave this one idle after a block that raised
        nothing (a load opened several per file), for callers that leave no session state another relies on
        (`group_concat_max_len`: whoever needs it sets it)."""
        conn = (_IDLE.take(self, local_infile) if reuse else None) or self.open(local_infile=local_infile)
        clean = False
        try:
            yield conn
            clean = True
        except (pymysql.err.MySQLError, OSError) as error:
            if is_unavailable_error(error):
                raise self.down(f"went away ({_describe(error)})") from error
            if is_disk_full_error(error):
                raise self.out_of_space(error) from error
            raise
        finally:
            if not (clean and reuse and _IDLE.keep(self, local_infile, conn)):
                close_quietly(conn)

    def down(self, what: str) -> ServerDown:
        """The problem of this server as an operator reads it: which server, what happened, what to do."""
        kind, variable = (CzarDown, "LOADER_CZAR") if self.role == CZAR else (WorkerDown, "LOADER_WORKERS")
        return kind(
            f"{self} {what}",
            f"start it (`loader-assets workers up` starts the local cluster) or correct {variable}",
            self.name,
        )

    def out_of_space(self, error: BaseException) -> ServerDown:
        """A write refused for want of disk space: the server's problem, not the file's (nothing is counted)."""
        kind = CzarDown if self.role == CZAR else WorkerDown
        return kind(f"{self} is out of disk space ({_describe(error)})",
                    f"free space on {self.name}'s disk, then load again", self.name)  # fmt: skip

    def refused(self, error: BaseException) -> ServerDown:
        kind = CzarDown if self.role == CZAR else WorkerDown
        return kind(
            f"{self} refused the login of {self.address.user} ({_describe(error)})",
            "set LOADER_WORKER_PASSWORD to that user's password (every server of the cluster shares it)",
            self.name,
        )


class IdleConnections:
    """Connections left after a clean block, by server: the handshake (and the server's new thread) of a connection
    cost a loading stream more than a small file's LOAD DATA. One is checked before reuse, so a server restarted
    meanwhile costs a new connection, not a false "went away"; none crosses a fork."""

    MAX_IDLE = 16  # kept per server and kind (LOCAL INFILE or not); more are closed
    # Kept for less than this, a plain connection is only looked at (`_closed_by_server`), not pinged: it answered a
    # moment ago, so a server frozen since is as one frozen mid-statement: the stall watchdog gives up a LOAD DATA
    # or DDL on it, a statement not under it (a census, the index build) waits as it would have mid-statement.
    # A ping per file was ~4 % of a loading stream's time.
    FRESH_SECONDS = 1.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[tuple[Server, bool], list[tuple[pymysql.Connection, float]]] = {}  # with when kept
        os.register_at_fork(after_in_child=self._forget)  # a child must not share its parent's sockets

    def take(self, server: Server, local_infile: bool) -> pymysql.Connection | None:
        while (idle := self._pop(server, local_infile)) is not None:
            conn, kept_at = idle
            if self._reusable(conn, fresh=time.monotonic() - kept_at < self.FRESH_SECONDS):
                return conn
            close_quietly(conn)
        return None

    def _reusable(self, conn: pymysql.Connection, *, fresh: bool) -> bool:
        """A TLS connection is pinged (its socket's state says nothing of the records within); a plain one the
        server has not closed is reused as it is when `fresh`, pinged otherwise."""
        sock = getattr(conn, "_sock", None)  # pymysql's socket: no public accessor
        if not isinstance(sock, socket.socket):
            return False
        if isinstance(sock, ssl.SSLSocket):
            return self._answers(conn)
        return not _closed_by_server(sock) and (fresh or self._answers(conn))

    def keep(self, server: Server, local_infile: bool, conn: pymysql.Connection) -> bool:
        """Whether `conn` was kept idle (else the caller closes it)."""
        with self._lock:
            idle = self._idle.setdefault((server, local_infile), [])
            if not conn.open or len(idle) >= self.MAX_IDLE:
                return False
            idle.append((conn, time.monotonic()))
            return True

    def close_all(self) -> None:
        """Say goodbye to the servers (a connection dropped by an exiting process is an "Aborted connection" line
        in its server's log)."""
        with self._lock:
            idle = [conn for conns in self._idle.values() for conn, _kept_at in conns]
            self._idle = {}
        for conn in idle:
            close_quietly(conn)

    def _pop(self, server: Server, local_infile: bool) -> tuple[pymysql.Connection, float] | None:
        with self._lock:
            idle = self._idle.get((server, local_infile))
            return idle.pop() if idle else None

    def _answers(self, conn: pymysql.Connection) -> bool:
        """A ping within CONNECT_SECONDS, as long as a connect may take (pymysql reads with its `_read_timeout`: no
        public way to bound one call)."""
        conn._read_timeout = CONNECT_SECONDS
        try:
            conn.ping(reconnect=False)
            return True
        except (pymysql.err.MySQLError, OSError):
            return False
        finally:
            conn._read_timeout = None  # a big LOAD DATA legitimately takes long to answer

    def _forget(self) -> None:
        self._lock, self._idle = threading.Lock(), {}


_IDLE = IdleConnections()


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether an idle connection's socket has anything to read, polled without waiting (whatever the socket's
    own timeout): an idle server says nothing, so anything is its end (a restart or a KILL closed it, or
    wait_timeout sent its error first)."""
    poller = select.poll()  # not select.select: it fails on descriptors beyond 1023
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def close_idle_connections() -> None:
    """Close every idle connection of this process (run at its exit)."""
    _IDLE.close_all()


atexit.register(close_idle_connections)


def parse_url(url: str) -> ServerAddress:
    """Split a `mysql+pymysql://user@host:port[/db]` URL; a password in it is refused (environment only)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("mysql"):
        raise BadInput(f"{url!r} is not a MySQL/MariaDB URL", "write it as mysql+pymysql://user@host:port")
    if parts.password is not None:
        raise BadInput(f"URL {redact(url)} carries a password", "put it in LOADER_WORKER_PASSWORD instead")
    database = parts.path.lstrip("/") or None
    return ServerAddress(parts.username or "root", parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT, database)


def redact(url: str) -> str:
    """The URL without any password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _code(error: BaseException) -> int | None:
    return error.args[0] if error.args and isinstance(error.args[0], int) else None


def is_unavailable_error(error: BaseException) -> bool:
    """True when the error means the server is down or the connection broke, not a bad statement."""
    if isinstance(error, ServerDown | pymysql.err.InterfaceError | ConnectionError | TimeoutError):
        return True
    return isinstance(error, pymysql.err.OperationalError) and _code(error) in _UNAVAILABLE_CODES


def is_disk_full_error(error: BaseException) -> bool:
    """True when the server could not write for want of disk space (the statement itself is sound)."""
    if not isinstance(error, pymysql.err.MySQLError):
        return False
    text = str(error)
    return _code(error) in _DISK_FULL_CODES or "Errcode: 28" in text or "No space left on device" in text


def is_servers_fault(error: BaseException) -> bool:
    """The server went away or has no disk space: nothing wrong with the statement or its file."""
    return is_unavailable_error(error) or is_disk_full_error(error)


def _describe(error: BaseException) -> str:
    """The first informative message in the chain: pymysql raises a bare `(0, '')` after a lost link."""
    current: BaseException | None = error
    while current is not None and (not current.args or current.args[0] == 0):
        current = current.__context__
    return str(current if current is not None else error)


def close_quietly(conn: pymysql.Connection) -> None:
    with suppress(pymysql.err.MySQLError, OSError):  # already broken: nothing to tell the server
        conn.close()


def quote_name(name: str) -> str:
    """Backtick-quote an identifier (database, table, column, partition)."""
    return "`" + name.replace("`", "``") + "`"


def quote_table(database: str, table: str) -> str:
    return f"{quote_name(database)}.{quote_name(table)}"


def charset_name(charset: str) -> str:
    """A character set name checked to be a bare word, since it cannot be passed as a query parameter."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", charset):
        raise BadInput(f"invalid character set name {charset!r}", "correct the charset of the case's metadata")
    return charset

"""Connecting to one MariaDB server (czar or worker) named by a password-free URL.

URLs look like `mysql+pymysql://user@host:port`; the password comes only from `LOADER_WORKER_PASSWORD`, so
URLs can be logged, stored in `workers.json` and put in error messages without leaking anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from urllib.parse import urlsplit

import pymysql

PASSWORD_ENV = "LOADER_WORKER_PASSWORD"
TLS_ENV = "LOADER_WORKER_TLS"
# A worker shutting down cleanly can leave the client's LOAD DATA upload stuck on a zero TCP window until
# the kernel drops the orphaned socket (tcp_fin_timeout, then more): a send that makes no progress for
# this long means the worker is gone. No read timeout: finishing a big load legitimately takes long.
WRITE_TIMEOUT_ENV = "LOADER_WORKER_WRITE_TIMEOUT"
DEFAULT_WRITE_TIMEOUT = 60.0
DEFAULT_PORT = 3306

# Client-side codes (20xx) plus server codes meaning "the server is going away or went away".
_UNAVAILABLE_CODES = frozenset({2002, 2003, 2005, 2006, 2013, 2055, 1053, 1927})


class WorkerUnavailable(RuntimeError):
    """The server cannot be reached or went away mid-statement; `url` names it (never with a password)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"worker {url} is unavailable: {reason}")
        self.url, self.reason = url, reason


@dataclass(frozen=True)
class ServerAddress:
    user: str
    host: str
    port: int
    database: str | None = None


def parse_url(url: str) -> ServerAddress:
    """Split a `mysql+pymysql://user@host:port[/db]` URL; a password in it is refused (env only)."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("mysql"):
        raise ValueError(f"not a MySQL/MariaDB URL: {url!r}")
    if parts.password is not None:
        raise ValueError(f"URL {redact(url)} carries a password; put it in {PASSWORD_ENV} instead")
    database = parts.path.lstrip("/") or None
    return ServerAddress(parts.username or "root", parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORT, database)


def redact(url: str) -> str:
    """The URL without any password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def is_unavailable_error(error: BaseException) -> bool:
    """True when the error means the server is down or the connection broke, not a bad statement."""
    if isinstance(error, pymysql.err.InterfaceError | ConnectionError | TimeoutError):
        return True
    return isinstance(error, pymysql.err.OperationalError) and bool(error.args) and error.args[0] in _UNAVAILABLE_CODES


def open_connection(url: str, *, local_infile: bool = False, connect_timeout: float = 10) -> pymysql.Connection:
    """A pymysql connection in autocommit mode with a utf8mb4 session; down server -> WorkerUnavailable."""
    address = parse_url(url)
    try:
        return pymysql.connect(
            host=address.host,
            port=address.port,
            user=address.user,
            password=os.environ.get(PASSWORD_ENV, ""),
            database=address.database,
            charset="utf8mb4",
            autocommit=True,
            local_infile=local_infile,
            connect_timeout=connect_timeout,
            write_timeout=float(os.environ.get(WRITE_TIMEOUT_ENV, DEFAULT_WRITE_TIMEOUT)),
            # pymysql builds a TLS context (~30 ms) on every connect unless told not to; opt in with LOADER_WORKER_TLS=1
            ssl_disabled=os.environ.get(TLS_ENV, "0") != "1",
        )
    except pymysql.err.MySQLError as error:
        if is_unavailable_error(error):
            raise WorkerUnavailable(url, str(error)) from error
        raise


@contextmanager
def connection(url: str, *, local_infile: bool = False) -> Iterator[pymysql.Connection]:
    """Open, yield and close a connection; a connection lost inside the block becomes WorkerUnavailable."""
    conn = open_connection(url, local_infile=local_infile)
    try:
        yield conn
    except (pymysql.err.MySQLError, OSError) as error:
        if is_unavailable_error(error):
            raise WorkerUnavailable(url, _describe(error)) from error
        raise
    finally:
        _close_quietly(conn)


def _describe(error: BaseException) -> str:
    """The first informative message in the chain: pymysql raises a bare `(0, '')` after a lost link."""
    current: BaseException | None = error
    while current is not None and (not current.args or current.args[0] == 0):
        current = current.__context__
    return str(current if current is not None else error)


def _close_quietly(conn: pymysql.Connection) -> None:
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
        raise ValueError(f"invalid character set name {charset!r}")
    return charset

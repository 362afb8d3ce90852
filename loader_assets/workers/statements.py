"""Statements this process has running on the servers: what each is, where, since when. An interrupt abandons
them (a LOAD DATA of gigabytes would otherwise finish first), the stall watchdog reads how each is doing in its
server's process list and abandons the ones that wait on a full disk or a lock for too long.

Abandoning shuts this side of the statement's connection: its client call returns at once, and the server ends
the statement at its next read from the client. Not `KILL`: MariaDB 10.11 was seen to crash when a LOAD DATA
into a partitioned MyISAM table, waiting for disk space, was killed; a lost client is the path every server
takes daily. What the statement wrote lies in its attempt's partition, dropped by the next claim or the sweep.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pymysql

from loader_assets.problems import WorkerDown
from loader_assets.workers.connection import Server

# Process-list states of a statement that is waiting, not working: on a full disk, or for a lock.
DISK_FULL = "Waiting for someone to free space"  # MariaDB retries the write every 60 s once space is freed
LOCK_WAITS = ("Waiting for table metadata lock", "Waiting for table level lock")
WAITING_STATES = (DISK_FULL, *LOCK_WAITS, "Waiting for table flush", "Waiting for global read lock",
                  "Waiting for backup lock", "Locked")  # fmt: skip


@dataclass
class Running:
    """One statement in flight: its server, its connection (and that connection's id there), and what it does."""

    server: Server
    connection: pymysql.Connection = field(repr=False)
    connection_id: int
    what: str
    database: str | None = None  # where its rows go: the disk that matters is that database's directory
    started: float = field(default_factory=time.monotonic)
    abandoned_because: str | None = None  # set when this process gave it up (an interrupt, a stall)
    fix: str | None = None  # what the operator does about it, when it is theirs to do


class InFlight:
    """The statements of one load, registered while they run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}
        self._closed: str | None = None  # why every statement was given up: none starts after that

    @contextlib.contextmanager
    def running(
        self, server: Server, conn: pymysql.Connection, what: str, database: str | None = None
    ) -> Iterator[Running]:
        """Registers the statement(s) run in the block; a failure of one this process gave up (an interrupt, a
        stall) is raised as `StatementAbandoned`, carrying why."""
        entry = Running(server, conn, conn.thread_id(), what, database)
        with self._lock:
            if self._closed is not None:
                entry.abandoned_because = self._closed
                raise StatementAbandoned(entry)
            self._running[id(entry)] = entry
        try:
            yield entry
        except StatementAbandoned:
            raise
        except Exception as error:
            if entry.abandoned_because is not None:  # its connection was shut under it
                raise StatementAbandoned(entry) from error
            raise
        finally:
            with self._lock:
                self._running.pop(id(entry), None)

    def snapshot(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def abandon(self, entry: Running, why: str, fix: str | None = None) -> bool:
        """Give the statement up: this side of its connection is shut, its client call fails at once. Not once
        its block has ended (under the lock its end takes): the connection may serve another block by then.
        Whether it was given up."""
        with self._lock:
            if id(entry) not in self._running:
                return False
            entry.abandoned_because, entry.fix = why, fix
            sock = getattr(entry.connection, "_sock", None)  # pymysql keeps no public handle of its socket
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            return True

    def abandon_all(self, why: str) -> None:
        """Give up every statement in flight, and any later one before it starts."""
        with self._lock:
            self._closed = self._closed or why
        for entry in self.snapshot():
            self.abandon(entry, why)


@dataclass(frozen=True)
class Activity:
    """A statement as its server's process list shows it."""

    state: str
    seconds: float

    @property
    def waiting(self) -> bool:
        return any(self.state.startswith(waiting) for waiting in WAITING_STATES)


def activities(server: Server, connection_ids: list[int]) -> dict[int, Activity]:
    """What the server says of each of these connections' statements (a connection with none is absent)."""
    if not connection_ids:
        return {}
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT ID, COALESCE(STATE, ''), TIME_MS / 1000 FROM information_schema.PROCESSLIST "
            f"WHERE ID IN ({','.join(str(int(i)) for i in connection_ids)}) AND INFO IS NOT NULL"
        )
        return {int(i): Activity(state, float(seconds or 0)) for i, state, seconds in cursor.fetchall()}


def waiting_for_space(server: Server) -> int:
    """Statements on the server (ours, or a given-up attempt's still running there) waiting for disk space: a lock
    they hold is what a later statement waits for. (By server: a statement's DB is its connection's default,
    none for ours.)"""
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE %s", (f"{DISK_FULL}%",))
        return int(cursor.fetchone()[0])


class StatementAbandoned(WorkerDown):
    """A statement this process gave up on purpose (an interrupt, a stall): the file is not at fault."""

    def __init__(self, entry: Running) -> None:
        super().__init__(entry.abandoned_because or f"{entry.what} on {entry.server} was given up",
                         entry.fix or "nothing of it was kept; load again once the cause is gone", entry.server.name)  # fmt: skip
        self.entry = entry

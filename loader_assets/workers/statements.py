"""Statements this process has running on the servers: what each is, where, since when. An interrupt kills them
on their servers (a LOAD DATA of gigabytes would otherwise finish first); the stall watchdog reads how each is
doing in its server's process list."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pymysql

from loader_assets.problems import ServerDown, WorkerDown
from loader_assets.workers.connection import Server


@dataclass
class Running:
    """One statement in flight: its server, its connection's id there, and what it does."""

    server: Server
    connection_id: int
    what: str
    started: float = field(default_factory=time.monotonic)
    killed_because: str | None = None  # set when this process killed it (an interrupt, a stall)


class InFlight:
    """The statements of one load, registered while they run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[int, Running] = {}  # by connection id and server (see _key)

    @contextlib.contextmanager
    def running(self, server: Server, conn: pymysql.Connection, what: str) -> Iterator[Running]:
        entry = Running(server, conn.thread_id(), what)
        key = id(entry)
        with self._lock:
            self._running[key] = entry
        try:
            yield entry
        finally:
            with self._lock:
                self._running.pop(key, None)

    def snapshot(self) -> list[Running]:
        with self._lock:
            return list(self._running.values())

    def kill(self, entry: Running, why: str) -> None:
        """`KILL QUERY` on its server: the statement fails at once, its connection stays usable."""
        entry.killed_because = why
        with contextlib.suppress(ServerDown, pymysql.err.MySQLError), entry.server.connect() as conn:
            conn.cursor().execute(f"KILL QUERY {int(entry.connection_id)}")

    def kill_all(self, why: str) -> None:
        for entry in self.snapshot():
            self.kill(entry, why)


class StatementKilled(WorkerDown):
    """A statement this process killed on purpose (an interrupt, a stall): the file is not at fault."""

    def __init__(self, entry: Running) -> None:
        super().__init__(f"{entry.what} on {entry.server} was stopped: {entry.killed_because}",
                         "nothing of it was kept; load again once the cause is gone", entry.server.name)  # fmt: skip
        self.entry = entry

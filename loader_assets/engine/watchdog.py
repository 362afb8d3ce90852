"""The stall watchdog of a load: a LOAD DATA or DDL that has waited — on a full disk, for a lock — for
`LOADER_STALL_SECONDS` is diagnosed on its server (the wait its process list shows, the free space of the disk
it writes to) and abandoned with that diagnosis. Its notice goes back (not its file's fault), its worker takes no
more notices of this load, and the load ends naming the worker and the cause; heartbeats never keep a stalled
attempt alive for ever. A server whose process list does not answer for as long (frozen, hung) has its
statements given up too: their replies would never come."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from loader_assets.problems import ServerDown
from loader_assets.workers.cluster import Cluster, Room
from loader_assets.workers.connection import Server
from loader_assets.workers.statements import (
    DISK_FULL,
    LOCK_WAITS,
    Activity,
    InFlight,
    Running,
    activities,
    waiting_for_space,
)

RESUME_SECONDS = 60  # MariaDB writes again within this once a full disk has room (mysys' wait for free space)
FREED_BYTES = 16 << 20  # room beyond this on a disk a write waited on: someone freed space


class Watchdog(threading.Thread):
    def __init__(self, statements: InFlight, cluster: Cluster, stall_seconds: float) -> None:
        super().__init__(name="stall-watchdog", daemon=True)
        self.statements, self.cluster, self.stall_seconds = statements, cluster, stall_seconds
        self.period = max(0.5, min(10.0, stall_seconds / 4))  # a stall is caught within a quarter of its limit
        self._stop_event = threading.Event()
        self._silent_since: dict[Server, float] = {}  # servers whose process list did not answer, since when

    def run(self) -> None:
        while not self._stop_event.wait(self.period):
            self.check()

    def stop(self) -> None:
        self._stop_event.set()

    def check(self) -> list[Running]:
        """Abandon what has waited too long; returns those abandoned now."""
        by_server: dict[Server, list[Running]] = defaultdict(list)
        for entry in self.statements.snapshot():
            if entry.abandoned_because is None:
                by_server[entry.server].append(entry)
        self._silent_since = {s: t for s, t in self._silent_since.items() if s in by_server}  # silent while watched
        abandoned = []
        for server, entries in by_server.items():
            try:
                seen = activities(server, [entry.connection_id for entry in entries])
            except ServerDown as problem:  # gone: its statements' connections say so; frozen: nothing does
                abandoned += self._give_up_on_silence(server, entries, problem)
                continue
            self._silent_since.pop(server, None)
            for entry in entries:
                activity = seen.get(entry.connection_id)
                if activity is not None and activity.waiting and activity.seconds >= self.stall_seconds:
                    found = self.diagnosis(entry, activity)
                    if found is not None and self.statements.abandon(entry, *found):
                        abandoned.append(entry)
        return abandoned

    def _give_up_on_silence(self, server: Server, entries: list[Running], problem: ServerDown) -> list[Running]:
        """A server that has not answered for `stall_seconds` (frozen, hung: its statements' replies never come)
        has its statements given up, naming it."""
        since = self._silent_since.setdefault(server, time.monotonic())
        silent = time.monotonic() - since
        if silent < self.stall_seconds:
            return []
        cause = f"{problem.cause}; given up after {silent:.0f} s without an answer"
        return [entry for entry in entries if self.statements.abandon(entry, cause, problem.fix)]

    def diagnosis(self, entry: Running, activity: Activity) -> tuple[str, str] | None:
        """What happened, naming the worker and the disk (its free space when it can be known), and what to do;
        None while the wait is one that ends by itself (a lock held by a write that resumes now the disk has
        room)."""
        cause = f"{entry.server} stalled: {entry.what} waited {activity.seconds:.0f} s, '{activity.state}'"
        disk_full = activity.state.startswith(DISK_FULL)
        if not disk_full and activity.state.startswith(LOCK_WAITS):
            try:
                disk_full = waiting_for_space(entry.server) > 0
            except ServerDown:
                disk_full = False
            if disk_full:
                cause += ", behind a write waiting for disk space"
        if not disk_full:
            return cause, f"end what holds the lock on {entry.server.name}, then load again"
        room = self._room(entry)
        if room is not None and room.free > FREED_BYTES and activity.seconds < self.stall_seconds + RESUME_SECONDS:
            return None  # space was freed: the held write resumes within a minute, and the lock with it
        disk = "its disk" if room is None else f"its disk ({room.where}: {room.free / 1e6:,.1f} MB free)"
        return f"{cause}: {disk} is full", f"free space on {entry.server.name}'s disk, then load again"

    def _room(self, entry: Running) -> Room | None:
        try:
            return self.cluster.room(entry.server.name, entry.database)
        except ServerDown:
            return None

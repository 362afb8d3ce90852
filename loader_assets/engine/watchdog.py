"""The stall watchdog of a load: a LOAD DATA or DDL that has waited — on a full disk, for a lock — for
`LOADER_STALL_SECONDS` is diagnosed on its server (the wait its process list shows, the free space of the disk
it writes to) and abandoned with that diagnosis. Its notice goes back (not its file's fault), its worker takes no
more notices of this load, and the load ends naming the worker and the cause; heartbeats never keep a stalled
attempt alive for ever."""

from __future__ import annotations

import threading
from collections import defaultdict

from loader_assets.problems import ServerDown
from loader_assets.workers.cluster import Cluster
from loader_assets.workers.connection import Server
from loader_assets.workers.statements import Activity, InFlight, Running, activities

DISK_FULL = "Waiting for someone to free space"


class Watchdog(threading.Thread):
    def __init__(self, statements: InFlight, cluster: Cluster, stall_seconds: float) -> None:
        super().__init__(name="stall-watchdog", daemon=True)
        self.statements, self.cluster, self.stall_seconds = statements, cluster, stall_seconds
        self.period = max(0.5, min(10.0, stall_seconds / 4))  # a stall is caught within a quarter of its limit
        self._stop_event = threading.Event()

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
        abandoned = []
        for server, entries in by_server.items():
            try:
                seen = activities(server, [entry.connection_id for entry in entries])
            except ServerDown:
                continue  # the statements' own connections say so
            for entry in entries:
                activity = seen.get(entry.connection_id)
                if activity is not None and activity.waiting and activity.seconds >= self.stall_seconds:
                    why, fix = self.diagnosis(entry, activity)
                    self.statements.abandon(entry, why, fix)
                    abandoned.append(entry)
        return abandoned

    def diagnosis(self, entry: Running, activity: Activity) -> tuple[str, str]:
        """What happened, naming the worker and the disk (its free space when it can be known), and what to do."""
        cause = f"{entry.server} stalled: {entry.what} waited {activity.seconds:.0f} s, '{activity.state}'"
        if not activity.state.startswith(DISK_FULL):
            return cause, f"end what holds the lock on {entry.server.name}, then load again"
        try:
            room = self.cluster.room(entry.server.name, entry.database)
        except ServerDown:
            room = None
        disk = "its disk" if room is None else f"its disk ({room.where}: {room.free / 1e6:,.1f} MB free)"
        return f"{cause}: {disk} is full", f"free space on {entry.server.name}'s disk, then load again"

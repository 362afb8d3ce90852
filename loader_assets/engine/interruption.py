"""A process is interrupted once, by a signal: every load in it stops starting files, abandons its statements in
flight, and gives back what it holds; the command then ends with one line and exit 130/143.

Signals are the process's, so this is the one process-wide state of the engine: the CLI's handler calls
`INTERRUPTION.interrupt(signum)`, loads register their statements while they run.
"""

from __future__ import annotations

import signal
import threading

from loader_assets.problems import Interrupted
from loader_assets.workers.statements import InFlight


class Interruption:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._lock = threading.Lock()
        self._loads: list[InFlight] = []

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    def interrupt(self, signum: int | None) -> None:
        """Stop every load of this process (first signal wins; called from a signal handler or a test; None: a
        signal that reached the process through someone else's handler, its number unknown)."""
        with self._lock:
            if self.signum is None:
                self.signum = signum
            self.event.set()
            loads = list(self._loads)
        for statements in loads:
            statements.abandon_all(f"interrupted by {self.name}")

    def register(self, statements: InFlight) -> None:
        with self._lock:
            self._loads.append(statements)
        if self.is_set:  # it came while the load was starting
            statements.abandon_all(f"interrupted by {self.name}")

    def unregister(self, statements: InFlight) -> None:
        with self._lock:
            if statements in self._loads:
                self._loads.remove(statements)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a signal"

    def problem(self, done: str) -> Interrupted:
        """The one line of a command this interrupt stopped; `done` says what was released."""
        return Interrupted(self.signum or signal.SIGINT, f"interrupted by {self.name}: {done}",
                           "run the command again to go on")  # fmt: skip

    def reset(self) -> None:
        """For tests running several commands in one process."""
        with self._lock:
            self.event.clear()
            self.signum = None


INTERRUPTION = Interruption()

"""A command's start-up: Dagster, pandas and SQLAlchemy make about a million objects while they are imported, and
each full sweep of Python's cyclic garbage collector walks all of them again. Measured on `loader-assets load`
(benchmarks/end_to_end.py): 1.1 CPU-s of its start-up went to such sweeps, 0.5 of `register`'s.

So the command line imports with the collector paused, then freezes what the imports made (module objects live as
long as the process: no later sweep walks them again). A notebook or a test process only pauses it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FREEZE = False  # set by the command line's entry point: its process keeps what it imported until it ends


@contextmanager
def importing() -> Iterator[None]:
    """Imports (and the definitions they build) with the cyclic garbage collector paused."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if FREEZE:
            gc.freeze()
        if enabled:
            gc.enable()


def main() -> int:
    """The `loader-assets` console script."""
    global FREEZE
    FREEZE = True
    with importing():
        from loader_assets.cli import main as run

    return run()

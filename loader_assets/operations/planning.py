"""Sizing a load before starting it: a registered case's predicted wall time per phase on N workers."""

from __future__ import annotations

from pathlib import Path

from loader_assets import capacity
from loader_assets.engine.sizing import case_sizes
from loader_assets.operations.cases import known_case
from loader_assets.operations.context import Context
from loader_assets.problems import BadInput
from loader_assets.workers.cluster import ClusterConfig


def plan(ctx: Context, case: str, workers: list[int] | None = None, rates: Path | None = None) -> list[str]:
    """The report's lines: per phase and worker count, the predicted time, catalog and instance sizes."""
    known_case(ctx, case)
    if workers is not None and any(count < 1 for count in workers):
        raise BadInput(f"worker counts {workers} include one below 1", "ask for 1 worker or more")
    counts = workers or [len(ClusterConfig.of(ctx.settings).workers)]
    return capacity.report(case, case_sizes(ctx.store, case), _rates(rates), counts)


def _rates(path: Path | None) -> capacity.Rates:
    try:
        return capacity.Rates.load(path)
    except (OSError, ValueError, TypeError, KeyError) as error:  # unreadable, not JSON, not the rates' shape
        raise BadInput(
            f"rates file {path}: {type(error).__name__}: {error}",
            "give a file that `benchmarks/capacity.py calibrate --save` wrote, or none for the shipped rates",
        ) from error

"""Capacity: fit the rates of `loader-assets plan` on a calibration case, check them on another, size DP0.2.

    .venv/bin/python benchmarks/capacity.py calibrate [--chunks 120] [--rows-per-chunk 4000] [--columns 40]
                                                      [--workers 2] [--repeat 1] [--register-chunks 20000] [--save]
    .venv/bin/python benchmarks/capacity.py check [--chunks 60] [--rows-per-chunk 10000] [--workers 2]
    .venv/bin/python benchmarks/capacity.py dp02 [--object-gb 1000] [--source-gb 3000] [--object-row-bytes 4000]
                                                 [--source-row-bytes 500] [--workers 5 10 30]

calibrate: `register` + `load` (timed per phase, as benchmarks/end_to_end.py does) of four sample cases on a
fresh local cluster and SQLite catalog each — a quarter of --chunks with one row per chunk, --chunks with one
row, --chunks with --rows-per-chunk rows and --columns more director columns, --chunks with twice the rows and a
quarter of the columns — and a case of --register-chunks one-row chunks only registered (registration's cost per
notice), then fits each phase's fixed, per-notice, per-MB and per-row cost (`capacity.fit`) and
measures the catalog's and instance's bytes per notice (of the last case); --save stores them in
`loader_assets/capacity_rates.json` (what `plan` reads). check: the sample case of end_to_end.py (another row
width) registered and loaded, each phase against `loader-assets plan`'s prediction; the last line is the total's
error. dp02: the prediction for a DP0.2-shaped case (146,332 chunks; Object chunk and overlap files, one Source
file per chunk) of the given sizes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # end_to_end beside it, however this script is started

from end_to_end import CASE, PlatformRun, Site, registered_at, run_platform, stop_servers_when_terminated

from loader_assets import capacity, levels
from loader_assets.catalog.store import Store
from loader_assets.engine.sizing import case_sizes
from loader_assets.qserv.geometry import Chunker
from loader_assets.qserv.sample import NUM_STRIPES, NUM_SUB_STRIPES, OVERLAP, write_sample_case

GOAL_ERROR = 0.20  # the goal for the 3.5 GB case


def measure(root: Path, workers: int, *, chunks: int, rows: int, columns: int = 0) -> tuple[dict, PlatformRun, Site]:
    """One sample case registered and loaded on a fresh site: (its sizes by level, the run, the stopped site)."""
    case_dir = write_sample_case(root / CASE, chunks=chunks, rows_per_chunk=rows, database=CASE,
                                 director_columns=columns)  # fmt: skip
    site = Site(root / "site", workers)
    try:
        run = run_platform(site, case_dir)
    finally:
        site.stop()
    return case_sizes(Store(site.catalog), CASE), run, site


def measure_register(root: Path, workers: int, chunks: int, repeat: int) -> tuple[dict, dict[str, float]]:
    """A case of `chunks` one-row chunks registered, not loaded (median of `repeat`): the load cases hold too few
    notices for registration's cost per notice to stand out of their noise; this one, tens of thousands. That
    cost grows with the case (25 µs a notice at 8,000, 60 at 80,000, ~95 at DP0.2's 439,000 in
    benchmarks/scale.py): the bigger this case, the closer to a DP0.2-sized registration. Timed as the load
    cases' registration: to the line that says it is done."""
    case_dir = write_sample_case(root / CASE, chunks=chunks, rows_per_chunk=1, database=CASE)
    runs = []
    for attempt in range(repeat):
        site = Site(root / f"site{attempt}", workers)
        try:
            site.cli("init")
            lines: list[tuple[float, str]] = []
            started = time.monotonic()
            site.cli("register", str(case_dir), lines=lines)
            runs.append(registered_at(lines) - started)
        finally:
            site.stop()
    sizes = capacity.phase_sizes(case_sizes(Store(site.catalog), CASE), workers)  # the same case each time
    seconds = statistics.median(runs)
    print(f"registration case: {chunks} chunks x 1 row, {sizes[capacity.REGISTER].notices} notices: {seconds:.2f} s")
    return sizes, {capacity.REGISTER: seconds}


def phase_seconds(run: PlatformRun) -> dict[str, float]:
    return {
        capacity.REGISTER: run.register,
        capacity.START: run.startup,
        **{capacity.phase_name(level): seconds for level, seconds in run.levels.items()},
    }


def disk_bytes(path: Path) -> int:
    """A file's size, or a directory's files' (SQLite's journals included)."""
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def calibrate(args: argparse.Namespace, root: Path) -> None:
    few, many = args.one_row_chunks or (max(1, args.chunks // 4), args.chunks)
    cases = [
        (few, 1, 0),
        (many, 1, 0),
        (args.chunks, args.rows_per_chunk, args.columns),
        (args.chunks, 2 * args.rows_per_chunk, args.columns // 4),
    ]  # two row widths: bytes apart from rows
    samples, per_notice = [], (0.0, 0.0)
    measure(root / "warm-up", args.workers, chunks=1, rows=1)  # the first run of a machine pays for its caches
    for number, (chunks, rows, columns) in enumerate(cases):
        runs = []
        for attempt in range(args.repeat):
            sizes, run, site = measure(root / f"c{number}-{attempt}", args.workers, chunks=chunks, rows=rows,
                                       columns=columns)  # fmt: skip
            runs.append(phase_seconds(run))
            notices = sum(s.notices for s in sizes.values())
            per_notice = (disk_bytes(site.state / "catalog.sqlite") / notices,
                          disk_bytes(site.home) / notices)  # fmt: skip
        seconds = {phase: statistics.median(r[phase] for r in runs) for phase in capacity.PHASES}
        samples.append((capacity.phase_sizes(sizes, args.workers), seconds))
        mb = sum(s.chunked_bytes + s.regular_bytes for s in sizes.values()) / capacity.MB
        print(f"calibration case {number + 1}: {chunks} chunks x {rows} director rows, +{columns} columns, "
              f"{mb:.0f} MB: " + ", ".join(f"{p} {s:.2f} s" for p, s in seconds.items()))  # fmt: skip
    samples.append(measure_register(root / "register", args.workers, args.register_chunks, args.repeat))
    rates = capacity.Rates(
        capacity.fit(samples), *per_notice,
        measured=f"benchmarks/capacity.py, {args.workers} local workers on this {os.cpu_count()}-core machine, "
                 f"{few} and {many} chunks x 1 row, "
                 f"{args.chunks} chunks x {args.rows_per_chunk} rows (+{args.columns} director columns) and "
                 f"x {2 * args.rows_per_chunk} (+{args.columns // 4}), {args.register_chunks} x 1 row registered, "
                 f"SQLite catalog and instance, {date.today()}",
    )  # fmt: skip
    for phase, rate in rates.phases.items():
        mb_s = f"{1 / rate.per_mb_s:7.1f} MB/s" if rate.per_mb_s else "    no MB cost"
        rows_s = f"{1 / rate.per_row_s:10,.0f} rows/s" if rate.per_row_s else "    no row cost"
        print(f"  {phase:<9} fixed {rate.fixed_s:6.2f} s   per notice {rate.per_notice_s * 1000:6.2f} ms   {mb_s}   "
              f"{rows_s}")  # fmt: skip
    print(f"  catalog {rates.catalog_bytes_per_notice:.0f} B/notice, instance {rates.instance_bytes_per_notice:.0f} "
          "B/notice")  # fmt: skip
    if args.save:
        rates.save()
        print(f"saved {capacity.RATES_FILE}")


def check(args: argparse.Namespace, root: Path) -> None:
    rates = capacity.Rates.load()
    print(f"rates: {rates.measured}")
    sizes, run, _site = measure(root / "check", args.workers, chunks=args.chunks, rows=args.rows_per_chunk)
    predicted = capacity.predict(sizes, rates, args.workers)
    measured = phase_seconds(run)
    for phase in capacity.PHASES:
        print(f"  {phase:<9} measured {measured[phase]:6.2f} s   predicted {predicted.seconds[phase]:6.2f} s")
    total = sum(measured.values())
    error = predicted.total / total - 1
    print(f"case: {args.chunks} chunks x {args.rows_per_chunk} rows, {args.workers} workers")
    print(f"total: measured {total:.2f} s, predicted {predicted.total:.2f} s, error {error:+.0%} "
          f"(goal within {GOAL_ERROR:.0%})")  # fmt: skip


def dp02(args: argparse.Namespace) -> None:
    chunks = len(Chunker(NUM_STRIPES, NUM_SUB_STRIPES, OVERLAP).all_chunks())
    gb = 1e9
    objects, sources = int(args.object_gb * gb), int(args.source_gb * gb)
    sizes = {
        levels.LOAD_DIRECTOR: capacity.LevelSize(
            2 * chunks + 1, objects, 2 * chunks, 10_000, objects // args.object_row_bytes, 10
        ),
        levels.LOAD_CHILDREN: capacity.LevelSize(chunks, sources, chunks, 0, sources // args.source_row_bytes),
    }
    print(f"DP0.2-shaped: {chunks:,} chunks, Object {args.object_gb:,.0f} GB (overlaps included) at "
          f"{args.object_row_bytes:,} B/row, Source {args.source_gb:,.0f} GB at {args.source_row_bytes:,} B/row "
          "(assumed sizes)")  # fmt: skip
    print("\n".join(capacity.report("dp02", sizes, capacity.Rates.load(), args.workers)))


def main() -> None:
    stop_servers_when_terminated()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", required=True)
    fit = actions.add_parser("calibrate")
    fit.add_argument("--chunks", type=int, default=120)
    fit.add_argument("--rows-per-chunk", type=int, default=4000)
    fit.add_argument("--columns", type=int, default=40, help="director FLOAT columns added (the 4th case: a quarter)")
    fit.add_argument("--workers", type=int, default=2)
    fit.add_argument("--repeat", type=int, default=1, help="runs per calibration case; medians fitted")
    fit.add_argument("--one-row-chunks", type=int, nargs=2, metavar=("FEW", "MANY"),
                     help="chunks of the two one-row cases (default: a quarter of --chunks, --chunks); far apart, "
                          "the per-notice costs stand out of the noise (registration's: ~0.2 ms)")  # fmt: skip
    fit.add_argument("--register-chunks", type=int, default=20_000,
                     help="one-row chunks of the case only registered, for registration's cost per notice")  # fmt: skip
    fit.add_argument("--save", action="store_true", help="store the rates for `loader-assets plan`")
    test = actions.add_parser("check")
    test.add_argument("--chunks", type=int, default=60)
    test.add_argument("--rows-per-chunk", type=int, default=10_000)
    test.add_argument("--workers", type=int, default=2)
    size = actions.add_parser("dp02")
    size.add_argument("--object-gb", type=float, default=1000)
    size.add_argument("--source-gb", type=float, default=3000)
    size.add_argument("--object-row-bytes", type=int, default=4000)
    size.add_argument("--source-row-bytes", type=int, default=500)
    size.add_argument("--workers", type=int, nargs="+", default=[5, 10, 30])
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    if args.action == "dp02":
        dp02(args)
        return
    root = Path(tempfile.mkdtemp(prefix="loader-capacity-"))
    try:
        calibrate(args, root) if args.action == "calibrate" else check(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

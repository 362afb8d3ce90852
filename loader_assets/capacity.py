"""The capacity model: a case's wall time per phase on N workers, from its registered sizes and measured rates.

Each phase of `register` + `load` costs

    fixed + notices x per_notice + MB x per_mb + rows x per_row

where MB and rows are the whole case's for `register` (one process lists and fingerprints every file) and the
busiest worker's share for a level (the workers load and check their own chunks at the same time; a regular
table goes to every worker). Notices are counted for the whole level: in process, one run's step orchestrates
them all. A validation level is sized by the chunked files it validates. Bytes and rows are apart because
LOAD DATA costs per byte, the director index and the child census per row: wide rows and narrow rows differ.
`benchmarks/capacity.py` fits the four rates per phase from loads of calibration cases of two row widths and
stores them in `capacity_rates.json` beside this module.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from loader_assets import levels

RATES_FILE = Path(__file__).with_name("capacity_rates.json")
REGISTER, START = "register", "start"  # START: the `load` process up to its first run
MB = 1e6


def phase_name(level: int) -> str:
    return f"level {level}"


PHASES = (REGISTER, START, *map(phase_name, levels.ALL))


@dataclass(frozen=True)
class LevelSize:
    """What the model needs of one load level."""

    notices: int = 0
    chunked_bytes: int = 0
    chunked_notices: int = 0
    regular_bytes: int = 0
    chunked_rows: int = 0
    regular_rows: int = 0


@dataclass(frozen=True)
class TableFiles:
    """One table's files in one load level (`engine.sizing` reads them from the catalog)."""

    level: int
    chunked: bool
    notices: int
    bytes: int
    rows: int  # estimated


def sizes_by_level(files: Iterable[TableFiles]) -> dict[int, LevelSize]:
    sizes: dict[int, LevelSize] = {}
    for part in files:
        size = sizes.get(part.level, LevelSize())
        if part.chunked:
            size = replace(size, chunked_bytes=size.chunked_bytes + part.bytes,
                           chunked_notices=size.chunked_notices + part.notices, chunked_rows=size.chunked_rows + part.rows)  # fmt: skip
        else:
            size = replace(
                size, regular_bytes=size.regular_bytes + part.bytes, regular_rows=size.regular_rows + part.rows
            )
        sizes[part.level] = replace(size, notices=size.notices + part.notices)
    return sizes


@dataclass(frozen=True)
class PhaseSize:
    notices: int
    mb: float  # the busiest worker's share (the whole case for `register`)
    rows: float = 0.0  # as mb


def phase_sizes(levels_: dict[int, LevelSize], workers: int) -> dict[str, PhaseSize]:
    """Each phase's size on `workers` workers, the chunks spread evenly."""
    sizes = {
        REGISTER: PhaseSize(
            sum(s.notices for s in levels_.values()),
            sum(s.chunked_bytes + s.regular_bytes for s in levels_.values()) / MB,
            sum(s.chunked_rows + s.regular_rows for s in levels_.values()),
        ),
        START: PhaseSize(0, 0.0),
    }
    for level, validation in zip(levels.LOAD_LEVELS, levels.VALIDATION_LEVELS, strict=True):
        size = levels_.get(level, LevelSize())
        mb, rows = size.chunked_bytes / workers + size.regular_bytes, size.chunked_rows / workers + size.regular_rows
        sizes[phase_name(level)] = PhaseSize(size.notices, mb / MB, rows)
        validated = PhaseSize(size.chunked_notices, size.chunked_bytes / workers / MB, size.chunked_rows / workers)
        sizes[phase_name(validation)] = validated
    return sizes


@dataclass(frozen=True)
class PhaseRate:
    fixed_s: float
    per_notice_s: float
    per_mb_s: float
    per_row_s: float

    def seconds(self, size: PhaseSize) -> float:
        return self.fixed_s + size.notices * self.per_notice_s + size.mb * self.per_mb_s + size.rows * self.per_row_s


@dataclass(frozen=True)
class Rates:
    phases: dict[str, PhaseRate]
    catalog_bytes_per_notice: float
    instance_bytes_per_notice: float
    measured: str  # how, where and when

    @classmethod
    def load(cls, path: Path | None = None) -> Rates:
        """The rates of a file `save` wrote; ValueError when it holds something else (OSError: unreadable)."""
        data = json.loads((path or RATES_FILE).read_text())
        try:
            phases = {name: PhaseRate(**{term: float(value) for term, value in rate.items()})
                      for name, rate in data.pop("phases").items()}  # fmt: skip
            sizes = {name: float(data.pop(name)) for name in ("catalog_bytes_per_notice", "instance_bytes_per_notice")}
            rates = cls(phases=phases, **sizes, **data)
        except (AttributeError, KeyError, TypeError) as error:
            raise ValueError(f"not rates ({type(error).__name__}: {error})") from error
        if set(phases) != set(PHASES):
            raise ValueError(f"rates of phases {sorted(phases)}, not of {list(PHASES)}")
        return rates

    def save(self, path: Path | None = None) -> None:
        (path or RATES_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


# The terms each phase can have (fixed, notices, MB, rows): registration stats files and writes rows of the
# catalog, it never reads a file; the `load` process starts the same whatever the case.
TERMS = {REGISTER: (0, 1), START: (0,)}
ALL_TERMS = (0, 1, 2, 3)


def fit(samples: Sequence[tuple[dict[str, PhaseSize], dict[str, float]]]) -> dict[str, PhaseRate]:
    """Each phase's rates from measured runs (their sizes and seconds), by non-negative least squares; a run
    that timed only some phases (e.g. a `register` alone) counts for those."""
    rates = {}
    for phase in PHASES:
        timed = [(sizes[phase], seconds[phase]) for sizes, seconds in samples if phase in seconds]
        if not timed:
            raise ValueError(f"no run timed phase {phase!r}: its rates cannot be fitted")
        design = np.array([[1.0, size.notices, size.mb, size.rows / 1e6] for size, _ in timed])
        design[:, [t for t in ALL_TERMS if t not in TERMS.get(phase, ALL_TERMS)]] = 0.0
        measured = np.array([seconds for _, seconds in timed])
        fixed, per_notice, per_mb, per_million_rows = _non_negative_lstsq(design, measured)
        rates[phase] = PhaseRate(fixed, per_notice, per_mb, per_million_rows / 1e6)
    return rates


def _non_negative_lstsq(design: np.ndarray, measured: np.ndarray) -> list[float]:
    """Least squares with every coefficient >= 0: the best over the subsets of free coefficients (four here)."""
    columns = range(design.shape[1])
    best: tuple[float, list[float]] = (float("inf"), [0.0] * design.shape[1])
    for count in range(1, design.shape[1] + 1):
        for free in itertools.combinations(columns, count):
            solution, *_ = np.linalg.lstsq(design[:, free], measured, rcond=None)
            if (solution < 0).any():
                continue
            coefficients = [0.0] * design.shape[1]
            for column, value in zip(free, solution, strict=True):
                coefficients[column] = float(value)
            residual = float(np.sum((design @ np.array(coefficients) - measured) ** 2))
            best = min(best, (residual, coefficients))
    return best[1]


@dataclass(frozen=True)
class Prediction:
    workers: int
    seconds: dict[str, float]
    catalog_bytes: float
    instance_bytes: float

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def predict(levels_: dict[int, LevelSize], rates: Rates, workers: int) -> Prediction:
    sizes = phase_sizes(levels_, workers)
    notices = sizes[REGISTER].notices
    return Prediction(
        workers,
        {phase: rates.phases[phase].seconds(sizes[phase]) for phase in PHASES},
        notices * rates.catalog_bytes_per_notice,
        notices * rates.instance_bytes_per_notice,
    )


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def report(case: str, levels_: dict[int, LevelSize], rates: Rates, workers: Iterable[int]) -> list[str]:
    """The table `loader-assets plan` prints: one column per worker count."""
    predictions = [predict(levels_, rates, n) for n in workers]
    one_worker = phase_sizes(levels_, 1)
    whole = one_worker[REGISTER]  # the whole case
    lines = [
        f"case {case}: {whole.notices:,} notices, {whole.mb:,.0f} MB, ~{whole.rows:,.0f} rows",
        f"rates: {rates.measured}",
        f"{'phase':<10}{'notices':>12}" + "".join(f"{f'{p.workers} workers':>14}" for p in predictions),
    ]
    for phase in PHASES:
        cells = "".join(f"{duration(p.seconds[phase]):>14}" for p in predictions)
        lines.append(f"{phase:<10}{one_worker[phase].notices:>12,}{cells}")
    lines.append(f"{'total':<22}" + "".join(f"{duration(p.total):>14}" for p in predictions))
    first = predictions[0]
    lines.append(f"catalog ~{_mb(first.catalog_bytes)}, Dagster instance ~{_mb(first.instance_bytes)}")
    return lines


def _mb(size: float) -> str:
    return f"{size / MB:,.1f} MB" if size < 10 * MB else f"{size / MB:,.0f} MB"

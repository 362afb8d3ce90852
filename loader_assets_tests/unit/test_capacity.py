"""The capacity model: rates fitted back from the runs they would give, sizes split across workers, the shipped
rates complete."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pytest

from loader_assets import capacity, levels
from loader_assets.capacity import LevelSize, PhaseRate, PhaseSize, Rates

DIRECTOR_MB, CHILD_MB, REGULAR_MB = 400e6, 900e6, 2e6
DIRECTOR_ROWS, CHILD_ROWS = 2_000_000, 9_000_000


def a_case(chunks: int, scale: float = 1.0, wide: float = 1.0) -> dict[int, LevelSize]:
    """A sample-shaped case: Object chunk + overlap per chunk and a regular table; a child file per chunk;
    `wide` times the bytes per row."""
    objects, children = int(DIRECTOR_ROWS * scale), int(CHILD_ROWS * scale)
    return {
        levels.LOAD_DIRECTOR: LevelSize(
            2 * chunks + 1, int(DIRECTOR_MB * scale * wide), 2 * chunks, int(REGULAR_MB), objects, 100
        ),
        levels.LOAD_CHILDREN: LevelSize(chunks, int(CHILD_MB * scale * wide), chunks, 0, children),
    }


def rates_of(rate: PhaseRate) -> Rates:
    return Rates({phase: rate for phase in capacity.PHASES}, 100.0, 1000.0, measured="by hand")


def test_each_phase_is_sized_for_the_busiest_worker_and_register_for_the_whole_case() -> None:
    sizes = capacity.phase_sizes(a_case(60), workers=4)
    whole = PhaseSize(2 * 60 + 1 + 60, (DIRECTOR_MB + CHILD_MB + REGULAR_MB) / 1e6, 11_000_100)
    assert sizes[capacity.REGISTER] == whole
    assert sizes["level 1"] == PhaseSize(121, 100 + 2, 500_000 + 100)  # the regular table goes to every worker
    assert sizes["level 2"] == PhaseSize(120, 100, 500_000)  # validates the director's chunked files only
    assert sizes["level 3"] == sizes["level 4"] == PhaseSize(60, 225, 2_250_000)
    assert sizes[capacity.START] == PhaseSize(0, 0)


def test_rates_are_fitted_back_from_the_runs_they_give() -> None:
    truth = {phase: PhaseRate(1.0 + i, 0.01 * i, 0.002 * i, 1e-7 * i) for i, phase in enumerate(capacity.PHASES)}
    truth[capacity.START] = PhaseRate(2.0, 0.0, 0.0, 0.0)  # no notices, no bytes: only its fixed cost is seen
    samples = []
    for chunks, scale, wide in [(30, 0.0, 1.0), (120, 0.0, 1.0), (120, 1.0, 1.0), (120, 1.0, 3.0)]:
        sizes = capacity.phase_sizes(a_case(chunks, scale, wide), workers=2)
        samples.append((sizes, {phase: truth[phase].seconds(sizes[phase]) for phase in capacity.PHASES}))
    fitted = capacity.fit(samples)
    for phase in capacity.PHASES:
        assert astuple(fitted[phase]) == pytest.approx(astuple(truth[phase]), abs=1e-9), phase


def test_a_run_that_timed_registration_alone_sets_its_cost_per_notice() -> None:
    """The load cases hold too few notices for registration's 0.1 ms each to stand out of their noise: a case of
    many one-row notices, registered and not loaded, does."""
    loads = [capacity.phase_sizes(a_case(chunks), workers=2) for chunks in (30, 120)]
    samples = [(sizes, dict.fromkeys(capacity.PHASES, 1.5)) for sizes in loads]  # as noisy as the runs: flat
    many = capacity.phase_sizes(a_case(5000), workers=2)
    samples.append((many, {capacity.REGISTER: 1.5 + 1e-4 * many[capacity.REGISTER].notices}))
    fitted = capacity.fit(samples)
    register = fitted[capacity.REGISTER]
    assert register.per_notice_s == pytest.approx(1e-4, rel=0.05) and register.fixed_s == pytest.approx(1.5, rel=0.05)
    assert [fitted["level 1"].seconds(sizes["level 1"]) for sizes in loads] == pytest.approx([1.5, 1.5]), (
        "the other phases fit the runs that timed them"
    )


def test_no_rate_is_fitted_negative() -> None:
    """A phase that got faster with more bytes (noise) costs nothing per MB, not less than nothing."""
    sizes = [capacity.phase_sizes(a_case(chunks, scale), workers=2) for chunks, scale in [(30, 0.0), (120, 1.0)]]
    samples = [(sizes[0], dict.fromkeys(capacity.PHASES, 5.0)), (sizes[1], dict.fromkeys(capacity.PHASES, 4.0))]
    for rate in capacity.fit(samples).values():
        assert min(rate.fixed_s, rate.per_notice_s, rate.per_mb_s, rate.per_row_s) >= 0
        assert rate.fixed_s == pytest.approx(4.5)


def test_more_workers_shorten_the_levels_not_registration() -> None:
    rates = rates_of(PhaseRate(1.0, 0.0, 0.01, 0.0))
    one, ten = (capacity.predict(a_case(60), rates, workers) for workers in (1, 10))
    assert one.seconds[capacity.REGISTER] == ten.seconds[capacity.REGISTER]
    assert ten.seconds["level 3"] == pytest.approx(1.0 + (one.seconds["level 3"] - 1.0) / 10)
    assert one.catalog_bytes == 181 * 100.0 and one.instance_bytes == 181 * 1000.0


def test_rates_survive_their_file_and_the_shipped_ones_cover_every_phase(tmp_path: Path) -> None:
    rates = rates_of(PhaseRate(1.5, 0.002, 0.03, 1e-6))
    rates.save(tmp_path / "rates.json")
    assert Rates.load(tmp_path / "rates.json") == rates
    shipped = Rates.load()
    assert set(shipped.phases) == set(capacity.PHASES) and shipped.measured.startswith("benchmarks/capacity.py")


def test_durations_read_in_the_unit_an_operator_thinks_in() -> None:
    assert [capacity.duration(s) for s in (14.25, 600, 48 * 3600)] == ["14.2 s", "10 min", "48.0 h"]

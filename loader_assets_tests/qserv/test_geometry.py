"""Qserv chunk geometry: ids, bounds, poles and RA wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

from loader_assets.qserv.geometry import Chunker

LAYOUTS = [(340, 3, 0.01667), (85, 12, 0.01667), (18, 100, 0.01)]


@pytest.fixture(scope="module", params=LAYOUTS, ids=lambda layout: f"{layout[0]}x{layout[1]}")
def chunker(request: pytest.FixtureRequest) -> Chunker:
    return Chunker(*request.param)


def random_sky(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 360.0, n), np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))


def test_matches_reference_ids_of_lsst_sphgeom() -> None:
    # Expected values checked against lsst.sphgeom's Chunker (getAllChunks, getSubChunksIntersecting).
    ra = [0.0, 55.7, 359.9999, 180.0, 12.345, 201.3]
    dec = [0.0, -31.2, 45.0, -89.99, 89.5, 3.3]
    dc2 = Chunker(340, 3, 0.01667)
    assert len(dc2.all_chunks()) == 146332
    chunks, sub_chunks = dc2.locate(ra, dec)
    assert chunks.tolist() == [114920, 75569, 173875, 0, 230520, 120059]
    assert sub_chunks.tolist() == [24, 2, 2, 0, 0, 0]
    case01 = Chunker(85, 12, 0.01667)
    assert len(case01.all_chunks()) == 8983
    chunks, sub_chunks = case01.locate(ra, dec)
    assert chunks.tolist() == [7140, 4611, 10828, 0, 14280, 7574]
    assert sub_chunks.tolist() == [345, 632, 632, 0, 621, 5]


def test_ids_are_valid_chunks_and_sub_chunks(chunker: Chunker) -> None:
    chunks, sub_chunks = chunker.locate(*random_sky(20_000))
    assert np.isin(chunks, chunker.all_chunks()).all()
    for chunk in np.unique(chunks)[:200]:
        assert np.isin(sub_chunks[chunks == chunk], chunker.sub_chunks(chunk)).all()


def test_points_inside_chunk_bounds_map_back_to_the_chunk(chunker: Chunker) -> None:
    rng = np.random.default_rng(1)
    all_chunks = chunker.all_chunks()
    for chunk in [all_chunks[0], all_chunks[-1], *rng.choice(all_chunks, 50)]:
        ra_min, ra_max, dec_min, dec_max = chunker.chunk_bounds(chunk)
        assert 0.0 <= ra_min < ra_max <= 360.0 and -90.0 <= dec_min < dec_max <= 90.0
        ra = rng.uniform(ra_min, ra_max, 500) * (1 - 1e-12)
        dec = rng.uniform(dec_min + 1e-9, dec_max - 1e-9, 500)
        assert (chunker.locate(ra, dec)[0] == chunk).all()


def test_poles_fall_in_the_single_chunk_of_the_polar_stripes(chunker: Chunker) -> None:
    last_stripe_first_chunk = (chunker.num_stripes - 1) * 2 * chunker.num_stripes
    ra = np.array([0.0, 90.0, 359.0])
    assert chunker.locate(ra, np.full(3, -90.0))[0].tolist() == [0, 0, 0]
    assert chunker.locate(ra, np.full(3, 90.0))[0].tolist() == [last_stripe_first_chunk] * 3
    assert chunker.chunk_bounds(0) == (0.0, 360.0, -90.0, pytest.approx(-90.0 + chunker.stripe_height))


def test_ra_wraps_around_360(chunker: Chunker) -> None:
    dec = np.array([-45.0, 0.5, 60.0])
    at_zero = chunker.locate(np.zeros(3), dec)
    for same in (np.full(3, 360.0), np.full(3, 720.0), np.full(3, -360.0)):
        assert all(np.array_equal(a, b) for a, b in zip(chunker.locate(same, dec), at_zero, strict=True))
    assert np.array_equal(chunker.locate([-10.0], [5.0])[0], chunker.locate([350.0], [5.0])[0])


def test_locate_is_vectorised_and_deterministic(chunker: Chunker) -> None:
    ra, dec = random_sky(1000, seed=7)
    chunks, sub_chunks = chunker.locate(ra, dec)
    assert chunks.shape == sub_chunks.shape == (1000,)
    assert [chunker.locate([r], [d])[0][0] for r, d in zip(ra[:20], dec[:20], strict=True)] == chunks[:20].tolist()


def test_refuses_what_qserv_refuses() -> None:
    with pytest.raises(ValueError, match="declinations must lie in"):
        Chunker(340, 3).locate([0.0, 1.0], [0.0, float("nan")])
    with pytest.raises(ValueError, match="declinations must lie in"):
        Chunker(340, 3).locate([0.0], [90.5])
    with pytest.raises(ValueError, match="is not a chunk id"):
        Chunker(340, 3).chunk_bounds(1)  # stripe 0 holds only chunk 0
    with pytest.raises(ValueError, match="greater than the sub-stripe height"):
        Chunker(340, 3, overlap=1.0)
    with pytest.raises(ValueError, match="must be positive"):
        Chunker(0, 3)

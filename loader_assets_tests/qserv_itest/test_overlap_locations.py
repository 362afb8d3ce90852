"""`Chunker.overlap_locations` on hand-picked positions (no data needed); case01's real rows check it against the
overlaps Qserv's partitioner listed (test_builders)."""

from __future__ import annotations

import numpy as np
import pytest

from loader_assets.qserv.geometry import Chunker

EPSILON = 1e-5  # degrees: well inside the overlap (0.01667), well outside rounding


@pytest.fixture(scope="module")
def chunker() -> Chunker:
    return Chunker(85, 12, 0.01667)


def location(chunker: Chunker, ra: float, dec: float) -> tuple[int, int]:
    chunks, sub_chunks = chunker.locate([ra], [dec])
    return int(chunks[0]), int(sub_chunks[0])


def test_a_position_far_from_edges_is_in_no_overlap(chunker: Chunker) -> None:
    ra_min, ra_max, dec_min, _ = chunker.chunk_bounds(7140)
    dec = dec_min + chunker.sub_stripe_height / 2
    ra = np.linspace(ra_min, ra_max, 10_001)
    edges = ra[1:][np.diff(chunker.locate(ra, np.full_like(ra, dec))[1]) != 0]  # sub-chunk edges inside the chunk
    assert chunker.overlap_locations((edges[0] + edges[1]) / 2, dec) == []
    assert Chunker(85, 12, 0.0).overlap_locations(ra_min + EPSILON, dec) == []


def test_a_position_near_a_chunk_edge_is_in_the_neighbour_sub_chunk_overlap(chunker: Chunker) -> None:
    ra_min, ra_max, dec_min, _ = chunker.chunk_bounds(7141)
    dec = dec_min + chunker.sub_stripe_height / 2
    assert chunker.overlap_locations(ra_min + EPSILON, dec) == [location(chunker, ra_min - EPSILON, dec)]
    assert chunker.overlap_locations(ra_max - EPSILON, dec) == [location(chunker, ra_max + EPSILON, dec)]
    assert location(chunker, ra_min - EPSILON, dec)[0] == 7140


def test_ra_wraps_around_zero(chunker: Chunker) -> None:
    ra_min, _, dec_min, _ = chunker.chunk_bounds(7140)
    dec = dec_min + chunker.sub_stripe_height / 2
    assert ra_min == 0.0
    ((chunk, sub_chunk),) = chunker.overlap_locations(EPSILON, dec)
    assert (chunk, sub_chunk) == location(chunker, 360.0 - EPSILON, dec) and chunk != 7140


def test_a_position_near_a_sub_stripe_edge_is_in_the_overlap_of_the_sub_stripe_below(chunker: Chunker) -> None:
    ra_min, ra_max, dec_min, _ = chunker.chunk_bounds(7141)
    ra = ra_min + (ra_max - ra_min) / 3
    below, above = location(chunker, ra, dec_min - EPSILON), location(chunker, ra, dec_min + EPSILON)
    locations = chunker.overlap_locations(ra, dec_min + EPSILON)
    assert below in locations and above not in locations
    assert below[0] != 7141, "the sub-stripe below is in the stripe below"
    inner = dec_min + chunker.sub_stripe_height  # between two sub-stripes of the same chunk
    assert location(chunker, ra, inner - EPSILON) in chunker.overlap_locations(ra, inner + EPSILON)
    assert location(chunker, ra, inner - EPSILON)[0] == 7141, "a sub-chunk of the row's own chunk"

"""The sky map: each chunk coloured where Qserv's geometry puts it, by its most pressing status."""

from __future__ import annotations

import numpy as np

from loader_assets import skymap
from loader_assets.qserv.geometry import Chunker

DP02 = Chunker(340, 3, 0.01667)


def test_a_chunk_takes_its_most_pressing_status() -> None:
    codes = skymap.chunk_codes([7, 7, 7, 9, 9, 11], ["done", "failed", "ready", "done", "gate-blocked", "done"])
    names = list(skymap.COLOURS)
    assert {chunk: names[code] for chunk, code in codes.items()} == {7: "failed", 9: "gate-blocked", 11: "done"}


def test_every_pixel_shows_the_status_of_the_chunk_it_falls_in() -> None:
    chunks = DP02.all_chunks()
    failed = set(chunks[::97].tolist())
    codes = {int(c): list(skymap.COLOURS).index("failed" if c in failed else "done") for c in chunks}
    picture = skymap.image(DP02, codes, width=800)
    ra, dec, inside = skymap.mollweide_grid(800)
    located, _ = DP02.locate(ra[inside], dec[inside])
    red = np.array(skymap.rgb(skymap.COLOURS["failed"]), dtype=np.uint8)
    shown_red = (picture[inside] == red).all(axis=1)
    assert (shown_red == np.isin(located, list(failed))).all()
    assert (picture[~inside] == 255).all(), "outside the sky's ellipse stays white"


def test_a_chunks_marker_sits_on_that_chunks_pixels() -> None:
    every = DP02.all_chunks()
    chunks = every[[5_000, 40_000, 73_000, 120_000, 146_000]]  # south to north (a polar cap is a pixel row)
    x, y = skymap.pixel_of(DP02, chunks, 1600)
    ra, dec, _ = skymap.mollweide_grid(1600)
    rows, columns = np.round(y).astype(int), np.round(x).astype(int)
    located, _ = DP02.locate(ra[rows, columns], dec[rows, columns])
    assert located.tolist() == chunks.tolist()

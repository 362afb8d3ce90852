"""A case on the sky: every chunk drawn where Qserv's geometry puts it, coloured by its status, in an all-sky
Mollweide projection. Readable at the 146,332 chunks of DP0.2: the picture is computed per pixel (each pixel of
the projection is located in its chunk with the vectorised `Chunker`), not per chunk polygon.

A chunk's colour is its most pressing notice's shown status (a failed file makes its chunk red whatever its other
tables say); chunks the case has no file for stay blank.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from loader_assets.qserv.geometry import Chunker

# Shown statuses from the least to the most pressing, with their colours (the overview's and `status`'s words).
COLOURS: dict[str, str] = {
    "done": "#2e7d32",
    "gate-blocked": "#90caf9",
    "ready": "#9e9e9e",
    "running": "#ffb300",
    "parked": "#6a1b9a",
    "failed": "#c62828",
}
BLANK, OUTSIDE = "#f4f4f4", "#ffffff"  # a chunk without a file of the case; outside the sky's ellipse
DPI = 100
MARKED_BELOW = 2000  # a case of fewer chunks gets a marker on each (a chunk is a pixel or two of an all-sky map)


def chunk_codes(chunks: npt.ArrayLike, statuses: list[str]) -> dict[int, int]:
    """Chunk -> index in COLOURS of its most pressing status, from (chunk, status) pairs of the case's notices."""
    order = {status: position for position, status in enumerate(COLOURS)}
    chunk_array = np.asarray(chunks, dtype=np.int64)
    codes = np.array([order[status] for status in statuses], dtype=np.int64)
    worst: dict[int, int] = {}
    if not len(chunk_array):
        return worst
    ordering = np.lexsort((codes, chunk_array))  # by chunk, then code: each chunk's last entry is its worst
    last = np.r_[chunk_array[ordering][1:] != chunk_array[ordering][:-1], True]
    for chunk, code in zip(chunk_array[ordering][last], codes[ordering][last], strict=True):
        worst[int(chunk)] = int(code)
    return worst


def mollweide_grid(width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ra, dec, inside) in degrees for each pixel of a `width` by `width/2` Mollweide image, RA growing to the left
    as on the sky (the inverse projection, closed form)."""
    height = width // 2
    x = (np.arange(width) + 0.5) / width * 4 * np.sqrt(2) - 2 * np.sqrt(2)
    y = np.sqrt(2) - (np.arange(height) + 0.5) / height * 2 * np.sqrt(2)
    xx, yy = np.meshgrid(x, y)
    inside = (xx / (2 * np.sqrt(2))) ** 2 + (yy / np.sqrt(2)) ** 2 <= 1.0
    theta = np.arcsin(np.clip(yy / np.sqrt(2), -1.0, 1.0))
    dec = np.degrees(np.arcsin(np.clip((2 * theta + np.sin(2 * theta)) / np.pi, -1.0, 1.0)))
    longitude = np.pi * xx / (2 * np.sqrt(2) * np.maximum(np.cos(theta), 1e-12))
    ra = np.mod(180.0 - np.degrees(longitude), 360.0)  # the map's centre is RA 180°, east to the left
    return ra, dec, inside & (np.abs(longitude) <= np.pi)


def pixel_of(chunker: Chunker, chunks: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where the chunks' centres fall on a `width` map (the forward projection; Newton's method for θ)."""
    bounds = np.array([chunker.chunk_bounds(int(chunk)) for chunk in chunks]).reshape(-1, 4)
    ra, dec = (bounds[:, 0] + bounds[:, 1]) / 2, (bounds[:, 2] + bounds[:, 3]) / 2
    phi, longitude = np.radians(dec), np.radians(180.0 - ra)
    theta = phi.copy()
    for _ in range(20):  # 2θ + sin 2θ = π sin φ
        step = (2 * theta + np.sin(2 * theta) - np.pi * np.sin(phi)) / (2 + 2 * np.cos(2 * theta))
        theta -= np.where(np.isfinite(step), step, 0.0)
    x = 2 * np.sqrt(2) / np.pi * longitude * np.cos(theta)
    y = np.sqrt(2) * np.sin(theta)
    height = width // 2
    return (x + 2 * np.sqrt(2)) / (4 * np.sqrt(2)) * width - 0.5, (np.sqrt(2) - y) / (2 * np.sqrt(2)) * height - 0.5


def image(chunker: Chunker, codes: Mapping[int, int], width: int = 1600) -> np.ndarray:
    """The RGB image (height, width, 3: uint8) of the chunks' codes."""
    ra, dec, inside = mollweide_grid(width)
    chunk_ids, _ = chunker.locate(ra[inside], dec[inside])
    palette = np.array([rgb(c) for c in [*COLOURS.values(), BLANK, OUTSIDE]], dtype=np.uint8)
    lookup = np.full(int(chunk_ids.max(initial=0)) + 1, len(COLOURS), dtype=np.int64)  # blank by default
    for chunk, code in codes.items():
        if 0 <= chunk < len(lookup):
            lookup[chunk] = code
    pixels = np.full(ra.shape, len(COLOURS) + 1, dtype=np.int64)  # outside by default
    pixels[inside] = lookup[chunk_ids]
    return palette[pixels]


def figure(chunker: Chunker, chunks: npt.ArrayLike, statuses: list[str], title: str, width: int = 1600):  # type: ignore[no-untyped-def]
    """A matplotlib Figure of the (chunk, shown status) pairs of a case's notices: the map, and a legend with the
    number of chunks in each status."""
    import matplotlib

    matplotlib.use("Agg", force=False)  # no screen needed; a notebook's inline backend still shows it
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    codes = chunk_codes(chunks, statuses)

    fig, ax = plt.subplots(figsize=(width / DPI, width / 2 / DPI + 1.1), dpi=DPI)  # the map at its own pixels
    fig.subplots_adjust(
        left=0.01, right=0.99, top=1 - 0.35 / (width / 2 / DPI + 1.1), bottom=0.75 / (width / 2 / DPI + 1.1)
    )
    ax.imshow(image(chunker, codes, width), interpolation="nearest")
    if 0 < len(codes) < MARKED_BELOW:
        x, y = pixel_of(chunker, np.fromiter(codes, dtype=np.int64, count=len(codes)), width)
        colours = [list(COLOURS.values())[code] for code in codes.values()]
        ax.scatter(x, y, s=16, c=colours, edgecolors="#333333", linewidths=0.4)
    ax.set_axis_off()
    counts = np.bincount(np.fromiter(codes.values(), dtype=np.int64, count=len(codes)), minlength=len(COLOURS))
    handles = [
        Patch(color=colour, label=f"{status} {counts[i]:,}") for i, (status, colour) in enumerate(COLOURS.items())
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize="small")
    ax.set_title(f"{title}: {len(codes):,} chunks", fontsize="medium")
    return fig


def png(chunker: Chunker, chunks: npt.ArrayLike, statuses: list[str], title: str, width: int = 1600) -> bytes:
    """The figure as PNG bytes (the overview asset carries a small one)."""
    import matplotlib.pyplot as plt

    fig = figure(chunker, chunks, statuses, title, width)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)

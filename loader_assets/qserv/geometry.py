"""Qserv's chunk geometry: the `Chunker` of lsst/qserv `src/partition/Chunker.cc`, vectorised with numpy.

The sky is cut into `num_stripes` declination stripes of height H = 180/num_stripes, each cut into
`num_sub_stripes` sub-stripes of height h = H/num_sub_stripes. A stripe s holds nc(s) chunks of equal RA width,
nc(s) = segments(stripe bounds, H): the most segments such that two points of the stripe whose RAs differ by one
segment are at least H apart on the sphere (1 near the poles). Sub-stripe ss holds nsc(ss) = segments(ss bounds,
h) // nc(s) sub-chunks per chunk, each 360/(nc*nsc) wide. For a position (ra, dec), as `Chunker::locate`:

    ss        = min(floor((dec + 90) / h), num_stripes*num_sub_stripes - 1);  s = ss // num_sub_stripes
    sc        = min(floor(ra / sub_chunk_width[ss]), nc(s)*nsc(ss) - 1);        c = sc // nsc(ss)
    chunkId    = s * 2*num_stripes + c
    subChunkId = (ss - s*num_sub_stripes) * max(nsc) + (sc - c*nsc(ss))

The per-stripe tables are built with `math` (the same libm as the C++ code), so ids match Qserv's bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

ARCSEC = 1.0 / 3600.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def segments(lat_min: float, lat_max: float, width: float) -> int:
    """Number of RA segments of a latitude band such that points one segment apart are >= `width` apart."""
    lat = max(abs(lat_min), abs(lat_max))
    if lat > 90.0 - ARCSEC or width >= 180.0:
        return 1
    width = max(width, ARCSEC)
    cos_width = math.cos(math.radians(width))
    sin_lat = math.sin(math.radians(lat))
    cos_lat = math.cos(math.radians(lat))
    x = cos_width - sin_lat * sin_lat
    u = cos_lat * cos_lat
    y = math.sqrt(abs(u * u - x * x))
    return math.floor(360.0 / abs(math.degrees(math.atan2(y, x))))


def max_alpha(radius: float, center_lat: float) -> float:
    """Half RA extent of a circle of `radius` centred at latitude `center_lat` (degrees); 180 near a pole."""
    if radius == 0.0:
        return 0.0
    lat = min(max(center_lat, -90.0), 90.0)
    if abs(lat) + radius > 90.0 - ARCSEC:
        return 180.0
    r, lat = math.radians(radius), math.radians(lat)
    x = math.sqrt(abs(math.cos(lat - r) * math.cos(lat + r)))
    return math.degrees(abs(math.atan(math.sin(r) / x)))


def reduce_ra(ra: npt.ArrayLike) -> FloatArray:
    """RA range-reduced to [0, 360) as Qserv's `reduceLon` does (so 360 wraps to 0)."""
    ra = np.fmod(np.asarray(ra, dtype=np.float64), 360.0)
    ra = np.where(ra < 0.0, ra + 360.0, ra)
    return np.where(ra == 360.0, 0.0, ra)


@dataclass(frozen=True)
class Chunker:
    """Chunk and sub-chunk ids of positions for one Qserv partitioning (num_stripes, num_sub_stripes, overlap)."""

    num_stripes: int
    num_sub_stripes: int  # per stripe
    overlap: float = 0.0  # degrees; only validated, as Qserv does
    _num_chunks: IntArray = field(init=False, repr=False, compare=False)  # per stripe
    _num_sub_chunks: IntArray = field(init=False, repr=False, compare=False)  # per chunk, per sub-stripe
    _sub_chunk_width: FloatArray = field(init=False, repr=False, compare=False)  # per sub-stripe
    _alpha: FloatArray = field(init=False, repr=False, compare=False)  # per sub-stripe: overlap as an RA width

    def __post_init__(self) -> None:
        self._validate_counts()
        num_chunks, num_sub_chunks, sub_chunk_width, alpha = self._build_tables()
        object.__setattr__(self, "_num_chunks", num_chunks)
        object.__setattr__(self, "_num_sub_chunks", num_sub_chunks)
        object.__setattr__(self, "_sub_chunk_width", sub_chunk_width)
        object.__setattr__(self, "_alpha", alpha)

    @property
    def stripe_height(self) -> float:
        return 180.0 / self.num_stripes

    @property
    def sub_stripe_height(self) -> float:
        return 180.0 / (self.num_stripes * self.num_sub_stripes)

    @property
    def max_sub_chunks_per_chunk(self) -> int:
        """Stride of sub-chunk ids between the sub-stripes of a chunk."""
        return int(self._num_sub_chunks.max())

    def _validate_counts(self) -> None:
        if self.num_stripes < 1 or self.num_sub_stripes < 1:
            raise ValueError("the numbers of stripes and of sub-stripes per stripe must be positive")
        if not 0.0 <= self.overlap <= 10.0:
            raise ValueError(f"overlap {self.overlap} deg is outside [0, 10]")
        if self.sub_stripe_height < self.overlap:
            raise ValueError(f"overlap {self.overlap} deg is greater than the sub-stripe height")

    def _build_tables(self) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
        """The per-stripe and per-sub-stripe tables of `Chunker::_initialize`, in the same order of operations."""
        num_chunks, num_sub_chunks, sub_chunk_width, alphas = [], [], [], []
        for stripe in range(self.num_stripes):
            nc = segments(
                stripe * self.stripe_height - 90.0, (stripe + 1) * self.stripe_height - 90.0, self.stripe_height
            )
            num_chunks.append(nc)
            for sub_stripe in range(stripe * self.num_sub_stripes, (stripe + 1) * self.num_sub_stripes):
                lat_min = sub_stripe * self.sub_stripe_height - 90.0
                lat_max = (sub_stripe + 1) * self.sub_stripe_height - 90.0
                nsc = segments(lat_min, lat_max, self.sub_stripe_height) // nc
                width = 360.0 / (nsc * nc)
                alpha = max_alpha(self.overlap, max(abs(lat_min), abs(lat_max)))
                if alpha > width:
                    raise ValueError(f"overlap {self.overlap} deg is greater than the sub-chunk width")
                num_sub_chunks.append(nsc)
                sub_chunk_width.append(width)
                alphas.append(alpha)
        return (
            np.array(num_chunks, dtype=np.int64),
            np.array(num_sub_chunks, dtype=np.int64),
            np.array(sub_chunk_width, dtype=np.float64),
            np.array(alphas, dtype=np.float64),
        )

    def locate(self, ra: npt.ArrayLike, dec: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """(chunkId, subChunkId) arrays of positions in degrees; dec must lie in [-90, 90]."""
        ra = reduce_ra(ra)
        dec = np.asarray(dec, dtype=np.float64)
        if np.any(~(np.abs(dec) <= 90.0)):  # also refuses NaN
            raise ValueError("declinations must lie in [-90, 90]")
        num_all_sub_stripes = self.num_stripes * self.num_sub_stripes
        sub_stripe = np.minimum(np.floor((dec + 90.0) / self.sub_stripe_height), num_all_sub_stripes - 1)
        sub_stripe = sub_stripe.astype(np.int64)
        stripe = sub_stripe // self.num_sub_stripes
        per_chunk = self._num_sub_chunks[sub_stripe]
        sub_chunk = np.floor(ra / self._sub_chunk_width[sub_stripe]).astype(np.int64)
        sub_chunk = np.minimum(sub_chunk, self._num_chunks[stripe] * per_chunk - 1)
        chunk = sub_chunk // per_chunk
        chunk_id = stripe * 2 * self.num_stripes + chunk
        sub_chunk_id = (sub_stripe - stripe * self.num_sub_stripes) * self.max_sub_chunks_per_chunk + (
            sub_chunk - chunk * per_chunk
        )
        return chunk_id, sub_chunk_id

    def overlap_locations(self, ra: float, dec: float) -> list[tuple[int, int]]:
        """(chunkId, subChunkId) of every sub-chunk, other than its own, whose overlap region holds the position,
        as the overlap part of `Chunker::locate(position, -1, locations)`: the partitioner writes the row, with
        these ids, to each of those chunks' overlap file (a neighbouring sub-chunk may be in the row's own chunk).
        """
        if self.overlap == 0.0:
            return []
        lon = float(reduce_ra(ra))
        num_all_sub_stripes = self.num_stripes * self.num_sub_stripes
        sub_stripe = min(math.floor((dec + 90.0) / self.sub_stripe_height), num_all_sub_stripes - 1)
        stripe = sub_stripe // self.num_sub_stripes
        width = float(self._sub_chunk_width[sub_stripe])
        num_sub_chunks = int(self._num_chunks[stripe] * self._num_sub_chunks[sub_stripe])
        sub_chunk = min(math.floor(lon / width), num_sub_chunks - 1)
        locations: list[tuple[int, int]] = []
        lat_min = max(sub_stripe * self.sub_stripe_height - 90.0, -90.0)
        lat_max = min((sub_stripe + 1) * self.sub_stripe_height - 90.0, 90.0)
        if sub_stripe > 0 and dec < lat_min + self.overlap:
            locations += self._up_down_overlap(lon, sub_stripe - 1)
        if sub_stripe < num_all_sub_stripes - 1 and dec >= lat_max - self.overlap:
            locations += self._up_down_overlap(lon, sub_stripe + 1)
        if num_sub_chunks == 1:
            return locations
        alpha = float(self._alpha[sub_stripe])
        if lon < sub_chunk * width + alpha:
            locations.append(self._sub_chunk_location(sub_stripe, (sub_chunk - 1) % num_sub_chunks))
        if lon > min((sub_chunk + 1) * width, 360.0) - alpha:
            locations.append(self._sub_chunk_location(sub_stripe, (sub_chunk + 1) % num_sub_chunks))
        return locations

    def _up_down_overlap(self, lon: float, sub_stripe: int) -> list[tuple[int, int]]:
        """Sub-chunks of `sub_stripe` whose overlap region (alpha wide in RA) holds longitude `lon`."""
        stripe = sub_stripe // self.num_sub_stripes
        num_sub_chunks = int(self._num_chunks[stripe] * self._num_sub_chunks[sub_stripe])
        width, alpha = float(self._sub_chunk_width[sub_stripe]), float(self._alpha[sub_stripe])
        first, last = math.floor((lon - alpha) / width), math.floor((lon + alpha) / width)
        first += num_sub_chunks if first < 0 else 0  # 0/360 wrap-around, as Qserv's (quirks near poles included)
        last -= num_sub_chunks if last >= num_sub_chunks else 0
        wrapped = list(range(first, num_sub_chunks)) if first > last else []
        sub_chunks = wrapped + list(range(0 if first > last else first, last + 1))
        return [self._sub_chunk_location(sub_stripe, sub_chunk) for sub_chunk in sub_chunks]

    def _sub_chunk_location(self, sub_stripe: int, sub_chunk: int) -> tuple[int, int]:
        """(chunkId, subChunkId) of sub-chunk `sub_chunk` (counted over the whole sub-stripe)."""
        stripe = sub_stripe // self.num_sub_stripes
        per_chunk = int(self._num_sub_chunks[sub_stripe])
        chunk = sub_chunk // per_chunk
        row = sub_stripe - stripe * self.num_sub_stripes
        return (
            stripe * 2 * self.num_stripes + chunk,
            row * self.max_sub_chunks_per_chunk + sub_chunk - chunk * per_chunk,
        )

    def _stripe_and_chunk(self, chunk_id: int) -> tuple[int, int]:
        stripe, chunk = divmod(int(chunk_id), 2 * self.num_stripes)
        if not (0 <= stripe < self.num_stripes and chunk < self._num_chunks[stripe]):
            raise ValueError(f"{chunk_id} is not a chunk id of {self.num_stripes} stripes")
        return stripe, chunk

    def chunk_bounds(self, chunk_id: int) -> tuple[float, float, float, float]:
        """(ra_min, ra_max, dec_min, dec_max) of a chunk in degrees, as `Chunker::getChunkBounds`."""
        stripe, chunk = self._stripe_and_chunk(chunk_id)
        width = 360.0 / int(self._num_chunks[stripe])
        # Same order of operations as Qserv: (sub-stripe index) * height.
        dec_min = max(stripe * self.num_sub_stripes * self.sub_stripe_height - 90.0, -90.0)
        dec_max = min((stripe + 1) * self.num_sub_stripes * self.sub_stripe_height - 90.0, 90.0)
        return chunk * width, min((chunk + 1) * width, 360.0), dec_min, dec_max

    def all_chunks(self) -> IntArray:
        """Every valid chunk id, ascending."""
        return np.concatenate(
            [stripe * 2 * self.num_stripes + np.arange(nc) for stripe, nc in enumerate(self._num_chunks)]
        )

    def sub_chunks(self, chunk_id: int) -> IntArray:
        """Every valid sub-chunk id of a chunk, ascending, as `Chunker::getSubChunks`."""
        stripe, _ = self._stripe_and_chunk(chunk_id)
        first = stripe * self.num_sub_stripes
        per_chunk = self._num_sub_chunks[first : first + self.num_sub_stripes]
        return np.concatenate(
            [row * self.max_sub_chunks_per_chunk + np.arange(nsc) for row, nsc in enumerate(per_chunk)]
        )

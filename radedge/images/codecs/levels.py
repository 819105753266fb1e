"""How far a frame may be reduced, and where the samples of a reduced frame sit.

Not to the model's input size itself but to a margin over it (each codec's MARGIN): the shipped
image model reacts to texture below one grey level, and the codecs' low-pass filters (JPEG 2000
wavelets, DCT scaling) are not INTER_AREA's box, so preprocessing must still shrink the frame a
little to average what they leave. DCT scaling keeps `MARGIN` (2: `python -m benchmarks.dicom
parity` moves the network by at most 0.016 at 2, 0.043 at 1); JPEG 2000 takes its own
(`jpeg2000.MARGIN`, measured by `python -m benchmarks.margins`).
"""
from __future__ import annotations

import math

MARGIN = 2


def reduced_size(n: int, factor: int) -> int:
    """Samples left of `n` after reducing by `factor` (a power of two): ceil(n / factor), as both
    openjpeg (resolution levels) and libjpeg (DCT scaling) count them."""
    return -(-n // factor)


def cover(need: tuple[int, int], margin: float | None = None) -> tuple[int, int]:
    """The smallest (rows, cols) a reduced frame may have when preprocessing resizes it to `need`
    (`margin` times it, rounded up; default `MARGIN`)."""
    margin = MARGIN if margin is None else margin
    return math.ceil(need[0] * margin), math.ceil(need[1] * margin)


def largest_factor(shape: tuple[int, int], need: tuple[int, int], limit: int) -> int:
    """The largest power of two <= `limit` that keeps both sides of `shape` at or above `need`."""
    factor = 1
    while factor * 2 <= limit and all(reduced_size(n, factor * 2) >= m for n, m in zip(shape, need)):
        factor *= 2
    return factor

"""How far a frame may be reduced, and where the samples of a reduced frame sit.

Not to the model's input size itself, but to twice it (`MARGIN`): preprocessing then still shrinks
at least 2x with INTER_AREA, which does the anti-aliasing as it does on full-size images. Measured
on the shipped image model (`python -m benchmarks.dicom parity` for the chosen levels): the final shrink at 1.1x to 1.9x
moved scores by up to 0.13 (JPEG 2000 9/7 and JPEG DCT scaling low-pass differently from a box),
at 2x and more by at most 0.025.
"""
from __future__ import annotations

MARGIN = 2


def reduced_size(n: int, factor: int) -> int:
    """Samples left of `n` after reducing by `factor` (a power of two): ceil(n / factor), as both
    openjpeg (resolution levels) and libjpeg (DCT scaling) count them."""
    return -(-n // factor)


def cover(need: tuple[int, int]) -> tuple[int, int]:
    """The smallest (rows, cols) a reduced frame may have when preprocessing resizes it to `need`."""
    return need[0] * MARGIN, need[1] * MARGIN


def largest_factor(shape: tuple[int, int], need: tuple[int, int], limit: int) -> int:
    """The largest power of two <= `limit` that keeps both sides of `shape` at or above `need`."""
    factor = 1
    while factor * 2 <= limit and all(reduced_size(n, factor * 2) >= m for n, m in zip(shape, need)):
        factor *= 2
    return factor

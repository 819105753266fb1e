"""Grey frames decoded in full (uncompressed, RLE, JPEG-LS, lossless JPEG, and any the reduced
path refused) shrunk to block means before the LUTs.

The model looks at a few hundred pixels; applying the modality LUT, VOI and MONOCHROME1 inversion
to every one of a 3,000 x 4,000 frame, then resizing it, cost more than decoding it (`python -m
benchmarks.dicom throughput`). Block means of the stored values are what DCT scaling gives at 1/8
(`jpeg`), so the frame then takes the reduced path's road: resizing over the full-resolution grid
(`origin` 0: block k covers pixels k * factor to (k + 1) * factor, the last one clipped to the
image). A linear rescale and min-max scaling commute with averaging (min-max is taken over the
full frame's `extremes`); a window clips, and a VOI LUT bends, only the blocks that straddle its
edges (`tests/test_dicom_decode.py` bounds the difference).

What does not commute is the resizing's box edges, which cut blocks (taken as uniform): the shipped
model feels that texture change, so blocks stay small against the boxes: they cover `BLOCK_MARGIN`
(4) times the resized size where DCT scaling covers 2 and JPEG 2000 levels 1.5. The network's
outputs on the corpus and full-size files scored in full against this way (`python -m
benchmarks.dicom parity`; largest difference): 0.0153 with blocks covering 2x (3 files with a label
that differs), 0.0052 at 4x (1: a full-size film whose score lies 0.003 from its threshold); at 8x
a 3,000-pixel film would no longer be reduced at all.
"""
from __future__ import annotations

import numpy as np

from .levels import cover, largest_factor, reduced_size
from .reduced import Frame

# stored types opencv's INTER_AREA averages (an exact integer factor takes its fast path, rounding
# to nearest); other types keep the full frame
AREA_TYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16))
MAX_FACTOR = 1 << 16
BLOCK_MARGIN = 4  # blocks no larger than 1/4 of the resizing's box (see the module docstring)
# fewest distinct stored values a frame spans to be averaged: the means are rounded to the stored
# type, half a step of it is then at most 1/510 of the image's range (a 1-bit or 4-bit frame keeps its pixels)
MIN_RANGE = 255


def _edge_means(strip: np.ndarray, factor: int, axis: int) -> np.ndarray:
    """Means of `strip` (the partial blocks along one edge) over all of `axis` and in blocks of
    `factor` along the other axis, the last block clipped to the strip."""
    sums = np.add.reduceat(strip.sum(axis=axis, dtype=np.int64), np.arange(0, strip.shape[1 - axis], factor))
    counts = np.minimum(factor, strip.shape[1 - axis] - np.arange(0, strip.shape[1 - axis], factor))
    return sums / (counts * strip.shape[axis])


def block_means(stored: np.ndarray, factor: int) -> np.ndarray:
    """`stored` (2-D, an AREA_TYPES type) averaged in `factor` x `factor` blocks, rounded to its type;
    ceil(n / factor) blocks per side, the last row / column of blocks over the pixels left."""
    import cv2

    rows, cols = stored.shape
    full_r, full_c = rows // factor, cols // factor
    out = np.empty((reduced_size(rows, factor), reduced_size(cols, factor)), dtype=stored.dtype)
    if full_r and full_c:
        out[:full_r, :full_c] = cv2.resize(stored[:full_r * factor, :full_c * factor], (full_c, full_r),
                                           interpolation=cv2.INTER_AREA)
    if rows % factor:
        out[full_r, :] = np.rint(_edge_means(stored[full_r * factor:, :], factor, 0))
    if cols % factor:
        out[:full_r, full_c] = np.rint(_edge_means(stored[:full_r * factor, full_c * factor:], factor, 1))
    return out


def reduce_full(stored: np.ndarray, need: tuple[int, int], how: str = "full") -> Frame:
    """A grey frame decoded in full, as block means of the largest power-of-two factor that still
    covers `need` (the shape preprocessing resizes to) `BLOCK_MARGIN` times; unchanged (factor 1)
    when no factor helps, its type is not averaged here or its values span fewer than `MIN_RANGE`
    steps. `how` says why it was decoded in full."""
    factor = largest_factor(stored.shape, cover(need, BLOCK_MARGIN), MAX_FACTOR) if stored.ndim == 2 else 1
    if factor == 1 or stored.dtype not in AREA_TYPES:
        return Frame(stored, how=how)
    import cv2

    lo, hi, _, _ = cv2.minMaxLoc(stored)
    if hi - lo < MIN_RANGE:
        return Frame(stored, how=how)
    return Frame(block_means(np.ascontiguousarray(stored), factor), factor, 0.0,
                 f"{how}, block means 1/{factor}", extremes=(lo, hi))


__all__ = ["AREA_TYPES", "BLOCK_MARGIN", "MIN_RANGE", "block_means", "reduce_full"]

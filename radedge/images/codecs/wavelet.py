"""What a JPEG 2000 low-pass sample stands for at full resolution: the irreversible (CDF 9/7)
wavelet's synthesis with the detail bands left out.

A sample of resolution level r is not a block mean: it is the 9/7 analysis low-pass, cascaded r
times, centred on full-resolution pixel k * 2**r. Taking it as a uniform block (as for DCT-scaled
JPEG) leaves a staircase that the model's input resizing then averages: on lossy codestreams,
whose quantisation already took the fine texture out, that moved the shipped model's outputs by
up to 0.05 against full decoding (`python -m benchmarks.margins --blocks`). Rebuilding the
full-resolution image as the decoder would with zero details, and averaging that, stays within
about 0.02. Reversible (5/3) codestreams keep the block reading: lossless frames keep their
texture, which the block staircase happens to stand in for better than a smooth rebuild does.
"""
from __future__ import annotations

import numpy as np

from .levels import reduced_size

# ITU-T T.800 Annex F lifting constants of the irreversible 9/7 filter
ALPHA, BETA, GAMMA = -1.586134342059924, -0.052980118572961, 0.882911075530934
# A sample's rebuilt pixels reach under 3 samples either side at any level; counting 6 (REACH), teeth
# of a comb 2 * (box + REACH) + 2 samples apart never meet in one output pixel whose box spans `box`
# samples (`combs`). SPACING, the least spacing used, covers boxes of up to 9 samples.
SYNTHESIS_REACH = 6
SPACING = 32


def _synthesize_level(low: np.ndarray, n: int) -> np.ndarray:
    """One inverse 9/7 lifting level with zero high-pass: `low` ([ceil(n / 2), k], the even
    samples) -> [n, k], with whole-sample symmetric extension at both ends (T.800 F.3.7)."""
    m, odd = low.shape[0], n // 2
    if odd == 0:  # a one-sample signal is its own synthesis (T.800 F.3.7)
        return low.copy()
    i = np.arange(odd)
    right = np.minimum(i + 1, m - 1)  # X(2i + 2), reflected at the end of an even-length signal
    high = -GAMMA * (low[i] + low[right])  # step 4 (step 3 adds nothing: the details are zero)
    before = high[np.maximum(np.arange(m) - 1, 0)]  # X(2i - 1), reflected at the start
    after = high[np.minimum(np.arange(m), odd - 1)]
    low = low - BETA * (before + after)  # step 5
    high = high - ALPHA * (low[i] + low[right])  # step 6
    out = np.empty((n,) + low.shape[1:], dtype=low.dtype)
    out[0::2], out[1::2] = low, high
    return out


def synthesize(low: np.ndarray, n: int, factor: int) -> np.ndarray:
    """Low-pass samples ([ceil(n / factor), ...]) of an n-pixel axis -> the [n, ...] pixels the
    9/7 synthesis rebuilds from them with every detail band zero, scaled so that flat stays flat."""
    sizes = [reduced_size(n, 1 << level) for level in range(factor.bit_length())]

    def rebuild(values: np.ndarray) -> np.ndarray:
        for size in reversed(sizes[:-1]):
            values = _synthesize_level(values, size)
        return values

    out, flat = rebuild(np.asarray(low, dtype=np.float64)), rebuild(np.ones(sizes[-1]))
    return out / flat.reshape((n,) + (1,) * (out.ndim - 1))


def combs(n: int, factor: int, spacing: int = SPACING) -> np.ndarray:
    """[spacing, n]: row c is the synthesis of the samples c, c + spacing, c + 2 * spacing, ...
    each 1 (the rest 0). Samples `spacing` apart rebuild pixels too far apart to overlap, so pixel
    i of row c is the weight of the one sample of that comb near i: the whole (banded) synthesis
    matrix in `spacing` one-dimensional passes instead of one per sample (not cached: the resizing
    caches the small weights it makes of them)."""
    m = reduced_size(n, factor)
    teeth = np.zeros((m, spacing))
    for c in range(spacing):
        teeth[c::spacing, c] = 1.0
    return np.ascontiguousarray(synthesize(teeth, n, factor).T)


__all__ = ["SPACING", "SYNTHESIS_REACH", "combs", "synthesize"]

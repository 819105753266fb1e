"""JPEG 2000 frames decoded at a resolution level (Pillow's `reduce`, its bundled openjpeg).

A JPEG 2000 codestream is a wavelet pyramid: resolution level r is the image at 1 / 2**r of its
size (the low-pass band, close to a local average), and decoding it skips every finer level, which
is where the time goes (a 2840 x 2972 frame: level 3 in about 20 ms, full size in about 1 s). A
low-pass sample k of level r sits on full-resolution pixel k * 2**r (the wavelet filters are centred
on even samples), not on the middle of its 2**r block as a block mean would: `ORIGIN` says so to
the resizing (`radedge.images.preprocess.resize_square`), and `kernel` what a sample stands for: a
block (reversible 5/3 codestreams) or the 9/7 synthesis of the irreversible ones (`wavelet`).
openjpeg decodes with several threads when ``OPJ_NUM_THREADS`` says so (`reduced.set_decoder_threads`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ReducedUnavailable, open_image
from .levels import largest_factor, reduced_size

MAX_LEVEL = 32  # openjpeg's limit on decomposition levels
# A level's frame covers the resized size this many times (`levels.cover`). Measured over 78 crops
# of the full-size radiographs by `python -m benchmarks.margins`: from 1.3 up, the network's outputs
# move no more than at 2 (largest difference 0.028 lossless, 0.018 lossy); below 1.15 up to 0.05 and
# 0.11. 1.5 keeps that distance from the edge and still takes a 3,000-pixel film to 1/8.
MARGIN = 1.5
COD, COC, SOT = b"\xff\x52", b"\xff\x53", b"\xff\x90"
IRREVERSIBLE = 0  # COD's wavelet transformation byte: 0 = 9/7 irreversible, 1 = 5/3 reversible


def origin(factor: int) -> float:
    """Where sample 0's block starts, in full-resolution pixels: it is centred on pixel 0."""
    return -(factor - 1) / 2


def transformation(frame: bytes) -> int | None:
    """The main header's wavelet transformation for the (one) component: IRREVERSIBLE (9/7) or 1
    (5/3), from COD, or from a COC for component 0, which overrides it (T.800 A.6.1, A.6.2); None
    when the header cannot be read (the frame is then read as blocks)."""
    start = frame.find(b"\xff\x4f\xff\x51")  # SOC, SIZ: past a JP2 wrapper's boxes
    pos, found = (start + 2 if start >= 0 else len(frame)), {}
    while pos + 4 <= len(frame) and frame[pos:pos + 2] != SOT:
        marker, length = frame[pos:pos + 2], int.from_bytes(frame[pos + 2:pos + 4], "big")
        if length < 2 or pos + 2 + length > len(frame):
            return None  # a broken or cut header
        if marker == COD and length >= 12:
            found.setdefault(COD, frame[pos + 13])
        elif marker == COC and length >= 9 and frame[pos + 4] == 0:  # Ccoc is one byte below 257 components
            found[COC] = frame[pos + 10]
        pos += 2 + length
    return found.get(COC, found.get(COD))


def kernel(frame: bytes) -> str:
    """What a reduced sample stands for (`radedge.images.preprocess`): "cdf97" for the 9/7
    filter's low-pass, "box" (a block) otherwise."""
    return "cdf97" if transformation(frame) == IRREVERSIBLE else "box"


def open_reduced(frame: bytes, level: int, shape: tuple[int, int]) -> Any:
    """The codestream opened by Pillow with `reduce = level`, sized as openjpeg decodes it.

    Pillow 13 sizes a reduced image n / 2**level rounded half up where openjpeg returns the ceiling,
    and rejects the decoded tile when the two differ ("broken data stream"; 1841 px at level 2, for
    one). Giving Pillow the size as a multiple of 2**level makes its rounding land on the ceiling;
    the caller checks the decoded shape, and any failure falls back to full decoding."""
    image = open_image(frame, "JPEG2000", shape)
    if image.mode not in ("L", "I;16"):
        raise ReducedUnavailable(f"JPEG 2000 image mode {image.mode} (not one grey component)")
    step = 1 << level
    image.reduce = level
    image._size = (reduced_size(shape[1], step) * step, reduced_size(shape[0], step) * step)
    return image


def decode(frame: bytes, shape: tuple[int, int], need: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """(sample bits, reduction factor, precision) of a one-component codestream decoded at the
    coarsest level whose size covers `need`; `shape` is the DICOM header's (Rows, Columns).

    The sample bits are the low `precision` bits of each decoded sample (two's complement for a
    signed codestream), as unsigned integers: `reduced.stored_values` gives them the dataset's
    sign. Raises ReducedUnavailable when no level helps or the codestream is not a plain grey one."""
    from pydicom.pixels.utils import get_j2k_parameters

    info = get_j2k_parameters(frame)
    if "precision" not in info:
        raise ReducedUnavailable("no JPEG 2000 SIZ header")
    precision, signed = int(info["precision"]), bool(info["is_signed"])
    if not 1 <= precision <= 16:
        raise ReducedUnavailable(f"{precision}-bit JPEG 2000 samples")
    levels = largest_factor(shape, need, 1 << MAX_LEVEL).bit_length() - 1
    for level in range(levels, 0, -1):
        image = open_reduced(frame, level, shape)
        try:
            image.load()
        except OSError:  # openjpeg refuses a level the codestream does not have: try a finer one
            continue
        factor = 1 << level
        pixels = np.asarray(image)
        if pixels.shape != (reduced_size(shape[0], factor), reduced_size(shape[1], factor)):
            raise ReducedUnavailable(f"level {level} decoded to {pixels.shape}")
        # Pillow scales samples up to its 8 / 16-bit container and offsets signed ones by half the range
        bits = pixels >> np.uint16(8 * pixels.dtype.itemsize - precision)
        if signed:
            bits ^= np.uint16(1 << (precision - 1))
        return bits, factor, precision
    raise ReducedUnavailable(f"no resolution level from {levels} down to 1 decodes" if levels else
                             "no resolution level between full size and the model's input")

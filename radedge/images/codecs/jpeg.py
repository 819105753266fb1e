"""Baseline JPEG frames decoded with DCT scaling (Pillow's `draft`, its bundled libjpeg-turbo).

libjpeg can run the inverse DCT of each 8 x 8 block at 1/2, 1/4 or 1/8 size: at 1/8 only the DC
coefficient is used, the exact block mean (so sample k covers pixels k * factor to (k + 1) * factor,
`origin` 0). Only 8-bit one-component (grey) JPEGs take this path;
colour (YBR / RGB) JPEGs are decoded in full and judged as before.
"""
from __future__ import annotations

import numpy as np

from .errors import ReducedUnavailable, open_image
from .levels import MARGIN, reduced_size


def origin(factor: int) -> float:
    """Where sample 0's block starts, in full-resolution pixels: DCT-scaled samples are block means."""
    return 0.0


def kernel(frame: bytes) -> str:
    """DCT-scaled samples are blocks (`radedge.images.preprocess`)."""
    return "box"


def decode(frame: bytes, shape: tuple[int, int], need: tuple[int, int]) -> tuple[np.ndarray, int, int]:
    """(8-bit samples, reduction factor, 8) of a grey baseline JPEG at the smallest DCT scale that
    covers `need`; `shape` is the DICOM header's (Rows, Columns). ReducedUnavailable otherwise."""
    image = open_image(frame, "JPEG", shape)
    if image.mode != "L":
        raise ReducedUnavailable(f"JPEG image mode {image.mode} (not 8-bit grey)")
    # draft picks the coarsest scale (1/8, 1/4, 1/2) that keeps the image at or above `need`
    configured = image.draft("L", (need[1], need[0]))
    factor = round(shape[1] / configured[1][2]) if configured else 1
    if factor == 1:
        raise ReducedUnavailable("no DCT scale between full size and the model's input")
    image.load()
    pixels = np.asarray(image)
    if pixels.shape != (reduced_size(shape[0], factor), reduced_size(shape[1], factor)) or \
            pixels.shape[0] < need[0] or pixels.shape[1] < need[1]:
        raise ReducedUnavailable(f"DCT scaling 1/{factor} decoded to {pixels.shape}")
    return pixels, factor, 8


__all__ = ["MARGIN", "decode", "kernel", "origin"]

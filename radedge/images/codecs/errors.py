"""Why the reduced path was not taken (never an input's error: full decoding then decides), and
the one check every codec makes on a codestream before decoding it."""
from __future__ import annotations

from io import BytesIO
from typing import Any


class ReducedUnavailable(Exception):
    """This frame cannot be decoded at reduced size (syntax, colour, codestream): decode it in full."""


class CodestreamMismatch(ReducedUnavailable):
    """The codestream's own header gives another image size than the DICOM header's Rows / Columns
    (`shape` None: one so large that Pillow refuses to open it as a decompression bomb)."""

    def __init__(self, shape: tuple[int, int] | None, header: tuple[int, int]) -> None:
        size = f"{shape[1]} x {shape[0]}" if shape else "over Pillow's decompression-bomb limit"
        super().__init__(f"codestream is {size}, DICOM header says {header[1]} x {header[0]}")
        self.shape = shape


def open_image(frame: bytes, fmt: str, shape: tuple[int, int]) -> Any:
    """Pillow's image of a codestream (header read, nothing decoded) whose size is `shape` (Rows,
    Columns), else CodestreamMismatch."""
    from PIL import Image

    try:
        image = Image.open(BytesIO(frame), formats=[fmt])
    except Image.DecompressionBombError as exc:
        raise CodestreamMismatch(None, shape) from exc
    if image.size != (shape[1], shape[0]):
        raise CodestreamMismatch((image.size[1], image.size[0]), shape)
    return image

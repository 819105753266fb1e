"""Pick the reduced-resolution decoder for a dataset's transfer syntax and give back stored values.

`decode_reduced(ds, need)` returns the frame at the smallest size the codec offers that still
covers `need` (the shape the preprocessing resizes to), with the dtype and the values pydicom's
full decoding would give before resizing: same sign rule (PixelRepresentation over the low
`precision` bits, as pydicom corrects a JPEG 2000 codestream whose signedness disagrees), same
container size (8 or 16 bits by codestream precision). The modality LUT, VOI and MONOCHROME1
inversion are then applied to the reduced array exactly as to a full one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import jpeg, jpeg2000
from .errors import CodestreamMismatch, ReducedUnavailable
from .levels import cover

# transfer syntax UID -> codec module: decode(frame, (rows, cols), cover) -> (bits, factor, precision),
# origin(factor) -> where sample 0's block starts in full-resolution pixels, kernel(frame) -> what a
# sample stands for, MARGIN -> how many times a level must cover the resized size (`levels.cover`)
DECODERS: dict[str, Any] = {
    "1.2.840.10008.1.2.4.90": jpeg2000,  # JPEG 2000 Lossless Only
    "1.2.840.10008.1.2.4.91": jpeg2000,  # JPEG 2000
    "1.2.840.10008.1.2.4.50": jpeg,      # JPEG Baseline (Process 1)
}
THREADS_VARIABLE = "OPJ_NUM_THREADS"  # openjpeg reads it when it creates a decoder


@dataclass(frozen=True)
class Frame:
    """Stored pixel values decoded at 1 / `factor` of the frame's size per side (rounded up):
    sample k stands for full-resolution pixels origin + k * factor to origin + (k + 1) * factor
    (`kernel` "box"), or is the JPEG 2000 9/7 low-pass centred on pixel k * factor ("cdf97",
    `wavelet`)."""

    stored: np.ndarray
    factor: int = 1
    origin: float = 0.0
    how: str = "full"
    # the full-resolution frame's smallest and largest stored values, when known (`blocks`):
    # min-max scaling is over the image's own values, which averaging narrows
    extremes: tuple[float, float] | None = None
    kernel: str = "box"


def stored_values(bits: np.ndarray, precision: int, signed: bool) -> np.ndarray:
    """The low `precision` bits of each sample as pydicom reads them: an unsigned or a two's
    complement integer (PixelRepresentation) in an 8- or 16-bit container chosen by precision."""
    container = 8 if precision <= 8 else 16
    values = np.ascontiguousarray(bits, dtype=f"u{container // 8}")
    if not signed:
        return values
    shift = container - precision
    values = values.view(f"i{container // 8}")
    return (values << shift) >> shift if shift else values  # sign-extend from bit precision - 1


def single_frame(ds: Any) -> bytes:
    """The encapsulated codestream of a one-frame dataset, its fragments joined."""
    from pydicom.encaps import generate_frames

    if not getattr(ds["PixelData"], "is_undefined_length", False):
        raise ReducedUnavailable("pixel data is not encapsulated")
    frames = generate_frames(ds.PixelData, number_of_frames=1)
    frame = next(frames, None)
    if frame is None or next(frames, None) is not None:
        raise ReducedUnavailable("encapsulated pixel data does not hold exactly one frame")
    return frame


def decode_reduced(ds: Any, need: tuple[int, int]) -> Frame:
    """Decode a one-frame grey dataset to which preprocessing resizes to `need` (rows, cols), at the
    smallest size that covers it `codec.MARGIN` times; ReducedUnavailable (CodestreamMismatch when
    the codestream's size disagrees with Rows / Columns) when the transfer syntax, the image or the
    codestream does not allow it."""
    ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
    if ts not in DECODERS:
        raise ReducedUnavailable(f"transfer syntax {ts or '(none)'} is decoded in full")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ReducedUnavailable(f"{photometric or 'unknown'} image (only grey frames are reduced)")
    codec = DECODERS[ts]
    frame = single_frame(ds)
    bits, factor, precision = codec.decode(frame, (int(ds.Rows), int(ds.Columns)), cover(need, codec.MARGIN))
    kernel = codec.kernel(frame)
    return Frame(stored_values(bits, precision, bool(ds.get("PixelRepresentation", 0))), factor,
                 codec.origin(factor), f"{codec.__name__.rsplit('.', 1)[-1]} 1/{factor}", kernel=kernel)


def set_decoder_threads(threads: int) -> None:
    """Let openjpeg decode with `threads` threads in this process (its ``OPJ_NUM_THREADS``), unless
    the user set the variable; call it once per worker with cores // workers, so that worker
    processes times decoder threads never exceed the cores. libjpeg has no threads."""
    os.environ.setdefault(THREADS_VARIABLE, str(max(1, int(threads))))


__all__ = ["CodestreamMismatch", "DECODERS", "Frame", "ReducedUnavailable", "decode_reduced",
           "set_decoder_threads", "single_frame", "stored_values"]

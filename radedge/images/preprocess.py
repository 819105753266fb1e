"""Image preprocessing shared by training (export/) and serving (radedge/): a model is served
exactly as it was trained, because both sides call `preprocess` with the manifest's spec.

Input convention: a 2-D float32 image in [0, 1] in *display orientation* (higher = brighter, i.e.
MONOCHROME1 already inverted, LUTs already applied). `radedge.images.dicom` produces that from DICOM
files and `load_image` from PNG / JPEG files.

The manifest's ``preprocess`` dict (the *spec*) has these keys:

``size`` (int)
    Output height and width in pixels (square).
``resize`` ("letterbox" | "stretch", default "letterbox")
    letterbox: scale the longer side to ``size`` keeping the aspect ratio, centre the image and pad
    the rest with 0 (black, the background of a radiograph); stretch: resize both axes to ``size``.
    opencv INTER_AREA when shrinking (no aliasing), INTER_LINEAR when enlarging.
``channels`` (1 | 3, default 3)
    The grey image repeated on this many channels (3 for ImageNet-pretrained backbones).
``mean``, ``std`` (lists of 1 or ``channels`` floats, default [0.0] / [1.0])
    Normalisation after resizing: ``(x - mean[c]) / std[c]`` per channel, on the [0, 1] scale.
``voi`` (bool, default False)
    Read by the DICOM reader, not here: True applies the file's VOI (window centre / width or VOI
    LUT) before scaling to [0, 1]; False scales the modality-LUT output min-max over its stored range.

The result is float32 ``[channels, size, size]``; `preprocess_batch` stacks to ``[batch, ...]``.
"""
from __future__ import annotations

import io
import os
from functools import lru_cache
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

from ..errors import ImageLoadError
from ..io.files import open_regular
from .codecs.levels import reduced_size
from .codecs.wavelet import SPACING, SYNTHESIS_REACH, combs

RESIZE_RULES = ("letterbox", "stretch")
MAX_SYNTHESIS_BOX = 16  # samples an output pixel's box may span for the 9/7 synthesis (`_axis_taps`)
MAX_SYNTHESIS_AXIS = 16384  # and pixels the axis may have (its combs are that long)
# Mean per-pixel channel spread (max - min over R, G, B, on the [0, 1] scale) at or below which a
# colour image counts as grey stored in colour (e.g. a secondary capture or a PNG saved as RGB).
GREY_SPREAD = 0.02


def check_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The spec with defaults filled in; ValueError names the bad key."""
    try:
        size = int(spec["size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"preprocess spec needs an integer 'size': {dict(spec)!r}") from exc
    resize = spec.get("resize", "letterbox")
    channels = int(spec.get("channels", 3))
    mean = [float(v) for v in spec.get("mean", [0.0])]
    std = [float(v) for v in spec.get("std", [1.0])]
    if size < 1:
        raise ValueError(f"preprocess size must be positive, got {size}")
    if resize not in RESIZE_RULES:
        raise ValueError(f"preprocess resize must be one of {RESIZE_RULES}, got {resize!r}")
    if channels not in (1, 3):
        raise ValueError(f"preprocess channels must be 1 or 3, got {channels}")
    for key, values in (("mean", mean), ("std", std)):
        if len(values) not in (1, channels):
            raise ValueError(f"preprocess {key} needs 1 or {channels} values, got {len(values)}")
    if any(s <= 0 for s in std):
        raise ValueError("preprocess std values must be positive")
    return {"size": size, "resize": resize, "channels": channels, "mean": mean, "std": std,
            "voi": bool(spec.get("voi", False))}


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    shrinking = height * width < image.shape[0] * image.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def resized_shape(shape: tuple[int, int], size: int, rule: str = "letterbox") -> tuple[int, int]:
    """(rows, cols) an image of `shape` is resized to by `resize_square`, before any padding.

    The DICOM reader decodes no smaller than this (`radedge.images.dicom`), so resizing is always
    a shrink (INTER_AREA) whether the image came at full or at reduced resolution."""
    if rule == "stretch":
        return size, size
    h, w = shape
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _area_taps(n_out: int, n_full: int, factor: int, origin: float) -> tuple[np.ndarray, np.ndarray]:
    """(indices, weights), each [n_out, taps]: output pixel j averages full-resolution pixels
    j * n_full / n_out to (j + 1) * n_full / n_out (INTER_AREA's box) out of samples that each stand
    for `factor` of them from `origin` + i * factor, weighted by overlap (clipped to the image)."""
    n_samples = -(-n_full // factor)
    lo = np.arange(n_out)[:, None] * (n_full / n_out)
    hi = lo + n_full / n_out
    index = np.floor((lo - origin) / factor).astype(np.int64) + np.arange(int(np.ceil(n_full / n_out / factor)) + 2)
    start = np.clip(origin + index * factor, 0, n_full)
    weight = np.clip(np.minimum(hi, np.clip(start + factor, 0, n_full)) - np.maximum(lo, start), 0, None)
    weight[(index < 0) | (index >= n_samples)] = 0
    return np.clip(index, 0, n_samples - 1), (weight / weight.sum(axis=1, keepdims=True)).astype(np.float32)


def _resize_reduced(image: np.ndarray, height: int, width: int, shape: tuple[int, int],
                    origin: float, kernel: str = "box") -> np.ndarray:
    """INTER_AREA's box, over the full-resolution grid, of an image decoded at reduced size: its
    samples taken as blocks ("box") or rebuilt by the JPEG 2000 9/7 synthesis ("cdf97")."""
    factor = next((1 << k for k in range(33) if all(reduced_size(n, 1 << k) == m for n, m in zip(shape, image.shape))), 0)
    if not factor:
        raise ValueError(f"an image of shape {image.shape} is not a power-of-two reduction of {shape}")
    if kernel not in ("box", "cdf97"):
        raise ValueError(f"unknown sample kernel {kernel!r} (box or cdf97)")
    (rows, row_w), (cols, col_w) = (_axis_taps(n_out, n_full, factor, origin, kernel)
                                    for n_out, n_full in ((height, shape[0]), (width, shape[1])))
    # einsum without `optimize` stays out of BLAS, whose threads would spin against the other workers
    by_rows = np.einsum("ktc,kt->kc", image[rows], row_w)
    resized = np.einsum("rkt,kt->rk", by_rows[:, cols], col_w)
    return (np.clip(resized, 0.0, 1.0) if kernel == "cdf97" else resized).astype(np.float32, copy=False)


def _axis_taps(n_out: int, n_full: int, factor: int, origin: float, kernel: str) -> tuple[np.ndarray, np.ndarray]:
    """One axis's (indices, weights): the 9/7 synthesis's when `kernel` says so, each output
    pixel's box spans at most MAX_SYNTHESIS_BOX samples and the axis at most MAX_SYNTHESIS_AXIS
    pixels; blocks otherwise. Over wider boxes the synthesis's shape no longer changes the mean (it
    reaches under 3 samples), and its combs grow with the box and the axis (a hostile 16 x
    4,000,000 frame: gigabytes; 192 x 349,525: half a gigabyte)."""
    if kernel == "cdf97" and n_full <= min(MAX_SYNTHESIS_AXIS, MAX_SYNTHESIS_BOX * n_out * factor):
        return _synthesis_taps(n_out, n_full, factor)
    return _area_taps(n_out, n_full, factor, origin)


@lru_cache(maxsize=64)
def _synthesis_taps(n_out: int, n_full: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """`_area_taps` for samples rebuilt by the 9/7 synthesis: INTER_AREA's box over the
    full-resolution pixels the synthesis rebuilds from the low-pass samples of an `n_full`-pixel
    axis reduced by `factor` (the wavelet's negative lobes can take a result just outside [0, 1])."""
    index, weight = _area_taps(n_out, n_full, 1, 0.0)
    box = reduced_size(n_full, n_out * factor)  # samples one output pixel's box spans, rounded up
    teeth = combs(n_full, factor, max(SPACING, 2 * (box + SYNTHESIS_REACH) + 2))  # [spacing, n_full]
    per_comb = np.einsum("kt,ckt->kc", weight, teeth[:, index])  # box k over comb c's one sample near it
    spacing, samples = teeth.shape[0], reduced_size(n_full, factor)
    centre = np.round(((np.arange(n_out) + 0.5) * n_full / n_out - 0.5) / factor).astype(np.int64)
    taps = centre[:, None] + np.arange(-(spacing // 2) + 1, spacing // 2)
    inside = (taps >= 0) & (taps < samples)
    weights = np.where(inside, np.take_along_axis(per_comb, taps % spacing, axis=1), 0.0)
    used = np.flatnonzero(np.abs(weights).max(axis=0) > 1e-9)  # trim the taps no row uses
    taps, weights = np.clip(taps[:, used[0]:used[-1] + 1], 0, samples - 1), weights[:, used[0]:used[-1] + 1]
    return _read_only(taps), _read_only(weights.astype(np.float32))


def _read_only(array: np.ndarray) -> np.ndarray:
    """A cached array no caller may change."""
    array.setflags(write=False)
    return array


def resize_square(image: np.ndarray, size: int, rule: str = "letterbox",
                  shape: tuple[int, int] | None = None, origin: float = 0.0, kernel: str = "box") -> np.ndarray:
    """Resize a 2-D image to ``size`` x ``size`` by the spec's rule (see the module docstring).

    `shape` is the image's (rows, cols) at full resolution when it was decoded at reduced size, and
    `origin` where its first sample's block starts and `kernel` what a sample stands for
    (`radedge.images.codecs.Frame`): the box of each output pixel is then taken over the
    full-resolution grid, so the letterbox box and the sample positions are those full decoding gives."""
    full = tuple(shape) if shape is not None else image.shape
    nh, nw = resized_shape(full, size, rule)
    resized = _resize(image, nh, nw) if full == image.shape else _resize_reduced(image, nh, nw, full, origin, kernel)
    if rule == "stretch":
        return resized
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = resized
    return out


def preprocess(image: np.ndarray, spec: Mapping[str, Any], shape: tuple[int, int] | None = None,
               origin: float = 0.0, kernel: str = "box") -> np.ndarray:
    """A 2-D float32 image in [0, 1] -> float32 [channels, size, size], ready for the model.

    `shape`, `origin`, `kernel`: the image's full-resolution (rows, cols) and sample geometry when
    it was decoded at reduced size (see `resize_square`)."""
    s = check_spec(spec)
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"preprocess needs a 2-D grey image, got shape {image.shape}")
    if image.size == 0:
        raise ValueError("preprocess got an empty image")
    resized = resize_square(image.astype(np.float32, copy=False), s["size"], s["resize"], shape, origin, kernel)
    out = np.repeat(resized[None], s["channels"], axis=0)
    mean = np.asarray(s["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(s["std"], dtype=np.float32).reshape(-1, 1, 1)
    return ((out - mean) / std).astype(np.float32, copy=False)


def preprocess_batch(images: Iterable[np.ndarray], spec: Mapping[str, Any]) -> np.ndarray:
    """Several 2-D images -> float32 [batch, channels, size, size]."""
    arrays = [preprocess(im, spec) for im in images]
    if not arrays:
        s = check_spec(spec)
        return np.zeros((0, s["channels"], s["size"], s["size"]), dtype=np.float32)
    return np.stack(arrays)


def grey_from_colour(rgb: np.ndarray, what: str = "image") -> np.ndarray:
    """Grey (ITU-R BT.601 luma) from an [H, W, 3] float image in [0, 1] whose channels agree.

    A radiograph stored as RGB (secondary captures, PNGs saved in colour) has R = G = B up to
    compression noise; a real colour picture (a photo, a colour-coded map) is refused, because no
    chest-radiograph model should guess at it.
    """
    spread = float(np.mean(rgb.max(axis=2) - rgb.min(axis=2)))
    if spread > GREY_SPREAD:
        raise ImageLoadError(f"{what}: colour image (mean channel spread {spread:.3f} > {GREY_SPREAD}), "
                             "not a greyscale radiograph")
    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2GRAY)


def to_unit_range(array: np.ndarray) -> np.ndarray:
    """Pixels as float32 in [0, 1]: integers divided by their type's maximum (255 for 8-bit, 65535
    for 16-bit), floats taken as [0, 1] display values and clipped."""
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def check_picture_size(data: bytes, max_pixels: int | None, what: str = "image") -> None:
    """ImageLoadError when a PNG / JPEG's header declares more than `max_pixels` pixels (width x
    height), read by Pillow without decoding; so a 1 MB file that unpacks to gigabytes is refused
    before opencv allocates them. Formats Pillow cannot size are left to opencv's own limit."""
    if max_pixels is None:
        return
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as picture:
            width, height = picture.size
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{what}: image too large ({exc})") from exc
    except Exception:  # noqa: BLE001 (not a format Pillow reads: opencv decides)
        return
    if width * height > max_pixels:
        raise ImageLoadError(f"{what}: image too large: {width} x {height} = {width * height:,} pixels over the cap "
                             f"of {max_pixels:,} (--max-pixels)")


def load_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """A PNG / JPEG (any format opencv reads) as a 2-D float32 image in [0, 1].

    Integer pixels are divided by their type's maximum (255 for 8-bit, 65535 for 16-bit), as the
    public chest X-ray datasets store them. Grey stored as RGB(A) is converted (`grey_from_colour`);
    colour pictures raise ImageLoadError with the reason; so does a picture over `max_pixels`.
    """
    with open_regular(path) as f:  # a FIFO or device is this input's error, never a hang
        raw = f.read()
    check_picture_size(raw, max_pixels, str(path))
    data = np.frombuffer(raw, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageLoadError(f"{path}: not an image opencv can read")
    scaled = to_unit_range(image)
    if scaled.ndim == 3:
        if scaled.shape[2] == 1:
            scaled = scaled[:, :, 0]
        else:
            rgb = cv2.cvtColor(scaled[:, :, :3], cv2.COLOR_BGR2RGB)  # opencv decodes to BGR; drop alpha
            scaled = grey_from_colour(rgb, str(path))
    return np.ascontiguousarray(scaled, dtype=np.float32)


__all__ = ["GREY_SPREAD", "RESIZE_RULES", "check_picture_size", "check_spec", "grey_from_colour", "load_image",
           "preprocess", "preprocess_batch", "resize_square", "resized_shape", "to_unit_range"]

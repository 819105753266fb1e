"""Read chest radiographs from what a PACS export really contains.

One call, `read_dicom(path, voi=..., views=...)`, turns a file into a `DicomImage` (a float32 image in
[0, 1], display orientation, plus its UIDs) or raises:

- `SkippedInput` (recorded as *skipped*, not a failure): not a DICOM file (by content, whatever the
  name), a DICOMDIR index, an object without pixels (SR, presentation state, key object...), a
  series that is not a chest radiograph (Modality not CR / DX; BodyPartExamined present and not
  CHEST), a view not allowed (lateral by default; see `views`), a multi-frame object, a colour image.
- `DicomError` (recorded as *error*): a zero-byte file, a raw dataset without the Part 10 header
  (preamble, "DICM", file meta: it would need ``force=True``, which we never use, so
  bad/no_preamble.dcm is an error), a file pydicom cannot parse, an image object without Rows /
  Columns / Pixel Data (a truncated file reads without raising), pixel data that fails to decode.

Files are found by content: a 128-byte preamble followed by "DICM". Two damaged-but-valid layouts
are also read, still without ``force``: "DICM" at offset 0 (preamble dropped) and a file that starts
directly with the group 0002 file meta elements; both get a synthetic preamble in memory.

Pixels: pydicom 3 decodes every transfer syntax of the corpus with the pylibjpeg plugins
(pylibjpeg-libjpeg: JPEG baseline / extended / lossless, JPEG-LS; pylibjpeg-openjpeg: JPEG 2000;
pylibjpeg-rle and pydicom itself: RLE). Then, in the order of DICOM's grayscale pipeline:

1. modality LUT (RescaleSlope / Intercept or Modality LUT Sequence), `apply_modality_lut`;
2. VOI when ``voi=True`` and the file has one (VOI LUT Sequence preferred, else window centre /
   width of the first window), `apply_voi_lut`, scaled to [0, 1] over the VOI output range;
   otherwise (``voi=False``, or no VOI in the file) min-max over the image's own values;
3. MONOCHROME1 inverted (1 - x), so higher is always brighter.

Rules for the awkward objects (documented choices, not guesses):

- multi-frame (NumberOfFrames > 1) is skipped: a chest radiograph is one frame, and which frame of
  a stack to score would be a guess;
- RGB / YBR images (secondary captures) are converted to grey when their channels agree (grey
  stored in colour; `preprocess.grey_from_colour`), otherwise skipped as colour images; PALETTE
  COLOR is skipped;
- a missing or empty ViewPosition is allowed (many CR files lack it); a missing BodyPartExamined is
  allowed, as the task says.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Mapping

import numpy as np

from ..errors import (DicomReadError, ImageLoadError, ImageTooLargeError, InputError, NotDicomError,
                      PixelDecodeError, SkippedInput, item_failure)
from ..io.files import open_regular
from .codecs import CodestreamMismatch, Frame, ReducedUnavailable, decode_reduced, reduce_full
from .preprocess import check_spec, grey_from_colour, resized_shape

MAGIC_OFFSET = 128
DEFER_BYTES = 1 << 20  # element values read on first use (see read_dataset)
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX"})
CHEST_BODY_PARTS = frozenset({"CHEST"})
DEFAULT_VIEWS = frozenset({"PA", "AP"})
LATERAL_VIEWS = frozenset({"LL", "RL", "LATERAL", "LAT", "LLD", "RLD"})
# ViewPosition values a chest radiograph may carry (DICOM's defined terms for CR / DX, obliques included):
# a `--views` value outside them is a typo ("PAA"), refused instead of silently scoring nothing.
KNOWN_VIEWS = DEFAULT_VIEWS | LATERAL_VIEWS | frozenset({"RLO", "LLO", "RAO", "LAO", "RPO", "LPO"})
# Names whose content is expected to be DICOM: a failure to read them is an error, not a skip.
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic", ""})
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
# What `sniff` may say of a file that read_dicom reads (the last two get a synthetic preamble).
DICOM_KINDS = frozenset({"part10", "dicm-no-preamble", "meta-no-preamble"})
# Largest image decoded, in Rows x Columns x frames from the header (`--max-pixels`): an 8192 x 8192
# frame, several times the largest chest radiograph, about 0.5 GB at its peak in float32 steps.
DEFAULT_MAX_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class DicomImage:
    """A decoded radiograph: 2-D float32 pixels in [0, 1] (higher = brighter) and its identity.

    Only UIDs and technical attributes are kept: no patient names or IDs ever leave this module.
    """

    path: str
    image: np.ndarray
    study_uid: str
    series_uid: str
    sop_uid: str
    modality: str = ""
    view: str = ""
    photometric: str = ""
    transfer_syntax: str = ""
    intensity: str = ""  # how [0, 1] was reached: "voi-lut", "window", or "minmax"
    shape: tuple[int, int] = (0, 0)  # (Rows, Columns) at full resolution; `image` may be smaller
    origin: float = 0.0  # a reduced image's sample geometry (`codecs.Frame`), for the resizing
    kernel: str = "box"  # what a reduced image's sample stands for (`codecs.Frame`)
    decoded: str = "full"  # "full (why)", or the codec and factor of a reduced decode ("jpeg2000 1/4")
    extra: dict[str, Any] = field(default_factory=dict)


def parse_views(views: str | Iterable[str] | None) -> frozenset[str] | None:
    """`--views` text ("PA,AP", "all") or an iterable -> allowed ViewPosition values (None = all).

    "LATERAL" / "LAT" stand for every lateral code (LL, RL, ...)."""
    if views is None:
        return DEFAULT_VIEWS
    items = views.split(",") if isinstance(views, str) else list(views)
    allowed = {v.strip().upper() for v in items if v and v.strip()}
    if not allowed:
        raise ValueError("views: give at least one view, e.g. PA,AP, or 'all'")
    if "ALL" in allowed:
        return None
    unknown = sorted(allowed - KNOWN_VIEWS)
    if unknown:
        raise ValueError(f"--views: unknown view {', '.join(unknown)}; choose from {', '.join(sorted(KNOWN_VIEWS))} "
                         f"or 'all'")
    if allowed & {"LATERAL", "LAT"}:
        allowed |= LATERAL_VIEWS
    return frozenset(allowed)


# ---- finding DICOM by content ---------------------------------------------------------------------
def sniff(path: str | os.PathLike) -> str:
    """What a file's first bytes say: "part10", "dicm-no-preamble", "meta-no-preamble", "raw-dataset",
    "empty" or "other". Reads at most 132 bytes."""
    with open_regular(path) as fh:  # a FIFO, device or dangling link: NotRegularFileError (an InputError)
        head = fh.read(MAGIC_OFFSET + 4)
    if not head:
        return "empty"
    if len(head) == MAGIC_OFFSET + 4 and head[MAGIC_OFFSET:] == b"DICM":
        return "part10"
    if head[:4] == b"DICM":
        return "dicm-no-preamble"
    if len(head) >= 8 and head[:2] == b"\x02\x00" and head[4:6] in (b"UL", b"OB"):
        return "meta-no-preamble"  # (0002,xxxx) in explicit VR little endian: the file meta group
    if len(head) >= 8 and head[:2] == b"\x08\x00" and head[3:4] == b"\x00":
        return "raw-dataset"  # (0008,00xx) first: a dataset written without the Part 10 header
    return "other"


def _expected_dicom(path: Path) -> bool:
    """Named like DICOM: .dcm / .dicom / .dic or no extension (DICOMDIR file IDs); hidden files
    (.DS_Store, markers) never are."""
    if path.name.startswith("."):
        return False
    return path.suffix.lower() in DICOM_SUFFIXES or path.name.upper() == "DICOMDIR"


def check_dicom_content(path: str | os.PathLike) -> str:
    """The sniffed kind of a file that can be read as DICOM, else raise why not (skip or error)."""
    p = Path(path)
    kind = sniff(p)
    if kind in DICOM_KINDS:
        return kind
    if kind == "empty":
        if _expected_dicom(p):
            raise NotDicomError("zero-byte file")
        raise SkippedInput("not a DICOM file (zero-byte)")
    if kind == "raw-dataset":
        raise NotDicomError("no 128-byte preamble/DICM prefix/file meta (raw dataset; would need force=True)")
    if _expected_dicom(p):
        raise NotDicomError(f"not a DICOM file (no DICM prefix) although named {p.name!r}")
    raise SkippedInput("not a DICOM file")


def _source(path: Path, kind: str) -> str | BinaryIO:
    if kind == "part10":
        return str(path)
    with open_regular(path) as fh:
        data = fh.read()
    if kind == "dicm-no-preamble":
        data = data[4:]
    return io.BytesIO(b"\0" * MAGIC_OFFSET + b"DICM" + data)


def read_dataset(path: str | os.PathLike) -> Any:
    """The pydicom Dataset of a file found to be DICOM by content; never ``force=True``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    p = Path(path)
    kind = check_dicom_content(p)
    try:
        # defer_size: values over 1 MiB (Pixel Data) are read only when used, so an object that is
        # skipped from its header (a 750 MB cine loop) is never read whole.
        return pydicom.dcmread(_source(p, kind), defer_size=DEFER_BYTES)
    except InvalidDicomError as exc:
        raise DicomReadError(f"invalid DICOM: {exc}") from exc
    except (EOFError, ValueError, KeyError, TypeError, OSError, OverflowError, NotImplementedError) as exc:
        raise DicomReadError(f"cannot parse DICOM header ({type(exc).__name__}: {exc})") from exc


# ---- deciding what to score ------------------------------------------------------------------------
def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    return str(value).strip() if value is not None else ""


def _sop_class(ds: Any) -> tuple[str, str]:
    uid = ds.get("SOPClassUID") or getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", None) or ""
    name = getattr(uid, "name", str(uid))
    return str(uid), str(name)


def _has_pixels(ds: Any) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))


def check_scorable(ds: Any, views: frozenset[str] | None = DEFAULT_VIEWS) -> None:
    """Raise SkippedInput / DicomReadError when a dataset is not a single-frame chest radiograph
    in an allowed view; header checks only, so nothing is decoded for what is skipped."""
    uid, name = _sop_class(ds)
    if uid == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise SkippedInput("DICOMDIR (Media Storage Directory, no pixel data)")
    if not _has_pixels(ds) or "Rows" not in ds or "Columns" not in ds:
        if "Image Storage" in name or _has_pixels(ds) or "Rows" in ds:
            raise DicomReadError("image object without Rows/Columns/Pixel Data (truncated or incomplete file)")
        raise SkippedInput(f"no pixel data ({name or 'unknown SOP class'})")
    if _text(ds, "PhotometricInterpretation").upper() == "PALETTE COLOR":
        raise SkippedInput("colour image (PALETTE COLOR), not a greyscale radiograph")
    modality = _text(ds, "Modality").upper()
    if modality not in RADIOGRAPH_MODALITIES:
        raise SkippedInput(f"modality {modality or '(none)'} (not a CR/DX radiograph)")
    body_part = _text(ds, "BodyPartExamined").upper()
    if body_part and body_part not in CHEST_BODY_PARTS:
        raise SkippedInput(f"body part {body_part} (not chest)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise SkippedInput(f"multi-frame object (NumberOfFrames {frames})")
    view = _text(ds, "ViewPosition").upper()
    if views is not None and view and view not in views:
        kind = "lateral view" if view in LATERAL_VIEWS else "view"
        raise SkippedInput(f"{kind} (ViewPosition {view}) not in allowed views {','.join(sorted(views))}")


def check_pixel_count(shape: tuple[int, ...], max_pixels: int | None, what: str = "header") -> None:
    """ImageTooLargeError when rows x cols (x frames) exceeds `max_pixels` (None: no cap)."""
    count = 1
    for n in shape:
        count *= int(n)
    if max_pixels is not None and count > max_pixels:
        size = " x ".join(str(int(n)) for n in shape)
        raise ImageTooLargeError(f"image too large: {size} = {count:,} pixels ({what}) over the cap of "
                                 f"{max_pixels:,} (--max-pixels)")


def header_shape(ds: Any) -> tuple[int, int, int]:
    """(Rows, Columns, NumberOfFrames) as the header gives them, before any decoding."""
    return int(ds.Rows), int(ds.Columns), int(ds.get("NumberOfFrames", 1) or 1)


# ---- pixels ---------------------------------------------------------------------------------------
def _voi_lut(ds: Any) -> Any:
    """The first VOI LUT Sequence item when it is a usable LUT (descriptor and data), as pydicom's
    apply_voi_lut decides; else None (pydicom then windows, if it can)."""
    lut = ds.get("VOILUTSequence")
    if lut and lut[0].get("LUTDescriptor") is not None and lut[0].get("LUTData") is not None:
        return lut[0]
    return None


def _voi_range(ds: Any) -> tuple[float, float]:
    """Output range of the VOI step pydicom applies: the LUT's bit depth, or, for windowing, the
    values pydicom maps everything below / above the window to (probed, so pydicom stays the one
    definition)."""
    from pydicom.pixels import apply_voi_lut

    lut = _voi_lut(ds)
    if lut is not None:
        return 0.0, float(2 ** int(lut.LUTDescriptor[2]) - 1)
    with np.errstate(over="ignore"):
        lo, hi = apply_voi_lut(np.array([-1e30, 1e30]), ds)
    return float(lo), float(hi)


def _has_voi(ds: Any) -> bool:
    if _voi_lut(ds) is not None:
        return True
    return ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None


def _display_values(ds: Any, stored: np.ndarray, voi: bool, value_range: tuple[float, float] | None = None
                    ) -> tuple[np.ndarray, str]:
    """Modality LUT, then VOI or min-max, to float32 [0, 1] (before MONOCHROME1 inversion).

    `value_range` is the (min, max) of the image's modality-LUT values when `stored` is a table of
    every possible value (min-max is over the image's own values, not the table's)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    values = apply_modality_lut(stored, ds)
    if voi and _has_voi(ds):
        lo, hi = _voi_range(ds)
        how = "voi-lut" if _voi_lut(ds) is not None else "window"
        shown = apply_voi_lut(values, ds)
        return np.clip((shown.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0), how
    lo, hi = value_range if value_range is not None else (float(values.min()), float(values.max()))
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.float32), "minmax"
    return ((values.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))), "minmax"


def _value_table(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For 8 / 16-bit integer pixels: (every value the index type can hold, the image as indices
    into it). Applying the LUTs to the table and gathering gives exactly the per-pixel result,
    at a fraction of the cost (pydicom's LUTs work in float64 with masks). None for other types."""
    if not np.issubdtype(stored.dtype, np.integer) or stored.dtype.itemsize > 2:
        return None
    unsigned = np.uint8 if stored.dtype.itemsize == 1 else np.uint16
    index = stored.view(unsigned)  # signed values index by their bit pattern
    table = np.arange(int(index.max()) + 1 if stored.dtype.kind == "u" else 2 ** (8 * stored.dtype.itemsize),
                      dtype=unsigned).view(stored.dtype)
    return table, index


def _modality_range(ds: Any, stored: np.ndarray, table: np.ndarray, index: np.ndarray,
                    extremes: tuple[float, float] | None = None) -> tuple[float, float]:
    """(min, max) of the image's values after the modality LUT. A rescale is linear, so the extreme
    stored values give them (`extremes`, those of the full-resolution frame when `stored` is block
    means of it); a Modality LUT Sequence may not be monotonic, so there every value present is
    looked up."""
    from pydicom.pixels import apply_modality_lut

    ends = np.array(extremes if extremes is not None else (stored.min(), stored.max())).astype(stored.dtype)
    seen = apply_modality_lut(ends, ds)
    if ds.get("ModalityLUTSequence"):
        present = np.bincount(index.ravel(), minlength=len(table)).astype(bool)
        seen = np.concatenate([apply_modality_lut(table, ds)[present], seen])
    return float(np.min(seen)), float(np.max(seen))


def grey_intensity(ds: Any, stored: np.ndarray, voi: bool,
                   extremes: tuple[float, float] | None = None) -> tuple[np.ndarray, str]:
    """Stored grey pixels -> float32 [0, 1], display orientation (see the module docstring);
    `extremes`: the (min, max) stored values of the full frame when `stored` is block means of it."""
    invert = _text(ds, "PhotometricInterpretation").upper() == "MONOCHROME1"
    lookup = _value_table(stored)
    if lookup is None:
        image, how = _display_values(ds, stored, voi)
        return np.ascontiguousarray(1.0 - image if invert else image, dtype=np.float32), how
    table, index = lookup
    values, how = _display_values(ds, table, voi, _modality_range(ds, stored, table, index, extremes))
    if invert:
        values = 1.0 - values
    return np.take(values.astype(np.float32), index), how


def decode_pixels(ds: Any) -> np.ndarray:
    """The stored pixel array of a single-frame dataset (colour as RGB); PixelDecodeError if not."""
    try:
        return ds.pixel_array
    except BaseException as exc:  # noqa: BLE001 (many types, and native panics that are not Exceptions)
        if not item_failure(exc):
            raise
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        ts_name = getattr(ts, "name", "unknown transfer syntax")
        raise PixelDecodeError(f"pixel data cannot be decoded ({ts_name}): {type(exc).__name__}: {exc}") from exc


def decode_frame(ds: Any, need: tuple[int, int] | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Frame:
    """The stored pixels of a checked single-frame dataset, and at what size they were decoded.

    With `need` (the (rows, cols) preprocessing resizes to), JPEG 2000 and baseline JPEG frames are
    decoded at the smallest size the codestream offers that still covers it (`codecs`); every
    other frame, and any the reduced path refuses or fails on, is decoded in full by pydicom, and a
    grey one then shrunk to block means that still cover it (`codecs.reduce_full`), so the LUTs and
    the resizing do not run over every full-resolution pixel. A codestream whose size disagrees
    with Rows / Columns is decoded in full too, if its own size is within `max_pixels`."""
    how = "full"
    if need is not None:
        try:
            return decode_reduced(ds, need)
        except CodestreamMismatch as exc:  # full decoding would allocate the codestream's size
            if exc.shape is None and max_pixels is not None:
                raise ImageTooLargeError(f"image too large: {exc} (--max-pixels)") from exc
            check_pixel_count(exc.shape or (), max_pixels, "codestream header")
            how = f"full ({exc})"
        except ReducedUnavailable as exc:
            how = f"full ({exc})"
        except BaseException as exc:  # noqa: BLE001 (whatever the reduced path trips on, full decoding decides)
            if not item_failure(exc):
                raise
            how = f"full (reduced decoding failed: {type(exc).__name__}: {exc})"
    stored = decode_pixels(ds)
    if need is not None and _text(ds, "PhotometricInterpretation").upper().startswith("MONOCHROME"):
        return reduce_full(stored, need, how)
    return Frame(stored, how=how)


def to_display(ds: Any, voi: bool, stored: np.ndarray | None = None,
               extremes: tuple[float, float] | None = None) -> tuple[np.ndarray, str]:
    """A checked dataset and its stored pixels (default: decoded here at full resolution) ->
    (float32 [0, 1] grey image, how its intensity was scaled); `extremes` as in `grey_intensity`."""
    photometric = _text(ds, "PhotometricInterpretation").upper()
    if stored is None:
        stored = decode_pixels(ds)
    if photometric.startswith("MONOCHROME"):
        if stored.ndim != 2:
            raise PixelDecodeError(f"grey image decoded to shape {stored.shape}, expected 2-D")
        return grey_intensity(ds, stored, voi, extremes)
    if stored.ndim != 3 or stored.shape[2] != 3:
        raise PixelDecodeError(f"{photometric} image decoded to shape {stored.shape}, expected [rows, cols, 3]")
    full_scale = float(2 ** int(ds.get("BitsStored", 8)) - 1)
    try:  # pydicom returns RGB for RGB and YBR_* (it converts YBR by default)
        return grey_from_colour(stored.astype(np.float32) / np.float32(full_scale), photometric), "rgb-luma"
    except ImageLoadError as exc:
        raise SkippedInput(str(exc)) from exc


def uids(ds: Any) -> tuple[str, str, str]:
    """(Study, Series, SOP Instance) UIDs of a dataset; empty strings where absent."""
    return _text(ds, "StudyInstanceUID"), _text(ds, "SeriesInstanceUID"), _text(ds, "SOPInstanceUID")


def read_dicom(path: str | os.PathLike, voi: bool = True, views: frozenset[str] | None = DEFAULT_VIEWS,
               decode_for: Mapping[str, Any] | None = None,
               max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DicomImage:
    """Read, check and decode one file; raises SkippedInput or DicomError with the reason (and,
    when the header was readable, the instance's UIDs in the exception's `uids` attribute).

    `decode_for`: a preprocess spec; the frame is then decoded no larger than `preprocess` needs
    (`decode_frame`), and `preprocess(image, spec, result.shape, result.origin, result.kernel)`
    gives about what full decoding would (the codecs' low-pass filters are not INTER_AREA's box: see
    `codecs.levels` and `codecs.wavelet`). `max_pixels`: the cap
    on Rows x Columns x frames, checked from the header before decoding (None: no cap)."""
    return image_from_dataset(read_dataset(path), voi, views, decode_for, max_pixels, path=str(path))


def image_from_dataset(ds: Any, voi: bool = True, views: frozenset[str] | None = DEFAULT_VIEWS,
                       decode_for: Mapping[str, Any] | None = None,
                       max_pixels: int | None = DEFAULT_MAX_PIXELS, path: str = "") -> DicomImage:
    """`read_dicom` for a dataset already read (by `read_dataset`, or a caller's pydicom Dataset)."""
    try:
        check_scorable(ds, views)
        shape = header_shape(ds)
        check_pixel_count(shape, max_pixels)
        need = None
        if decode_for is not None:
            spec = check_spec(decode_for)
            need = resized_shape(shape[:2], spec["size"], spec["resize"])
        frame = decode_frame(ds, need, max_pixels)
        image, how = to_display(ds, voi, frame.stored, frame.extremes)
    except InputError as exc:  # a readable header: say which instance was skipped or failed
        exc.uids = uids(ds)  # type: ignore[attr-defined]
        raise
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")
    study_uid, series_uid, sop_uid = uids(ds)
    return DicomImage(
        path=path, image=image, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid,
        modality=_text(ds, "Modality").upper(),
        view=_text(ds, "ViewPosition").upper(), photometric=_text(ds, "PhotometricInterpretation").upper(),
        transfer_syntax=str(getattr(ts, "name", ts)), intensity=how, shape=shape[:2], origin=frame.origin,
        kernel=frame.kernel, decoded=frame.how,
    )


__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_VIEWS", "DICOM_KINDS", "DicomImage", "KNOWN_VIEWS", "LATERAL_VIEWS",
           "check_dicom_content", "check_pixel_count", "check_scorable", "decode_frame", "decode_pixels",
           "grey_intensity", "header_shape", "image_from_dataset", "parse_views", "read_dataset", "read_dicom", "sniff", "to_display",
           "uids"]

"""One error hierarchy for the whole runtime.

Per-item problems (a bad report, a broken DICOM file) are `InputError`s: the pipelines record them
against the item and go on. Model and backend problems stop the run before any work is done.
`TrainingError` is the base of what export/ raises, so one `except RadEdgeError` covers the project.
"""
from __future__ import annotations


class RadEdgeError(Exception):
    """Base class of every error radedge raises on purpose."""


class ModelError(RadEdgeError):
    """A model cannot be found, read or trusted."""


class ModelNotFoundError(ModelError):
    """No model folder answers to the requested name or path."""


class ManifestError(ModelError):
    """manifest.json is missing, malformed, or disagrees with the ONNX graph."""


class ChecksumError(ModelError):
    """A model file does not match the sha256 its manifest records."""


class BackendError(RadEdgeError):
    """The inference backend failed or is not available."""


class DeviceUnavailableError(BackendError):
    """The requested device or execution provider is not present on this machine."""


class InputError(RadEdgeError):
    """One input item (report, file) cannot be processed; recorded per item, never fatal to a run."""


class ReportDecodeError(InputError):
    """A report's bytes are not valid text in the expected encoding."""


class DicomError(InputError):
    """A DICOM file cannot be read or its pixels cannot be decoded."""


class NotDicomError(DicomError):
    """Content is not DICOM although the file's name says it should be (or it is empty)."""


class DicomReadError(DicomError):
    """pydicom cannot parse the file, or an image object lacks its image attributes."""


class PixelDecodeError(DicomError):
    """The header reads but the pixel data does not decode."""


class ImageTooLargeError(DicomError):
    """Rows x Columns x frames in the header (or a codestream's own size) is over the pixel cap;
    refused before anything is decoded, so a forged header cannot make a decoder allocate gigabytes."""


class ImageLoadError(InputError):
    """A PNG / JPEG file cannot be read, or holds a colour (not grey) picture."""


class SkippedInput(InputError):
    """An input that is valid but deliberately not scored (lateral view, SR object...)."""


class TrainingError(RadEdgeError):
    """Offline training or export (export/) stopped at one of its checks; the runtime never raises it."""


def item_failure(exc: BaseException) -> bool:
    """Whether an exception raised while processing one item is that item's failure (to record and
    go on) rather than the run's end: everything but an interrupt or exit. Native decoders raise
    `BaseException`s that are not `Exception`s (a Rust panic in pylibjpeg-rle is
    `pyo3_runtime.PanicException`), so per-item handlers catch BaseException and re-raise unless this
    says True."""
    return not isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit))

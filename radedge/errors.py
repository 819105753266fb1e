"""One error hierarchy for the whole runtime.

Per-item problems (a bad report, a broken DICOM file) are `InputError`s: the pipelines record them
against the item and go on. Model and backend problems stop the run before any work is done.
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


class SkippedInput(InputError):
    """An input that is valid but deliberately not scored (lateral view, SR object...)."""

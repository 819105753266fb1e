"""Small DICOM files written by pydicom inside the tests: every awkward case the reader must handle."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    BasicTextSRStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)


def ramp(rows: int = 48, cols: int = 64, top: int = 4095, dtype: Any = np.uint16) -> np.ndarray:
    """A deterministic image with every row different (so orientation and inversion show)."""
    y, x = np.mgrid[0:rows, 0:cols]
    return ((x * 3 + y * 5) % (top + 1)).astype(dtype)


def make_dataset(pixels: np.ndarray | None = None, photometric: str = "MONOCHROME2", bits_stored: int | None = None,
                 modality: str = "DX", body_part: str | None = "CHEST", view: str | None = "PA",
                 sop_class: str = DigitalXRayImageStorageForPresentation, **tags: Any) -> Dataset:
    """A DX image dataset (or, with pixels=None, one without Pixel Data) with explicit VR LE meta."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID = "SECRET^NAME", "SECRET123"
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.SeriesNumber, ds.InstanceNumber = "20200101", "120000", "1", 1, 1
    ds.Modality = modality
    if body_part is not None:
        ds.BodyPartExamined = body_part
    if view is not None:
        ds.ViewPosition = view
    if pixels is not None:
        stored = bits_stored or (8 if pixels.dtype.itemsize == 1 else 12)
        ds.set_pixel_data(pixels, photometric, stored)
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds


def write(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def write_image(path: Path, pixels: np.ndarray | None = None, **kw: Any) -> Path:
    return write(make_dataset(ramp() if pixels is None else pixels, **kw), path)


def write_sr(path: Path) -> Path:
    ds = make_dataset(None, modality="SR", body_part=None, view=None, sop_class=BasicTextSRStorage)
    ds.ValueType = "CONTAINER"
    return write(ds, path)


def write_raw_dataset(path: Path) -> Path:
    """A dataset with no preamble, no DICM, no file meta (implicit VR LE): readable only with force."""
    ds = make_dataset(ramp())
    del ds.file_meta
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return path


def write_truncated(path: Path, keep: float = 0.5) -> Path:
    """A valid file cut to `keep` of its length (inside Pixel Data for images)."""
    write_image(path, ramp(256, 256))
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_compressed(path: Path, transfer_syntax: str, pixels: np.ndarray | None = None, **kw: Any) -> Path:
    """Compressed with pydicom's own encoders (RLE: pydicom; JPEG 2000: pylibjpeg-openjpeg)."""
    ds = make_dataset(ramp() if pixels is None else pixels, **kw)
    plugin = "pydicom" if transfer_syntax == pydicom.uid.RLELossless else ""
    extra = {"j2k_cr": [20]} if transfer_syntax == pydicom.uid.JPEG2000 else {}
    ds.compress(transfer_syntax, encoding_plugin=plugin, **extra)
    return write(ds, path)

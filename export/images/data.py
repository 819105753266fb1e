"""Training data for the image model: image folders with a labels table, mapped to the 14 findings.

Sources (shared/data/images, each folder's README gives provenance and licence):
- ``nih``: NIH ChestX-ray14 subset, `labels.csv` with pipe-separated `finding_labels` (text-mined).
- ``pediatric``: Kermany et al. paediatric NORMAL / PNEUMONIA (physician-graded).
- ``covid``: COVID-19 image data collection, image + free-text `clinical_notes` pairs.
- ``table``: any folder of PNG / JPEG / DICOM files with a CSV that has an `image` column and one
  column per CheXpert finding in CheXpert CSV values (1.0 / 0.0 / -1.0 / empty); DICOM files go
  through radedge's reader (`radedge.images.dicom.read_dicom`) with the manifest's VOI rule.

Every sample carries targets, a mask (1 where the source labels the finding; unlabelled findings are
masked out of the loss, never negative) and a patient group for the split. Images are read and
preprocessed with `radedge.images.preprocess`, the code the runtime uses, so the model is served
exactly as it was trained; augmentation acts on the 2-D [0, 1] image before that.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

from radedge.eval import CHESTXRAY14_TO_CHEXPERT, map_chestxray14
from radedge.images.preprocess import load_image, preprocess
from radedge.labels import FINDING_INDEX, FINDINGS, N_FINDINGS, csv_to_class, POSITIVE, NEGATIVE, UNCERTAIN, BLANK

from ..splits import VAL_PERCENT, is_validation, partition

# shared/data/images beside the checkout, or under $RADEDGE_SHARED (as tests/conftest.py finds it).
DEFAULT_IMAGES = Path(os.environ.get("RADEDGE_SHARED", Path(__file__).resolve().parents[3] / "shared")) \
    / "data" / "images"
DICOM_SUFFIXES = {".dcm", ".dicom", ""}

# Paediatric pneumonia set (Kermany et al., Cell 2018; shared/data/images/pediatric/README.md):
# label -> {finding: 0/1}; findings not listed are unknown (masked), not negative.
# NORMAL was read as normal by the graders, so every finding they could see is 0 (Support Devices
# is not graded); PNEUMONIA (bacterial or viral) is an opacity with a pneumonia diagnosis.
PEDIATRIC_TO_CHEXPERT: dict[str, dict[str, int]] = {
    "NORMAL": {name: int(name == "No Finding") for name in FINDINGS if name != "Support Devices"},
    "PNEUMONIA": {"No Finding": 0, "Pneumonia": 1, "Lung Opacity": 1},
}

# COVID-19 image data collection `finding` (Cohen et al. 2020, arXiv:2003.11597; weak mapping of
# shared/data/images/covid-cases/README.md): each comma-separated part -> CheXpert findings present.
# Infectious diagnoses are Pneumonia + Lung Opacity, ARDS and lipoid pneumonia are Lung Opacity;
# "todo" (not yet labelled upstream) is absent, so such rows are left out of supervised training.
_INFECTIOUS = ("COVID-19", "SARS", "Pneumocystis", "Streptococcus", "Klebsiella", "Legionella", "E.Coli",
               "Mycoplasma Bacterial Pneumonia", "Chlamydophila", "Varicella", "Influenza", "Bacterial",
               "Pneumonia")
COVID_FINDING_TO_CHEXPERT: dict[str, tuple[str, ...]] = {
    **{name: ("Pneumonia", "Lung Opacity") for name in _INFECTIOUS},
    "ARDS": ("Lung Opacity",),
    "Lipoid": ("Lung Opacity",),
    "No Finding": ("No Finding",),
}
# NIH findings implied by others (shared/data/images/README.md): these also make the lung opaque.
_NIH_OPACITY = ("Pneumonia", "Consolidation", "Edema")


@dataclass
class Sample:
    """One training image: where it is, what the source says about it, and how sure it is."""

    path: Path
    source: str
    patient: str
    targets: np.ndarray  # float32 [14], 0/1
    mask: np.ndarray  # float32 [14], 1 where the source labels the finding
    rates: np.ndarray = field(default_factory=lambda: np.zeros(N_FINDINGS, np.float32))  # GLS r
    note: str | None = None  # paired free-text report, when there is one


def _vectors(labelled: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
    targets = np.zeros(N_FINDINGS, np.float32)
    mask = np.zeros(N_FINDINGS, np.float32)
    for name, value in labelled.items():
        targets[FINDING_INDEX[name]] = float(value)
        mask[FINDING_INDEX[name]] = 1.0
    return targets, mask


def _rows(table: Path) -> list[dict[str, str]]:
    with open(table, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def nih_labels(finding_labels: str) -> dict[str, int]:
    """CheXpert findings labelled by one ChestX-ray14 `Finding Labels` cell (present 1, absent 0).

    ChestX-ray14's labeler covers the findings in CHESTXRAY14_TO_CHEXPERT, so those are 0 unless
    named; Enlarged Cardiomediastinum, Fracture and Support Devices are not labelled (masked).
    """
    names = {n.strip() for n in finding_labels.split("|") if n.strip()}
    present = {src: src in names for src in CHESTXRAY14_TO_CHEXPERT}
    labels = map_chestxray14(present)
    if names & set(_NIH_OPACITY):
        labels["Lung Opacity"] = 1
    labels["No Finding"] = int(names <= {"No Finding", "Normal"})
    return labels


def nih_samples(root: Path) -> list[Sample]:
    out = []
    for row in _rows(root / "labels.csv"):
        targets, mask = _vectors(nih_labels(row["finding_labels"]))
        out.append(Sample(root / row["image"], "nih", row["patient_id"], targets, mask))
    return out


def pediatric_samples(root: Path, split: str = "train") -> list[Sample]:
    out = []
    for row in _rows(root / "labels.csv"):
        if row["split"] != split:
            continue
        targets, mask = _vectors(PEDIATRIC_TO_CHEXPERT[row["label"]])
        out.append(Sample(root / row["image"], "pediatric", row["patient_key"], targets, mask))
    return out


def covid_labels(finding: str) -> dict[str, int] | None:
    """Findings labelled by a covid-cases `finding` cell; None when unlabelled (`todo`) or unknown.

    The diagnosis names what is present; only "No Finding" says what is absent.
    """
    parts = [p.strip() for p in finding.split(",") if p.strip()]
    if not parts or any(p not in COVID_FINDING_TO_CHEXPERT for p in parts):
        return None
    present = {name for p in parts for name in COVID_FINDING_TO_CHEXPERT[p]}
    if present == {"No Finding"}:
        return {"No Finding": 1, "Pneumonia": 0, "Lung Opacity": 0}
    return {"No Finding": 0, **{name: 1 for name in present}}


def covid_samples(root: Path) -> list[Sample]:
    out = []
    for row in _rows(root / "labels.csv"):
        labels = covid_labels(row["finding"])
        if labels is None:
            continue
        targets, mask = _vectors(labels)
        out.append(Sample(root / row["image"], "covid", row["patient_id"], targets, mask,
                          note=row["clinical_notes"] or None))
    return out


def table_samples(root: Path, table: str = "labels.csv", source: str = "table",
                  patient_column: str = "patient_id") -> list[Sample]:
    """A folder with a CheXpert-style labels table (one column per finding; missing column = masked).

    Uncertain cells (-1.0) are masked: what an uncertain label means for an image is the GLS rate's
    job, which needs the report; a table alone does not say.
    """
    out = []
    for row in _rows(root / table):
        labels = {}
        for name in FINDINGS:
            cls = csv_to_class(row.get(name))
            if cls in (POSITIVE, NEGATIVE):
                labels[name] = int(cls == POSITIVE)
            elif cls not in (BLANK, UNCERTAIN):
                raise ValueError(f"{root / table}: bad value for {name}")
        targets, mask = _vectors(labels)
        out.append(Sample(root / row["image"], source, row.get(patient_column) or row["image"], targets, mask,
                          note=row.get("report") or None))
    return out


SOURCES: dict[str, Callable[[Path], list[Sample]]] = {
    "nih": nih_samples, "pediatric": pediatric_samples, "covid": covid_samples, "table": table_samples,
}
DEFAULT_FOLDERS = {"nih": "nih", "pediatric": "pediatric", "covid": "covid-cases"}


def load_sources(images_root: Path, names: Sequence[str] = ("nih", "pediatric", "covid")) -> list[Sample]:
    """Samples of the named sources under shared/data/images (folder names as DEFAULT_FOLDERS)."""
    samples: list[Sample] = []
    for name in names:
        samples += SOURCES[name](images_root / DEFAULT_FOLDERS.get(name, name))
    return samples


# ---- patient-level split -------------------------------------------------------------------------
def split_by_patient(samples: Iterable[Sample], percent: int = VAL_PERCENT) -> tuple[list[Sample], list[Sample]]:
    """(train, validation): every image of a patient lands on the same side (export.splits.is_validation)."""
    return partition(samples, lambda s: is_validation(s.source, s.patient, percent))


# ---- reading and augmentation ----------------------------------------------------------------------
def read_image(path: Path, voi: bool = True) -> np.ndarray:
    """2-D float32 [0, 1] image: PNG / JPEG via load_image, DICOM via radedge's reader."""
    if path.suffix.lower() in DICOM_SUFFIXES:
        from radedge.images.dicom import read_dicom

        return read_dicom(path, voi=voi).image
    return load_image(path)


@dataclass(frozen=True)
class Augment:
    """Radiograph-safe augmentation of a 2-D [0, 1] image (before preprocess).

    Small rotation / scale / shift (patient positioning), brightness / contrast / gamma (exposure and
    processing differences between sites). No vertical flips (never seen), and no horizontal flips:
    the heart is on the left and laterality is part of the anatomy the model should learn (a flipped
    image looks like dextrocardia, and side markers are mirrored).
    """

    degrees: float = 7.0
    scale: float = 0.1
    shift: float = 0.06
    brightness: float = 0.08
    contrast: float = 0.15
    gamma: float = 0.2  # log-gamma range

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape
        angle = rng.uniform(-self.degrees, self.degrees)
        scale = math.exp(rng.uniform(-self.scale, self.scale))
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += (rng.uniform(-self.shift, self.shift) * w, rng.uniform(-self.shift, self.shift) * h)
        out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=0.0)
        out = np.clip(out, 0.0, 1.0) ** math.exp(rng.uniform(-self.gamma, self.gamma))
        out = (out - 0.5) * math.exp(rng.uniform(-self.contrast, self.contrast)) + 0.5
        out = out + rng.uniform(-self.brightness, self.brightness)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


def load_pixels(sample: Sample, spec: Mapping[str, Any], augment: Augment | None = None,
                rng: np.random.Generator | None = None) -> np.ndarray:
    """float32 [C, S, S] model input for one sample (augmented when `augment` and `rng` are given)."""
    image = read_image(sample.path, bool(spec.get("voi", True)))
    if augment is not None and rng is not None:
        image = augment(image, rng)
    return preprocess(image, spec)


def stack_labels(samples: Sequence[Sample]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """targets, mask, rates as float32 [n, 14] arrays."""
    return (np.stack([s.targets for s in samples]), np.stack([s.mask for s in samples]),
            np.stack([s.rates for s in samples]))


def with_rates(samples: Sequence[Sample], rates: np.ndarray) -> list[Sample]:
    """Copies of the samples with GLS rates [n, 14] set (the originals are left alone)."""
    return [replace(s, rates=np.asarray(r, np.float32)) for s, r in zip(samples, rates)]


__all__ = ["Augment", "DEFAULT_FOLDERS", "DEFAULT_IMAGES", "SOURCES", "Sample", "covid_labels", "covid_samples",
           "is_validation", "load_pixels", "load_sources", "nih_labels", "nih_samples", "pediatric_samples", "read_image",
           "split_by_patient", "stack_labels", "table_samples", "with_rates"]

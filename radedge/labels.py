"""The label schema: the 14 CheXpert findings, the four report classes, their CSV values and the GLS rate.

Everything that training and runtime must agree on about labels lives here, once. Mappings from other
label sets live beside their users: gold formats (ChestX-ray14, Open-i) in `radedge.eval`, training
sources (paediatric pneumonia, COVID-19 collection) in `export.images.data`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

FINDINGS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
N_FINDINGS = len(FINDINGS)
FINDING_INDEX: dict[str, int] = {name: i for i, name in enumerate(FINDINGS)}

# Report classes: index -> name; the order is the report model's output order.
CLASSES: tuple[str, ...] = ("not mentioned", "positive", "negative", "uncertain")
BLANK, POSITIVE, NEGATIVE, UNCERTAIN = range(4)
N_CLASSES = len(CLASSES)

# CheXpert labeler CSV convention for each class (None = empty cell).
CSV_VALUES: tuple[float | None, ...] = (None, 1.0, 0.0, -1.0)
_CSV_TO_CLASS = {None: BLANK, 1.0: POSITIVE, 0.0: NEGATIVE, -1.0: UNCERTAIN}

NO_FINDING = FINDING_INDEX["No Finding"]
SUPPORT_DEVICES = FINDING_INDEX["Support Devices"]
# The findings whose positive or uncertain class rules out No Finding (all but it and Support Devices).
ABNORMAL = [i for i in range(N_FINDINGS) if i not in (NO_FINDING, SUPPORT_DEVICES)]


def class_to_csv(cls: int) -> str:
    """CheXpert CSV cell text for a class index ('' for not mentioned)."""
    value = CSV_VALUES[cls]
    return "" if value is None else f"{value:.1f}"


def csv_to_class(cell: str | float | None) -> int:
    """Class index from a CheXpert CSV cell; raises ValueError on anything else."""
    if cell is None:
        return BLANK
    if isinstance(cell, str):
        cell = cell.strip()
        if cell == "":
            return BLANK
    try:
        value = float(cell)
    except ValueError as exc:
        raise ValueError(f"not a CheXpert label value: {cell!r}") from exc
    if value != value:  # NaN, as pandas writes empty cells
        return BLANK
    if value not in _CSV_TO_CLASS:
        raise ValueError(f"not a CheXpert label value: {cell!r}")
    return _CSV_TO_CLASS[value]


def apply_no_finding(classes: np.ndarray) -> np.ndarray:
    """Set No Finding the CheXpert way: positive when no finding other than Support Devices
    is positive or uncertain, else blank. Works on `[14]` or `[n, 14]` class arrays (in place)."""
    classes[..., NO_FINDING] = np.where(has_abnormal(classes), BLANK, POSITIVE)
    return classes


def has_abnormal(classes: np.ndarray) -> np.ndarray:
    """Whether a finding other than No Finding and Support Devices is positive or uncertain
    (`[14]` -> bool, `[n, 14]` -> bool `[n]`): what rules No Finding out."""
    return np.isin(classes[..., ABNORMAL], (POSITIVE, UNCERTAIN)).any(axis=-1)


# Generalized Label Smoothing rate from report class probabilities (DESIGN.md, "Rep-GLS").
# A hedged mention smooths the image target (up to +GLS_SMOOTH_MAX); a certain positive or negative
# mention sharpens it (down to -GLS_SHARPEN_MAX); a finding the report does not mention gives 0.
GLS_SMOOTH_MAX = 0.4
GLS_SHARPEN_MAX = 0.2


def gls_rates(probs: np.ndarray | Sequence) -> np.ndarray:
    """Per-finding GLS rate r in (-1, 1) from class probabilities `[..., 14, 4]`.

    r = GLS_SMOOTH_MAX * p(uncertain) - GLS_SHARPEN_MAX * (p(positive) + p(negative)).
    The rate is linear in the probabilities so that an unsure labeler gives a rate between the
    hedged and the certain ones, and a report that never mentions the finding gives r = 0.
    """
    p = np.asarray(probs, dtype=np.float32)
    if p.shape[-1] != N_CLASSES:
        raise ValueError(f"expected class probabilities with last axis {N_CLASSES}, got shape {p.shape}")
    r = GLS_SMOOTH_MAX * p[..., UNCERTAIN] - GLS_SHARPEN_MAX * (p[..., POSITIVE] + p[..., NEGATIVE])
    return np.clip(r, -0.99, 0.99).astype(np.float32)

"""What "labels like the shipped CPU model" means for the GPU paths, in one place: the bounds, the data
each side is scored on and the data int8 is calibrated on. Used by the GPU parity tests
(tests/test_gpu_parity.py), by the CPU tests of the TensorRT-ready graphs (tests/test_tensorrt_shipped.py:
a prepared graph that fails these bounds on onnxruntime never reaches a GPU) and by the GPU run
(benchmarks/gpu.py), so all three hold the GPU to the same numbers.

Reports are scored on the Open-i hold-out of export/splits.py and int8 is calibrated on the other dev
reports; images are scored on the NIH PNGs (ChestX-ray14 labels mapped to CheXpert) and calibrated on
the adult COVID-collection images: calibration never sees what it is scored on.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .data import DATA, openi_reports

LABEL_AGREEMENT = 0.99  # report labels (14 x reports) identical to the CPU int8 model
AUC_TOLERANCE = 0.01    # per-finding image AUC within this of the CPU int8 model's
CALIB_REPORTS = 256
ENGINES_VAR = "RADEDGE_GPU_TEST_ENGINES"  # plans per precision (fp16/, int8/) the GPU tests reuse when set
NIH = DATA / "images" / "nih"
IMAGE_CALIBRATION = DATA / "images" / "covid-cases"


def openi_split(holdout: bool) -> list[dict]:
    """Open-i dev reports in (holdout=True) or out of the export/splits.py hold-out; [] without the data."""
    from export.splits import is_holdout

    return [r for r in openi_reports() if is_holdout(r["id"]) == holdout]


def report_calibration(folder: Path, limit: int = CALIB_REPORTS) -> Path:
    """`folder` filled with `limit` reports from outside the hold-out, one .txt each (what --calib reads)."""
    rows = openi_split(holdout=False)[:limit]
    if not rows:
        raise FileNotFoundError(f"no Open-i reports under {DATA / 'openi'} to calibrate int8 on")
    folder.mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        (folder / f"{i}.txt").write_text(row["text"], encoding="utf-8")
    return folder


def nih() -> tuple[list[Path], np.ndarray]:
    """NIH image paths and CheXpert presence [n, 14] (-1 where the finding has no ChestX-ray14 source)."""
    from radedge.eval import CHESTXRAY14_TO_CHEXPERT, map_chestxray14
    from radedge.labels import FINDINGS

    paths, truth = [], []
    with open(NIH / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            present = set(row["finding_labels"].split("|"))
            mapped = map_chestxray14({name: name in present for name in CHESTXRAY14_TO_CHEXPERT})
            paths.append(NIH / row["image"])
            truth.append([mapped.get(name, -1) for name in FINDINGS])
    return paths, np.array(truth)


def label_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of (report, finding) labels that are identical."""
    return float(np.mean(np.asarray(reference) == np.asarray(candidate)))


def aucs(probs: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """Per-finding ROC AUC, for the findings with both classes present."""
    from sklearn.metrics import roc_auc_score

    out = {}
    for k in range(truth.shape[1]):
        y = truth[:, k]
        if y.min() >= 0 and 0 < y.sum() < len(y):
            out[k] = float(roc_auc_score(y, probs[:, k]))
    return out


def worst_auc_gap(reference: np.ndarray, candidate: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """(largest per-finding AUC difference, how many findings were compared); ValueError when none can be."""
    ref, cand = aucs(reference, truth), aucs(candidate, truth)
    if not ref:
        raise ValueError("no finding with both classes in the NIH labels")
    return max(abs(ref[k] - cand[k]) for k in ref), len(ref)

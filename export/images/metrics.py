"""Validation metrics of the image model: per-finding AUC per source, pneumonia accuracy, thresholds.

AUC is computed only where a source labels a finding with at least MIN_CLASS images of each class
(masked entries never count as negatives); otherwise the finding is reported as None.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

from radedge.labels import FINDING_INDEX, FINDINGS

from .data import Sample, stack_labels

MIN_CLASS = 5
PNEUMONIA = FINDING_INDEX["Pneumonia"]


def auc_per_finding(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for i, name in enumerate(FINDINGS):
        keep = mask[:, i] > 0
        y = targets[keep, i]
        if y.sum() < MIN_CLASS or (1 - y).sum() < MIN_CLASS:
            out[name] = None
            continue
        out[name] = round(float(roc_auc_score(y, probs[keep, i])), 4)
    return out


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: sum over 10 equal-width probability bins of (share of images in
    the bin) x |observed positive rate - mean predicted probability| (Naeini et al. 2015)."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    return float(sum(abs(y[which == b].mean() - p[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def reliability(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per non-empty equal-width bin: a reliability diagram."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    which = np.minimum((p * bins).astype(int), bins - 1)
    return [(float(p[which == b].mean()), float(y[which == b].mean()), int((which == b).sum()))
            for b in range(bins) if (which == b).any()]


def bootstrap_auc(y: np.ndarray, p: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the AUC (images resampled; resamples with one class are
    dropped). Vectorised: AUC = Mann-Whitney U / (n1 n0) from tie-averaged ranks of each resample."""
    rng = np.random.default_rng(seed)
    y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
    idx = rng.integers(0, len(y), (reps, len(y)))
    ys, ranks = y[idx], rankdata(p[idx], axis=1)
    n1 = ys.sum(axis=1)
    n0 = len(y) - n1
    ok = (n1 > 0) & (n0 > 0)
    auc = ((ranks * ys).sum(axis=1)[ok] - n1[ok] * (n1[ok] + 1) / 2) / (n1[ok] * n0[ok])
    lo, hi = np.percentile(auc, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def positives_per_normal(labels: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float | None:
    """Mean number of abnormal findings called positive (No Finding not counted; NaN = not reported)
    on the images the source calls normal (No Finding = 1); None without such images."""
    normal = (mask[:, FINDING_INDEX["No Finding"]] > 0) & (targets[:, FINDING_INDEX["No Finding"]] == 1)
    if not normal.any():
        return None
    calls = np.nan_to_num(np.delete(labels[normal], FINDING_INDEX["No Finding"], axis=1), nan=0.0)
    return round(float(calls.sum(axis=1).mean()), 4)


def mean_auc(aucs: dict[str, float | None]) -> float | None:
    values = [v for v in aucs.values() if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def choose_thresholds(probs: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Per finding, the threshold maximising Youden's J (sensitivity + specificity - 1) on the
    labelled validation images; 0.5 where there are too few of either class to choose."""
    out: dict[str, float] = {}
    for i, name in enumerate(FINDINGS):
        keep = mask[:, i] > 0
        y = targets[keep, i]
        if y.sum() < MIN_CLASS or (1 - y).sum() < MIN_CLASS:
            out[name] = 0.5
            continue
        fpr, tpr, thr = roc_curve(y, probs[keep, i])
        j = np.argmax(tpr - fpr)
        out[name] = round(float(np.clip(thr[j], 1e-4, 1 - 1e-4)), 4)
    return out


def per_source_metrics(samples: Sequence[Sample], probs: np.ndarray,
                       thresholds: dict[str, float] | None = None) -> dict[str, dict]:
    """{source: {n, auc: {finding: auc}, mean_auc, [pneumonia accuracy]}} on the given samples."""
    out: dict[str, dict] = {}
    for source in sorted({s.source for s in samples}):
        idx = [i for i, s in enumerate(samples) if s.source == source]
        targets, mask, _ = stack_labels([samples[i] for i in idx])
        p = probs[idx]
        aucs = auc_per_finding(p, targets, mask)
        row: dict = {"n": len(idx), "mean_auc": mean_auc(aucs), "auc": aucs}
        keep = mask[:, PNEUMONIA] > 0
        if keep.any():
            y = targets[keep, PNEUMONIA]
            row["pneumonia_accuracy@0.5"] = round(float(((p[keep, PNEUMONIA] >= 0.5) == y).mean()), 4)
            if thresholds:
                t = thresholds["Pneumonia"]
                row["pneumonia_accuracy@threshold"] = round(float(((p[keep, PNEUMONIA] >= t) == y).mean()), 4)
        out[source] = row
    return out


def auc_shift(a: dict[str, dict], b: dict[str, dict]) -> dict[str, dict[str, float]]:
    """|AUC a - AUC b| per source and reported finding (two per_source_metrics results)."""
    return {src: {f: round(abs(a[src]["auc"][f] - b[src]["auc"][f]), 4)
                  for f in FINDINGS if a[src]["auc"][f] is not None}
            for src in a}


def max_shift(shift: dict[str, dict[str, float]]) -> float:
    return max((v for d in shift.values() for v in d.values()), default=0.0)


__all__ = ["MIN_CLASS", "auc_per_finding", "auc_shift", "bootstrap_auc", "choose_thresholds", "ece", "max_shift",
           "mean_auc", "per_source_metrics", "positives_per_normal", "reliability"]

"""Calibration and operating points of the image model, fitted on the validation split.

Calibration (per finding, applied at run time by `radedge.images.calibration`): identity,
temperature, Platt and isotonic maps are each fitted and judged by their *out-of-fold* expected
calibration error (ECE, 10 equal-width bins) over FOLDS patient-grouped folds of the validation
images that label the finding; the lowest wins (ties go to the simpler map) and is refitted on all of
them. Judging on held-out folds keeps isotonic regression, which can fit any sample perfectly, from
winning by memorising it.

Operating point (the manifest's thresholds, on the calibrated scale), one documented rule:
- each reported abnormal finding gets the stricter of (a) Youden's J on the images that label it and
  (b) the threshold that leaves at most NORMAL_BUDGET / K positive calls per *normal* film on the
  validation normal films of *each* source that has at least MIN_NORMALS of them (NIH "No Finding",
  paediatric NORMAL; K = number of reported abnormal findings), i.e. specificity 1 - NORMAL_BUDGET / K
  on the normal films of every such source;
- No Finding itself: Youden's J.
NORMAL_BUDGET is 0.4, below the 0.5 target, as a margin for a new site.

`crossfit` repeats the whole fit (calibration and thresholds) on FOLDS - 1 folds and applies it to
the held-out fold, so the calibration error and false positives it reports are out of sample.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_curve

from radedge.images.calibration import apply_one, calibrate, logit
from radedge.labels import FINDING_INDEX, FINDINGS, NO_FINDING

from ..splits import salted_percent
from .data import Sample, stack_labels
from .metrics import MIN_CLASS, ece

FOLDS = 5
NORMAL_BUDGET = 0.4
MIN_NORMALS = 10  # normal films a source needs before the budget is checked on it alone
METHOD_ORDER = ("identity", "temperature", "platt", "isotonic")  # simplest first: ties keep the simpler


def fit_method(method: str, p: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One calibration map of `method` fitted to raw outputs p and 0/1 labels y."""
    if method == "identity":
        return {"method": "identity"}
    z = logit(p)
    if method == "temperature":
        def nll(log_t: float) -> float:
            q = np.clip(1 / (1 + np.exp(-z / np.exp(log_t))), 1e-7, 1 - 1e-7)
            return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
        return {"method": "temperature", "t": round(float(np.exp(minimize_scalar(nll, bounds=(-3, 3),
                                                                                  method="bounded").x)), 5)}
    if method == "platt":
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(z[:, None], y)
        return {"method": "platt", "a": round(float(lr.coef_[0, 0]), 5), "b": round(float(lr.intercept_[0]), 5)}
    if method == "isotonic":
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        x, v = iso.X_thresholds_, iso.y_thresholds_
        if len(x) < 2:
            x, v = np.array([0.0, 1.0]), np.array([float(v[0]), float(v[0])])
        return {"method": "isotonic", "x": [round(float(a), 6) for a in x], "y": [round(float(b), 6) for b in v]}
    raise ValueError(f"unknown calibration method {method!r}")


FOLD_SALT = "radedge-image-calibration-fold-v1:"


def folds_of(samples: Sequence[Sample], folds: int = FOLDS) -> np.ndarray:
    """Fold index per sample, by patient (export.splits.salted_percent, own salt), deterministic."""
    return np.array([salted_percent(f"{s.source}:{s.patient}", FOLD_SALT) % folds for s in samples])


def labelled(targets: np.ndarray, mask: np.ndarray, i: int) -> np.ndarray:
    return mask[:, i] > 0


def enough(y: np.ndarray) -> bool:
    return y.sum() >= MIN_CLASS and (1 - y).sum() >= MIN_CLASS


def choose_calibration(p: np.ndarray, y: np.ndarray, fold: np.ndarray) -> tuple[dict[str, Any], dict[str, float]]:
    """The map with the lowest out-of-fold ECE (refitted on everything) and each method's ECE."""
    errors: dict[str, float] = {}
    for method in METHOD_ORDER:
        out = np.empty_like(p, dtype=np.float64)
        for k in np.unique(fold):
            fit = fold != k
            if not enough(y[fit]):
                out[~fit] = p[~fit]
                continue
            out[~fit] = apply_one(p[~fit], fit_method(method, p[fit], y[fit]))
        errors[method] = round(ece(out, y), 4)
    best = min(METHOD_ORDER, key=lambda m: (errors[m], METHOD_ORDER.index(m)))
    return fit_method(best, p, y), errors


def youden(p: np.ndarray, y: np.ndarray) -> float:
    fpr, tpr, thr = roc_curve(y, p)
    return float(np.clip(thr[np.argmax(tpr - fpr)], 1e-4, 1.0))


def normal_films(targets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (mask[:, NO_FINDING] > 0) & (targets[:, NO_FINDING] == 1)


def choose_thresholds(cal: np.ndarray, targets: np.ndarray, mask: np.ndarray, reported: Sequence[str],
                      sources: np.ndarray) -> dict[str, float]:
    """Operating points on calibrated probabilities by the module's rule, the normal-film budget
    holding in each source with at least MIN_NORMALS normal films (pooled, the easy paediatric
    normals would hide the adult ones); 1.0 (never) for findings not reported."""
    normal = normal_films(targets, mask)
    abnormal = [f for f in reported if f != "No Finding"]
    spec = 1.0 - NORMAL_BUDGET / max(1, len(abnormal))
    out = {f: 1.0 for f in FINDINGS}
    for name in reported:
        i = FINDING_INDEX[name]
        keep = labelled(targets, mask, i)
        y, p = targets[keep, i], cal[keep, i]
        t = youden(p, y) if enough(y) else 0.5
        if name != "No Finding":
            for src in np.unique(sources):
                on_normal = cal[normal & keep & (sources == src), i]
                if len(on_normal) >= MIN_NORMALS:
                    t = max(t, float(np.quantile(on_normal, spec, method="higher")) + 1e-6)
        out[name] = round(float(min(t, 1.0)), 6)
    return out


def fit_operating(raw: np.ndarray, samples: Sequence[Sample], reported: Sequence[str]
                  ) -> tuple[dict[str, dict], dict[str, float], dict[str, dict[str, float]]]:
    """(calibration per reported finding, thresholds, out-of-fold ECE per method and finding)."""
    targets, mask, _ = stack_labels(samples)
    fold = folds_of(samples)
    calibration, errors = {}, {}
    for name in reported:
        i = FINDING_INDEX[name]
        keep = labelled(targets, mask, i)
        if not enough(targets[keep, i]):
            calibration[name] = {"method": "identity"}
            continue
        calibration[name], errors[name] = choose_calibration(raw[keep, i], targets[keep, i], fold[keep])
    cal = calibrate(raw, calibration, FINDINGS)
    sources = np.array([s.source for s in samples])
    return calibration, choose_thresholds(cal, targets, mask, reported, sources), errors


def crossfit(raw: np.ndarray, samples: Sequence[Sample], reported: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (calibrated probabilities, labels) [n, 14]: each fold scored by calibration and
    thresholds fitted on the other folds (NaN for findings not reported)."""
    fold = folds_of(samples)
    cal = np.full(raw.shape, np.nan, np.float32)
    labels = np.full(raw.shape, np.nan, np.float32)
    cols = [FINDING_INDEX[f] for f in reported]
    for k in np.unique(fold):
        fit = np.flatnonzero(fold != k)
        held = np.flatnonzero(fold == k)
        calibration, thresholds, _ = fit_operating(raw[fit], [samples[i] for i in fit], reported)
        c = calibrate(raw[held], calibration, FINDINGS)
        t = np.array([thresholds[f] for f in FINDINGS], np.float32)
        cal[np.ix_(held, cols)] = c[:, cols]
        labels[np.ix_(held, cols)] = (c >= t)[:, cols]
    return cal, labels


__all__ = ["FOLDS", "METHOD_ORDER", "MIN_NORMALS", "NORMAL_BUDGET", "choose_calibration", "choose_thresholds", "crossfit",
           "fit_method", "fit_operating", "folds_of", "normal_films"]

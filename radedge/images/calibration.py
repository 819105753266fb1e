"""Per-finding probability calibration of an image model, as the manifest's `calibration` says.

The network's sigmoid outputs rank images well but are not probabilities one can read off (training
mixes sources with very different prevalences, and label smoothing pulls outputs towards 1/2). The
trainer fits one monotone map per finding on validation images (`export/images/calibrate.py`) and
records it; the runtime applies it here, before the thresholds (which are on the calibrated scale).

Methods (one dict per finding, in the manifest's `calibration`):
- ``{"method": "identity"}``: the output as it is.
- ``{"method": "temperature", "t": T}``: sigmoid(logit(p) / T) (Guo et al. 2017).
- ``{"method": "platt", "a": a, "b": b}``: sigmoid(a * logit(p) + b) (Platt 1999).
- ``{"method": "isotonic", "x": [...], "y": [...]}``: piecewise-linear through the fitted isotonic
  regression's knots (x increasing, y non-decreasing), flat outside them (Zadrozny & Elkan 2002).
Findings without an entry are left as they are. NaN stays NaN.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

METHODS = ("identity", "temperature", "platt", "isotonic")
_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def check_calibration(spec: Mapping[str, Any]) -> None:
    """ValueError unless `spec` is one finding's calibration dict as documented above."""
    method = spec.get("method")
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
    if method == "temperature" and not float(spec["t"]) > 0:
        raise ValueError("temperature calibration needs t > 0")
    if method == "platt":
        float(spec["a"]), float(spec["b"])
    if method == "isotonic":
        x, y = np.asarray(spec["x"], float), np.asarray(spec["y"], float)
        if x.ndim != 1 or x.shape != y.shape or len(x) < 2 or np.any(np.diff(x) < 0) or np.any(np.diff(y) < 0):
            raise ValueError("isotonic calibration needs >= 2 knots, x increasing and y non-decreasing")


def apply_one(p: np.ndarray, spec: Mapping[str, Any]) -> np.ndarray:
    """One finding's calibrated probabilities (float64, same shape as `p`)."""
    method = spec.get("method", "identity")
    p = np.asarray(p, dtype=np.float64)
    if method == "identity":
        out = p
    elif method == "temperature":
        out = sigmoid(logit(p) / float(spec["t"]))
    elif method == "platt":
        out = sigmoid(float(spec["a"]) * logit(p) + float(spec["b"]))
    elif method == "isotonic":
        out = np.interp(p, np.asarray(spec["x"], float), np.asarray(spec["y"], float))
    else:
        raise ValueError(f"unknown calibration method {method!r}")
    return np.where(np.isnan(p), np.nan, out)


def calibrate(probs: np.ndarray, calibration: Mapping[str, Mapping[str, Any]] | None,
              labels: Sequence[str]) -> np.ndarray:
    """[n, len(labels)] probabilities -> calibrated float32, column by column as `calibration` says."""
    out = np.array(probs, dtype=np.float32, copy=True)
    for i, name in enumerate(labels):
        if calibration and name in calibration:
            out[:, i] = apply_one(out[:, i], calibration[name])
    return out


__all__ = ["METHODS", "apply_one", "calibrate", "check_calibration", "logit", "sigmoid"]

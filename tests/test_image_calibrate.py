"""export/images/calibrate.py: the calibration choice and the operating-point rule, on synthetic scores."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from export.images.calibrate import NORMAL_BUDGET, choose_calibration, crossfit, fit_operating
from export.images.data import Sample
from export.images.metrics import bootstrap_auc, ece, positives_per_normal
from radedge.images.calibration import apply_one
from radedge.labels import FINDING_INDEX, N_FINDINGS

REPORTED = ["No Finding", "Pneumonia", "Edema"]


def _samples(n: int, rng: np.random.Generator) -> tuple[list[Sample], np.ndarray]:
    """Two sources; raw outputs that rank well but are squeezed towards 0.5 (uncalibrated)."""
    samples, raw = [], np.full((n, N_FINDINGS), 0.5, np.float32)
    for i in range(n):
        sick = rng.random() < 0.4
        t, m = np.zeros(N_FINDINGS, np.float32), np.zeros(N_FINDINGS, np.float32)
        for f in REPORTED:
            m[FINDING_INDEX[f]] = 1
        t[FINDING_INDEX["Pneumonia"]] = sick
        t[FINDING_INDEX["Edema"]] = sick and rng.random() < 0.5
        t[FINDING_INDEX["No Finding"]] = not sick
        raw[i] = 0.5 + 0.15 * (t - 0.5) + rng.normal(0, 0.05, N_FINDINGS)
        samples.append(Sample(Path(f"{i}.png"), "a" if i % 2 else "b", str(i), t, m))
    return samples, np.clip(raw, 0.01, 0.99)


def test_calibration_is_chosen_out_of_fold_and_helps():
    rng = np.random.default_rng(0)
    samples, raw = _samples(400, rng)
    y = np.array([s.targets[FINDING_INDEX["Pneumonia"]] for s in samples])
    fold = np.arange(len(y)) % 5
    spec, errors = choose_calibration(raw[:, FINDING_INDEX["Pneumonia"]], y, fold)
    assert set(errors) == {"identity", "temperature", "platt", "isotonic"}
    assert spec["method"] != "identity" and errors[spec["method"]] == min(errors.values())
    calibrated = apply_one(raw[:, FINDING_INDEX["Pneumonia"]], spec)
    assert ece(calibrated, y) < ece(raw[:, FINDING_INDEX["Pneumonia"]], y) / 2


def test_operating_points_keep_false_positives_on_normal_films_within_budget():
    rng = np.random.default_rng(1)
    samples, raw = _samples(600, rng)
    calibration, thresholds, _ = fit_operating(raw, samples, REPORTED)
    assert set(calibration) == set(REPORTED) and thresholds["Fracture"] == 1.0
    cal, labels = crossfit(raw, samples, REPORTED)
    targets = np.stack([s.targets for s in samples])
    mask = np.stack([s.mask for s in samples])
    assert np.isnan(labels[:, FINDING_INDEX["Fracture"]]).all()
    assert positives_per_normal(labels, targets, mask) <= NORMAL_BUDGET + 0.1  # out of fold, with noise


def test_bootstrap_interval_brackets_the_auc():
    rng = np.random.default_rng(2)
    y = (rng.random(300) < 0.3).astype(float)
    lo, hi = bootstrap_auc(y, rng.random(300) + 0.5 * y)
    assert 0.5 < lo < hi < 1.0
    lo, hi = bootstrap_auc(y, rng.random(300))
    assert lo < 0.5 < hi

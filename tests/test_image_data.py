"""Image training data (export/images/data.py, rates.py): label mapping, masking, patient split, rates."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.paths import need_data
from export.images.data import (Augment, covid_labels, is_validation, load_sources, nih_labels, split_by_patient,
                                table_samples)
from export.images.rates import SOURCE_PRIORS, report_rates
from radedge.labels import FINDING_INDEX, GLS_SHARPEN_MAX, GLS_SMOOTH_MAX, N_FINDINGS, NEGATIVE, POSITIVE


def test_nih_labels_map_and_imply_opacity():
    labels = nih_labels("Effusion|Pneumonia|Hernia")
    assert labels["Pleural Effusion"] == 1 and labels["Pneumonia"] == 1 and labels["Lung Opacity"] == 1
    assert labels["No Finding"] == 0 and labels["Cardiomegaly"] == 0
    for unlabelled in ("Enlarged Cardiomediastinum", "Fracture", "Support Devices"):
        assert unlabelled not in labels  # masked, not negative
    normal = nih_labels("No Finding")
    assert normal["No Finding"] == 1 and normal["Atelectasis"] == 0


def test_covid_labels():
    assert covid_labels("COVID-19, ARDS") == {"No Finding": 0, "Pneumonia": 1, "Lung Opacity": 1}
    assert covid_labels("Lipoid") == {"No Finding": 0, "Lung Opacity": 1}
    assert covid_labels("No Finding") == {"No Finding": 1, "Pneumonia": 0, "Lung Opacity": 0}
    assert covid_labels("todo") is None and covid_labels("") is None


def test_table_masks_blank_and_uncertain(tmp_path: Path):
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "patient_id", "Pneumonia", "Edema", "Cardiomegaly"])
        w.writerow(["a.dcm", "p1", "1.0", "-1.0", ""])
    (s,) = table_samples(tmp_path)
    assert s.mask[FINDING_INDEX["Pneumonia"]] == 1 and s.targets[FINDING_INDEX["Pneumonia"]] == 1
    assert s.mask[FINDING_INDEX["Edema"]] == 0 and s.mask[FINDING_INDEX["Cardiomegaly"]] == 0
    assert s.mask.sum() == 1


def test_split_is_deterministic_and_by_patient():
    assert is_validation("nih", "123") == is_validation("nih", "123")
    root = need_data("images")
    samples = load_sources(root)
    train, val = split_by_patient(samples)
    assert {(s.source, s.patient) for s in train}.isdisjoint({(s.source, s.patient) for s in val})
    assert 0.1 < len(val) / len(samples) < 0.3
    assert [s.path for s in split_by_patient(samples)[1]] == [s.path for s in val]


def test_report_rates_rules():
    prior = SOURCE_PRIORS["covid"]
    targets = np.zeros(N_FINDINGS, np.float32)
    targets[FINDING_INDEX["Pneumonia"]] = 1
    classes = np.zeros(N_FINDINGS, np.int8)
    rates = np.zeros(N_FINDINGS, np.float32)
    p, lo, nf = FINDING_INDEX["Pneumonia"], FINDING_INDEX["Lung Opacity"], FINDING_INDEX["No Finding"]
    classes[p], rates[p] = POSITIVE, -GLS_SHARPEN_MAX  # certain and agreeing: sharpen
    classes[lo], rates[lo] = NEGATIVE, -GLS_SHARPEN_MAX  # certain, but the label says opacity
    classes[nf], rates[nf] = POSITIVE, -GLS_SHARPEN_MAX
    targets[lo] = 1
    r = report_rates(prior, targets, classes, rates)
    assert r[p] == pytest.approx(-GLS_SHARPEN_MAX)
    assert r[lo] == pytest.approx(GLS_SMOOTH_MAX)  # the report says no opacity, the label says opacity
    assert r[nf] == pytest.approx(prior[nf])  # No Finding always takes the prior
    assert r[FINDING_INDEX["Edema"]] == pytest.approx(prior[FINDING_INDEX["Edema"]])  # not mentioned


def test_augment_keeps_range_and_shape():
    img = np.random.default_rng(0).random((50, 40)).astype(np.float32)
    out = Augment()(img, np.random.default_rng(1))
    assert out.shape == img.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1

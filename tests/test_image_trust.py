"""What an image model may claim: only trained findings, calibrated probabilities, and an
out-of-distribution status for inputs unlike its training films (radedge.images.calibration / ood)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tests.dicom_factory import ramp, write_image

from radedge import ImageScorer
from radedge.cli import main
from radedge.errors import ManifestError
from radedge.images.calibration import apply_one, calibrate, check_calibration
from radedge.images.ood import LAYOUT_GRID, STATISTICS, OODCheck, image_statistics, layout_features, mahalanobis
from radedge.images.preprocess import preprocess
from radedge.labels import FINDINGS
from radedge.manifest import Manifest, file_hashes

TRAINED = ["No Finding", "Cardiomegaly", "Pneumonia"]


def _edit(folder: Path, **fields) -> Path:
    m = Manifest.read(folder)
    for k, v in fields.items():
        setattr(m, k, v)
    m.validate()
    m.write(folder)
    return folder


# ---- calibration ------------------------------------------------------------------------------------
def test_calibration_methods():
    p = np.array([0.01, 0.2, 0.5, 0.8, 0.99, np.nan])
    np.testing.assert_allclose(apply_one(p, {"method": "identity"})[:5], p[:5])
    t = apply_one(p, {"method": "temperature", "t": 2.0})
    assert t[2] == pytest.approx(0.5) and 0.2 < t[1] < 0.5 and np.isnan(t[5])  # T > 1 softens
    platt = apply_one(p, {"method": "platt", "a": 1.0, "b": np.log(3)})  # odds x 3
    assert platt[2] == pytest.approx(0.75)
    iso = apply_one(p, {"method": "isotonic", "x": [0.1, 0.9], "y": [0.0, 1.0]})
    assert iso[0] == 0.0 and iso[4] == 1.0 and iso[2] == pytest.approx(0.5) and np.isnan(iso[5])
    out = calibrate(np.full((2, 14), 0.5, np.float32), {"Pneumonia": {"method": "platt", "a": 1, "b": 1}}, FINDINGS)
    assert out[0, FINDINGS.index("Pneumonia")] > 0.7 and out[0, 0] == 0.5


@pytest.mark.parametrize("bad", [{"method": "magic"}, {"method": "temperature", "t": 0},
                                 {"method": "isotonic", "x": [0.5, 0.1], "y": [0, 1]}, {"method": "platt", "a": 1}])
def test_bad_calibration_is_refused(bad, tiny_image_model):
    with pytest.raises((ValueError, KeyError)):
        check_calibration(bad)
    with pytest.raises(ManifestError):
        _edit(tiny_image_model, calibration={"Pneumonia": bad})


def test_manifest_refuses_unknown_or_untrained_findings(tiny_image_model):
    with pytest.raises(ManifestError, match="trained_findings"):
        _edit(tiny_image_model, trained_findings=["Pneumonia", "Unicorn"])
    with pytest.raises(ManifestError, match="not trained"):
        _edit(tiny_image_model, trained_findings=["Pneumonia"], calibration={"Fracture": {"method": "identity"}})


# ---- findings not trained ---------------------------------------------------------------------------
def test_untrained_findings_are_not_available(tiny_image_model):
    before = ImageScorer.load(tiny_image_model)(ramp(top=255, dtype=np.uint8))  # one image, one result
    _edit(tiny_image_model, trained_findings=TRAINED,
          calibration={"Pneumonia": {"method": "platt", "a": 1.0, "b": 2.0}})
    result = ImageScorer.load(tiny_image_model)(ramp(top=255, dtype=np.uint8))  # one image, one result
    trained = np.array([f in TRAINED for f in FINDINGS])
    assert np.all(np.isnan(result.probabilities[~trained])) and np.all(np.isnan(result.labels[~trained]))
    assert list(result.findings()) == TRAINED
    assert set(result.positive()) <= set(TRAINED)
    i = FINDINGS.index("Pneumonia")
    assert result.probabilities[i] > before.probabilities[i]  # calibration applied
    assert result.probabilities[1 - 1] == pytest.approx(before.probabilities[0])  # identity elsewhere


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_records_leave_untrained_findings_empty(tiny_image_model, tmp_path, suffix):
    _edit(tiny_image_model, trained_findings=TRAINED)
    write_image(tmp_path / "in" / "a.dcm")
    out = tmp_path / f"out{suffix}"
    result = CliRunner().invoke(main, ["score-dicoms", str(tmp_path / "in"), "-o", str(out), "--model",
                                       str(tiny_image_model), "--workers", "0", "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    if suffix == ".csv":
        row = next(csv.DictReader(open(out, newline="")))
        assert row["Fracture"] == "" and row["label:Fracture"] == "" and row["Pneumonia"] != ""
        assert row["label:Pneumonia"] in ("0", "1")
    else:
        rec = json.loads(out.read_text().splitlines()[0])
        assert rec["probabilities"]["Fracture"] is None and rec["labels"]["Support Devices"] is None
        assert isinstance(rec["probabilities"]["Pneumonia"], float) and rec["labels"]["Pneumonia"] in (0, 1)


# ---- out of distribution ------------------------------------------------------------------------------
SPEC = {"size": 32, "resize": "letterbox", "channels": 3, "mean": [0.5], "std": [0.25], "voi": True}


def _chest_like(rng: np.random.Generator) -> np.ndarray:
    """Dark lungs either side of a bright middle band, with a little noise."""
    img = np.full((40, 40), 0.3) + rng.normal(0, 0.02, (40, 40))
    img[:, 17:23] += 0.4
    return np.clip(img, 0, 1).astype(np.float32)


def test_image_statistics_tell_inverted_and_noise_apart():
    rng = np.random.default_rng(0)
    chest = image_statistics(preprocess(_chest_like(rng), SPEC), SPEC)
    inverted = image_statistics(preprocess(1 - _chest_like(rng), SPEC), SPEC)
    noise = image_statistics(preprocess(rng.random((40, 40)).astype(np.float32), SPEC), SPEC)
    i = STATISTICS.index("mediastinum_contrast")
    assert chest[i] > 0.2 and inverted[i] < -0.2
    assert noise[STATISTICS.index("fine_grain")] > 5 * chest[STATISTICS.index("fine_grain")]


def test_layout_features_see_where_the_bright_parts_are():
    rng = np.random.default_rng(0)
    chest = layout_features(preprocess(_chest_like(rng), SPEC), SPEC)
    assert chest.shape == (LAYOUT_GRID ** 2 + len(STATISTICS),)
    grid = chest[:LAYOUT_GRID ** 2].reshape(LAYOUT_GRID, LAYOUT_GRID)
    assert grid[:, 1:3].mean() > grid[:, [0, 3]].mean() + 0.05  # the bright middle band
    rotated = layout_features(preprocess(np.ascontiguousarray(np.rot90(_chest_like(rng))), SPEC), SPEC)
    assert np.abs(rotated[:LAYOUT_GRID ** 2] - chest[:LAYOUT_GRID ** 2]).max() > 0.05


def test_unknown_ood_part_is_refused():
    with pytest.raises(ValueError, match="unknown out-of-distribution parts"):
        OODCheck({"thresholds": {"embedding": 1.0, "astrology": 1.0}}, {}, SPEC)


def test_mahalanobis_is_euclidean_when_whitened():
    x = np.array([[3.0, 4.0]])
    assert mahalanobis(x, np.zeros(2), np.eye(2))[0] == pytest.approx(5.0)
    assert mahalanobis(x, np.zeros(2), np.diag([0.5, 0.25]))[0] == pytest.approx(np.hypot(1.5, 1.0))


def _with_ood(folder: Path) -> Path:
    """Fit the check on chest-like arrays, the way export/images/ood.py does (the tiny graph's
    embedding is its pooled channels)."""
    rng = np.random.default_rng(0)
    pixels = np.stack([preprocess(_chest_like(rng), SPEC) for _ in range(60)])
    emb = pixels.mean(axis=(2, 3)) + rng.normal(0, 0.01, (60, 3))
    stats = np.stack([image_statistics(p, SPEC) for p in pixels])
    arrays = {}
    thresholds = {}
    for name, x in (("embedding", emb), ("statistics", stats)):
        mean = x.mean(axis=0)
        whiten = np.diag(1 / (x.std(axis=0) + 1e-3))
        arrays[f"{name}_mean"], arrays[f"{name}_whiten"] = mean, whiten
        thresholds[name] = float(np.quantile(mahalanobis(x, mean, whiten), 0.99)) * 1.5
    np.savez(folder / "ood.npz", **arrays)
    m = Manifest.read(folder)
    m.files = file_hashes(folder, ["model.onnx", "ood.npz"])
    m.ood = {"file": "ood.npz", "embedding_output": "probs", "thresholds": thresholds, "flag_above": 1.0}
    m.write(folder)
    return folder


def test_out_of_distribution_inputs_get_no_findings(tiny_image_model):
    # The tiny graph has no embedding output: the check reads `probs`, which is still [n, 14] per input;
    # refit the embedding part on those outputs so that the whole path runs through the scorer.
    folder = _with_ood(tiny_image_model)
    scorer = ImageScorer.load(folder)
    rng = np.random.default_rng(1)
    chests = [_chest_like(rng) for _ in range(20)]
    raw = scorer.run_model(np.stack([preprocess(c, SPEC) for c in chests]))["probs"]
    m = Manifest.read(folder)
    with np.load(folder / "ood.npz") as data:
        arrays = {k: data[k] for k in data.files}
    arrays["embedding_mean"] = raw.mean(axis=0)
    arrays["embedding_whiten"] = np.diag(1 / (raw.std(axis=0) + 0.05))
    m.ood["thresholds"]["embedding"] = float(mahalanobis(raw, arrays["embedding_mean"], arrays["embedding_whiten"]).max()) * 3
    np.savez(folder / "ood.npz", **arrays)
    m.files = file_hashes(folder, ["model.onnx", "ood.npz"])
    m.write(folder)
    scorer = ImageScorer.load(folder)
    inputs = [_chest_like(rng) for _ in range(5)] + [rng.random((40, 40)).astype(np.float32),
                                                      np.zeros((40, 40), np.float32), 1 - _chest_like(rng)]
    results = scorer(inputs)
    assert [r.status for r in results[:5]] == ["scored"] * 5
    assert all(r.ood_score is not None and r.ood_score <= 1 for r in results[:5])
    for r in results[5:]:
        assert r.status == "out-of-distribution" and r.ood_score > 1
        assert r.probabilities is None and r.findings() == {} and "out of distribution" in r.reason
    assert OODCheck.load(folder, m.ood, SPEC).flagged(np.array([0.5, 2.0])).tolist() == [False, True]


def test_ood_file_is_checked(tiny_image_model):
    folder = _with_ood(tiny_image_model)
    (folder / "ood.npz").write_bytes(b"tampered")
    from radedge.errors import ChecksumError

    with pytest.raises(ChecksumError):
        ImageScorer.load(folder)

"""ReportLabeler: rules and ONNX engines, per-report errors, empty reports, windows, threads."""
from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from radedge import ReportLabeler
from radedge.errors import ChecksumError, DeviceUnavailableError, InputError, ModelNotFoundError
from radedge.labels import BLANK, FINDING_INDEX, FINDINGS, NO_FINDING, apply_no_finding, gls_rates
from radedge.manifest import Manifest
from radedge.reports.labeler import ReportResult, decode_report
from radedge.reports.windows import ReportWindows, combine, softmax

REPORTS = [
    "FINDINGS: Small left pleural effusion. No pneumothorax.\n\nIMPRESSION: Effusion.",
    "Heart size is normal. Lungs are clear. No acute cardiopulmonary process.",
    "Possible right lower lobe pneumonia.",
    "Stable cardiomegaly. Mild pulmonary edema.",
]
LONG = "FINDINGS: " + " ".join(["heart size is normal there is a small left pleural effusion"] * 30) \
       + " possible right lower lobe pneumonia"


def label_of(result: ReportResult, finding: str) -> float | None:
    return result.labels[finding]


@pytest.fixture(scope="module")
def rules() -> ReportLabeler:
    return ReportLabeler.load("rules")


@pytest.fixture
def tiny(tiny_report_model: Path) -> ReportLabeler:
    return ReportLabeler.load(tiny_report_model, batch_size=4)


@pytest.fixture
def invariant_model(tmp_path: Path) -> Path:
    """A tiny model whose window logits, like a real encoder's, do not depend on batch padding."""
    from tests.tiny_models import write_report_model

    return write_report_model(tmp_path / "tiny-masked", masked_mean=True)


# ---- rules -------------------------------------------------------------------------------------
def test_rules_labels_probs_and_rates(rules: ReportLabeler) -> None:
    results = rules(REPORTS)
    assert [r.id for r in results] == [0, 1, 2, 3]
    effusion, normal, pneumonia, heart = results
    assert label_of(effusion, "Pleural Effusion") == 1.0 and label_of(effusion, "Pneumothorax") == 0.0
    assert label_of(normal, "No Finding") == 1.0
    assert label_of(pneumonia, "Pneumonia") == -1.0
    assert label_of(heart, "Cardiomegaly") == 1.0 and label_of(heart, "Edema") == 1.0
    for r in results:
        assert r.error is None and r.ok
        assert r.classes.dtype == np.int8 and r.classes.shape == (14,)
        assert r.probs.dtype == np.float32 and r.probs.shape == (14, 4)
        assert np.array_equal(r.probs.argmax(-1), r.classes)  # one-hot
        assert np.allclose(r.rates, gls_rates(r.probs)) and r.rates.dtype == np.float32
        assert list(r.labels) == list(FINDINGS)
        # evidence: exactly the labelled findings, each with spans into the report as given
        assert set(r.evidence) == {f for f, v in r.labels.items() if v is not None}
        text = REPORTS[r.id]
        assert all(0 <= s < e <= len(text) for spans in r.evidence.values() for s, e in spans)
    [(s, e)] = [span for span in effusion.evidence["Pleural Effusion"]]
    assert REPORTS[0][s:e].lower().endswith("effusion")


def test_empty_and_unreadable_reports_are_blank_not_fatal(rules: ReportLabeler) -> None:
    items = ["", "   \n", "INDICATION: cough", b"Small right pleural effusion.", b"bad \xff\xfe bytes",
             None, InputError("line 3: not JSON"), REPORTS[0]]
    results = rules(items, ids=list("abcdefgh"))
    assert [r.id for r in results] == list("abcdefgh")
    for r in results[:3]:  # nothing to read: all blank, no error
        assert r.error is None and not r.classes.any() and set(r.labels.values()) == {None}
        assert not r.rates.any()
    assert label_of(results[3], "Pleural Effusion") == 1.0  # bytes decode as UTF-8
    assert results[4].error.startswith("ReportDecodeError: not valid UTF-8 at byte 4")
    assert results[5].error.startswith("InputError: a report must be str or bytes")
    assert results[6].error == "InputError: line 3: not JSON"
    for r in results[4:7]:
        assert not r.classes.any() and r.probs[:, BLANK].all()
    assert label_of(results[7], "Pleural Effusion") == 1.0  # later reports still labelled
    assert results[4].length == len(b"bad \xff\xfe bytes") and results[3].length == 29


def test_decode_report_is_strict_utf8_and_drops_a_bom() -> None:
    assert decode_report("é") == "é"
    assert decode_report("\ufeffno bom".encode("utf-8")) == "no bom"
    with pytest.raises(InputError):
        decode_report(b"\xe9t\xe9")  # Latin-1 is not guessed


def test_ids_must_match_reports(rules: ReportLabeler) -> None:
    with pytest.raises(ValueError):
        rules(REPORTS, ids=[1])
    assert rules([]) == []


# ---- ONNX model --------------------------------------------------------------------------------
def test_model_probs_are_the_combined_windows(invariant_model: Path) -> None:
    labeler = ReportLabeler.load(invariant_model, batch_size=4)
    results = labeler(REPORTS + [LONG, ""])
    windows = ReportWindows.from_model_dir(invariant_model).encode([LONG])
    assert len(windows) > 3  # max_length 32: the long report is read in windows
    alone = np.concatenate([labeler.backend.run({"input_ids": w.ids[None], "attention_mask": np.ones_like(w.ids[None])})
                            ["logits"] for w in windows])
    window_probs = softmax(alone)
    assert np.allclose(results[4].probs, combine(window_probs), atol=1e-5)
    assert not np.allclose(results[4].probs, window_probs.mean(0), atol=1e-3)  # not an average
    for r in results[:5]:
        assert np.allclose(r.probs.sum(-1), 1.0, atol=1e-5)
        assert np.array_equal(r.classes, apply_no_finding(r.probs.argmax(-1).astype(np.int8)))
        assert np.allclose(r.rates, gls_rates(r.probs))
    assert not results[5].classes.any() and results[5].error is None  # empty: blank, model not run


def test_batch_size_and_order_do_not_change_results(invariant_model: Path) -> None:
    texts = REPORTS + [LONG] + REPORTS[::-1]
    one = ReportLabeler.load(invariant_model, batch_size=1)(texts)
    many = ReportLabeler.load(invariant_model, batch_size=64)(texts)
    for a, b in zip(one, many):
        assert np.array_equal(a.classes, b.classes)
        assert np.allclose(a.probs, b.probs, atol=1e-5)
    reordered = ReportLabeler.load(invariant_model, batch_size=3)(texts[::-1])[::-1]
    assert all(np.allclose(a.probs, b.probs, atol=1e-5) for a, b in zip(one, reordered))


def test_no_finding_follows_the_other_findings(tiny: ReportLabeler) -> None:
    for r in tiny(REPORTS):
        abnormal = any(c in (1, 3) for i, c in enumerate(r.classes) if i not in (NO_FINDING, FINDING_INDEX[
            "Support Devices"]))
        assert r.classes[NO_FINDING] == (0 if abnormal else 1)


@pytest.mark.parametrize("engine", ["rules", "onnx"])
def test_safe_from_several_threads(engine: str, rules: ReportLabeler, invariant_model: Path) -> None:
    labeler = rules if engine == "rules" else ReportLabeler.load(invariant_model, batch_size=4)
    texts = [f"{t} {i}" for i in range(25) for t in REPORTS] + [LONG] * 5
    expected = labeler(texts)
    chunks = [texts[i::6] for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(labeler, chunks * 3))
    for k, results in enumerate(got):
        want = expected[k % 6::6]
        assert len(results) == len(want)
        for a, b in zip(results, want):
            assert np.array_equal(a.classes, b.classes) and np.allclose(a.probs, b.probs, atol=1e-5)


# ---- loading -----------------------------------------------------------------------------------
def test_load_refuses_missing_and_tampered_models(tiny_report_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        ReportLabeler.load(tmp_path / "nowhere")
    with pytest.raises(ValueError):
        ReportLabeler.load(tiny_report_model, batch_size=0)
    with open(tiny_report_model / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ChecksumError):
        ReportLabeler.load(tiny_report_model)


def test_load_refuses_an_absent_device(tiny_report_model: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceUnavailableError):
        ReportLabeler.load(tiny_report_model, device="cuda")


def test_load_refuses_an_image_model(tiny_image_model: Path) -> None:
    with pytest.raises(Exception, match="image-findings"):
        ReportLabeler.load(tiny_image_model)


def test_manifest_windows_reach_the_labeler(tiny: ReportLabeler, tiny_report_model: Path) -> None:
    m = Manifest.read(tiny_report_model)
    assert (tiny.windows.max_length, tiny.windows.stride) == (m.max_length, m.stride)
    assert "tiny-report" in repr(tiny)


def test_labeling_imports_no_torch(tiny_report_model: Path) -> None:
    code = (
        "import sys\n"
        "from radedge import ReportLabeler\n"
        f"ReportLabeler.load({str(tiny_report_model)!r})(['Small effusion.'])\n"
        "ReportLabeler.load('rules')(['Small effusion.'])\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_caps_subheader_naming_a_finding(rules: ReportLabeler) -> None:
    """An ALL-CAPS sub-header inside FINDINGS is read with its header: 'SUPPORT DEVICES: None.' is a
    negative Support Devices, and its evidence points into the report as given."""
    text = "FINDINGS:\r\nSUPPORT DEVICES: None.\r\nLUNGS: Clear. No PTX.\r\n\r\nIMPRESSION: No acute disease."
    [r] = rules([text])
    assert label_of(r, "Support Devices") == 0.0 and label_of(r, "Pneumothorax") == 0.0
    assert [text[s:e] for s, e in r.evidence["Support Devices"]] == ["SUPPORT", "DEVICE", "None"]
    assert [text[s:e] for s, e in r.evidence["Pneumothorax"]] == ["No", "PTX"]

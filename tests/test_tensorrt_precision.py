"""runtimes.tensorrt.precision: fp16 / int8 graphs, calibration on the served inputs, the accuracy
gate; and the same on a real DeBERTa-v2 report model (export extra)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from radedge.manifest import Manifest, TensorSpec
from runtimes.tensorrt import precision, surgery
from tests.deberta import deberta_feeds
from tests.onnx_graphs import mlp, quantize, run_cpu
from tests.tiny_models import write_calibration_reports


# ---- precision: fp16 / int8 graphs, calibration, gate ------------------------------------------
def test_prepare_fp16_from_float_model(tiny_report_model):
    prepared = precision.prepare(tiny_report_model, Manifest.read(tiny_report_model), "fp16")
    assert prepared.precision == "fp16" and prepared.source_kind == "float" and prepared.gate is None
    onnx.checker.check_model(prepared.model)


def test_prepare_int8_needs_qdq_or_calibration(tiny_report_model):
    with pytest.raises(ValueError, match="calibration folder"):
        precision.prepare(tiny_report_model, Manifest.read(tiny_report_model), "int8")
    with pytest.raises(ValueError, match="fp16 or int8"):
        precision.prepare(tiny_report_model, Manifest.read(tiny_report_model), "fp32")


def test_calibration_feeds_use_the_served_windows(tiny_report_model, tmp_path):
    m = Manifest.read(tiny_report_model)
    feeds = precision.calibration_feeds(m, tiny_report_model, write_calibration_reports(tmp_path), limit=10, batch=4)
    assert sum(len(f["input_ids"]) for f in feeds) >= 10
    assert all(set(f) == {"input_ids", "attention_mask"} and f["input_ids"].dtype == np.int64 for f in feeds)
    assert max(f["input_ids"].shape[1] for f in feeds) <= m.max_length
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no reports"):
        precision.calibration_feeds(m, tiny_report_model, tmp_path / "empty")
    with pytest.raises(ValueError, match="no such calibration folder"):
        precision.calibration_feeds(m, tiny_report_model, tmp_path / "missing")


def test_int8_from_calibration_passes_its_gate_and_is_tensorrt_ready(tiny_report_model, tmp_path):
    prepared = precision.prepare(tiny_report_model, Manifest.read(tiny_report_model), "int8",
                                 calib=write_calibration_reports(tmp_path))
    assert prepared.gate is not None and prepared.gate["samples"] >= 20
    assert prepared.gate["passed"], prepared.gate
    assert prepared.precision == "int8"
    assert surgery.quantization_kind(prepared.model) == "qdq-int8"


def test_int8_falls_back_to_fp16_when_the_gate_fails(tiny_report_model, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "REPORT_AGREEMENT_GATE", 1.01)  # impossible to reach
    prepared = precision.prepare(tiny_report_model, Manifest.read(tiny_report_model), "int8",
                                 calib=write_calibration_reports(tmp_path))
    assert prepared.precision == "fp16" and prepared.requested == "int8"
    assert not prepared.gate["passed"] and any("accuracy gate" in n for n in prepared.notes)
    assert surgery.quantization_kind(prepared.model) == "float"


def test_image_calibration_reads_pngs_with_radedge_preprocessing(tiny_image_model, tmp_path):
    import cv2

    folder = tmp_path / "calib-images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, size=(40, 30), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    m = Manifest.read(tiny_image_model)
    feeds = precision.calibration_feeds(m, tiny_image_model, folder, limit=100, batch=4)
    assert [f["pixels"].shape for f in feeds] == [(4, 3, 32, 32), (2, 3, 32, 32)]
    prepared = precision.prepare(tiny_image_model, m, "int8", calib=folder)
    assert prepared.gate is not None and "mean_abs_diff" in prepared.gate


def test_accuracy_gate_numbers():
    m = SimpleNamespace(task="image-findings", thresholds={}, labels=["a", "b"])
    ref = np.array([[0.9, 0.1], [0.2, 0.8]], np.float32)
    assert precision.accuracy_gate(m, ref, ref)["passed"]
    flipped = precision.accuracy_gate(m, ref, ref[::-1])
    assert not flipped["passed"] and flipped["agreement"] == 0.0
    r = SimpleNamespace(task="report-labels")
    logits = np.random.default_rng(0).normal(size=(10, 14, 4))
    assert precision.accuracy_gate(r, logits, logits)["agreement"] == 1.0


def test_prepare_dequantizes_a_dynamic_int8_shipped_model(tmp_path):
    """The shipped report model is onnxruntime dynamic int8; fp16 plans start from its float form."""
    from radedge.manifest import file_hashes

    folder = tmp_path / "dyn"
    folder.mkdir()
    onnx.save(quantize(mlp(), tmp_path, "dynamic"), str(folder / "model.onnx"))
    m = Manifest(name="dyn", task="image-findings", files=file_hashes(folder, ["model.onnx"]),
                 inputs=[TensorSpec("x", "float32", ("batch", 16))], outputs=[TensorSpec("y", "float32", ("batch", 8))],
                 preprocess={"size": 4})
    prepared = precision.prepare(folder, m, "fp16")
    assert prepared.source_kind == "dynamic" and any("dequantized" in n for n in prepared.notes)
    assert not surgery.has_any(prepared.model, surgery.DYNAMIC_QUANT_OPS)


def test_strongly_typed_fp16_converts_the_graph(tiny_image_model):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (radedge[gpu]) not installed")
    prepared = precision.prepare(tiny_image_model, Manifest.read(tiny_image_model), "fp16", strongly_typed=True)
    types = {i.data_type for i in prepared.model.graph.initializer}
    assert TensorProto.FLOAT16 in types
    x = np.random.default_rng(0).normal(size=(2, 3, 32, 32)).astype(np.float32)
    ref = run_cpu(onnx.load(str(tiny_image_model / "model.onnx")), {"pixels": x})[0]
    np.testing.assert_allclose(run_cpu(prepared.model, {"pixels": x})[0], ref, atol=2e-3)



@pytest.mark.export
@pytest.mark.filterwarnings("ignore:the float32 number")  # onnxconverter-common notes the clamped mask value
def test_deberta_export_in_fp16_stays_close_to_fp32(tiny_deberta_onnx):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (radedge[gpu]) not installed")
    model = onnx.load(str(tiny_deberta_onnx))
    feeds = deberta_feeds()
    reference = run_cpu(model, feeds)[0]
    prepared = precision.prepare_fp16(model, strongly_typed=True)  # what a TensorRT 11 build is given
    result = run_cpu(prepared.model, feeds)[0]
    assert np.all(np.isfinite(result))
    assert np.max(np.abs(result - reference)) < 0.05  # LayerNorm outputs are O(1)


@pytest.mark.export
@pytest.mark.filterwarnings("ignore:the float32 number")
def test_deberta_report_model_int8_calibration_on_openi_reports(tiny_deberta_report_model):
    """The whole CPU side of an int8 build on a DeBERTa-family report model: windows from real reports,
    static Q/DQ quantization, the gate, and either a TensorRT-ready int8 graph or the fp16 fallback."""
    from tests.paths import need_data

    reports = need_data("openi", "reports.jsonl")
    m = Manifest.read(tiny_deberta_report_model)
    prepared = precision.prepare(tiny_deberta_report_model, m, "int8", calib=reports, calib_limit=32)
    assert prepared.surgery["float_integer_unary"] >= 2 and prepared.gate["samples"] >= 32
    assert prepared.precision == ("int8" if prepared.gate["passed"] else "fp16")
    assert surgery.quantization_kind(prepared.model) == ("qdq-int8" if prepared.gate["passed"] else "float")
    feeds = precision.calibration_feeds(m, tiny_deberta_report_model, reports, limit=8)
    reference = precision.run_cpu(onnx.load(str(tiny_deberta_report_model / "model.onnx")), feeds)
    fp16 = precision.prepare(tiny_deberta_report_model, m, "fp16", strongly_typed=True)
    got = precision.run_cpu(fp16.model, feeds)
    assert np.mean(got.argmax(-1) == reference.argmax(-1)) >= 0.95

"""TensorRT: graph surgery, profiles, precision / calibration, plan cache keys, the backend's run
logic (on a fake CUDA + TensorRT), argument and error paths — all on the CPU — plus GPU tests
(markers `tensorrt`, `gpu`) that build real plans from the tiny models and compare with onnxruntime.
"""
from __future__ import annotations

import ctypes
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from radedge.backends import open_backend
from radedge.backends import tensorrt as trtb
from radedge.errors import BackendError, DeviceUnavailableError
from radedge.manifest import Manifest, TensorSpec

trtb.import_builder()  # puts the checkout's runtimes/ on sys.path, as radedge itself does
from runtimes.tensorrt import precision, profiles, surgery  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ---- helpers -------------------------------------------------------------------------------------
def _model(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _mlp(seed: int = 0) -> onnx.ModelProto:
    """x [batch, 16] -> MatMul -> Relu -> MatMul -> y [batch, 8]: big enough for onnxruntime to quantize."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(size=(16, 32)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(32, 8)).astype(np.float32), "w2")
    return _model(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], [w1, w2])


class _Feeds:
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def _quantize(model: onnx.ModelProto, tmp_path: Path, how: str) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    src, dst = tmp_path / f"{how}-src.onnx", tmp_path / f"{how}.onnx"
    onnx.save(model, str(src))
    if how == "dynamic":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    else:
        rng = np.random.default_rng(1)
        feeds = _Feeds([{"x": rng.normal(size=(4, 16)).astype(np.float32)} for _ in range(4)])
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if how == "qdq-int8" else {}
        quantize_static(str(src), str(dst), feeds, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8 if how == "qdq-int8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options=extra)
    return onnx.load(str(dst))


# ---- surgery: uint8 casts ------------------------------------------------------------------------
def _xsoftmax_uint8() -> onnx.ModelProto:
    """The pre-2023 DeBERTa XSoftmax export: rmask = Cast(1 - mask, UINT8) -> Cast(BOOL) -> Where."""
    one = numpy_helper.from_array(np.array(1, dtype=np.int64), "one")
    fmin = numpy_helper.from_array(np.array(np.finfo(np.float32).min, dtype=np.float32), "fmin")
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    nodes = [
        helper.make_node("Sub", ["one", "mask"], ["inv"]),
        helper.make_node("Cast", ["inv"], ["rmask_u8"], to=TensorProto.UINT8),
        helper.make_node("Cast", ["rmask_u8"], ["rmask"], to=TensorProto.BOOL),
        helper.make_node("Where", ["rmask", "fmin", "scores"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["p"], axis=-1),
        helper.make_node("Where", ["rmask", "zero", "p"], ["probs"]),
    ]
    return _model(nodes, [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", "s"]),
                          helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"])],
                  [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", "s"])], [one, fmin, zero])


def test_uint8_cast_feeding_a_cast_becomes_int32_and_keeps_the_output():
    model = _xsoftmax_uint8()
    feeds = {"scores": np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32),
             "mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)}
    before = _run(model, feeds)[0]
    report = surgery.fix_for_tensorrt(model)
    assert report["retype_uint8_casts"] == 1
    casts = [helper.get_attribute_value(n.attribute[0]) for n in model.graph.node if n.op_type == "Cast"]
    assert TensorProto.UINT8 not in casts and TensorProto.INT32 in casts
    np.testing.assert_allclose(_run(model, feeds)[0], before, rtol=0, atol=0)


def test_uint8_cast_read_only_as_a_condition_becomes_bool():
    nodes = [helper.make_node("Cast", ["m"], ["m8"], to=TensorProto.UINT8),
             helper.make_node("Where", ["m8", "a", "b"], ["y"])]  # invalid ONNX, as such old exports were
    model = _model(nodes, [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("m", "a", "b")],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    assert surgery.retype_uint8_casts(model) == 1
    assert helper.get_attribute_value(model.graph.node[0].attribute[0]) == TensorProto.BOOL


# ---- surgery: integer unary ops, fp16 constants ------------------------------------------------
def _relative_buckets() -> onnx.ModelProto:
    """DeBERTa's make_log_bucket_position uses sign() and abs() of int64 relative positions."""
    nodes = [helper.make_node("Sign", ["rel"], ["sign"]), helper.make_node("Abs", ["rel"], ["abs"]),
             helper.make_node("Mul", ["sign", "abs"], ["y"])]
    return _model(nodes, [helper.make_tensor_value_info("rel", TensorProto.INT64, ["s", "s"])],
                  [helper.make_tensor_value_info("y", TensorProto.INT64, ["s", "s"])])


def test_integer_sign_and_abs_run_in_float_with_identical_results():
    model = _relative_buckets()
    rel = (np.arange(7)[:, None] - np.arange(7)[None, :]).astype(np.int64) * 1000
    before = _run(model, {"rel": rel})[0]
    assert surgery.fix_for_tensorrt(model)["float_integer_unary"] == 2
    by_op = {n.op_type: n for n in model.graph.node}
    producers = surgery.producers(model.graph)
    assert producers[by_op["Sign"].input[0]].op_type == "Cast"
    result = _run(model, {"rel": rel})[0]
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, before)


def test_float_unary_ops_are_left_alone():
    model = _model([helper.make_node("Abs", ["x"], ["y"])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    assert surgery.float_integer_unary(model) == 0


def test_mask_constants_outside_fp16_are_clamped_only_for_fp16():
    model = _xsoftmax_uint8()
    const = helper.make_node("Constant", [], ["big"], value=numpy_helper.from_array(np.array(-3e38, np.float32)))
    model.graph.node.insert(0, const)
    model.graph.initializer.append(numpy_helper.from_array(np.array([-3e38, 1.0], np.float32), "vector"))
    model.graph.initializer.append(numpy_helper.from_array(np.array(60000.0, np.float32), "in_range"))
    assert surgery.fix_for_tensorrt(model, fp16=False)["clamp_fp16_constants"] == 0
    assert surgery.clamp_fp16_constants(model) == 2  # fmin initializer and the Constant node
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert values["fmin"] == -surgery.MASK_CLAMP
    assert values["vector"][0] == np.float32(-3e38) and values["in_range"] == 60000.0
    assert numpy_helper.to_array(model.graph.node[0].attribute[0].t) == -surgery.MASK_CLAMP


def test_clamped_mask_keeps_fully_masked_rows_finite_in_fp16():
    model = _xsoftmax_uint8()
    surgery.fix_for_tensorrt(model, fp16=True)
    feeds = {"scores": np.zeros((1, 3), np.float32), "mask": np.zeros((1, 3), np.int64)}
    assert np.all(np.isfinite(_run(model, feeds)[0]))


# ---- surgery: quantized graphs -------------------------------------------------------------------
@pytest.mark.parametrize("how,kind", [("dynamic", "dynamic"), ("qdq-uint8", "qdq-other"), ("qdq-int8", "qdq-int8")])
def test_quantization_kind(tmp_path, how, kind):
    assert surgery.quantization_kind(_mlp()) == "float"
    assert surgery.quantization_kind(_quantize(_mlp(), tmp_path, how)) == kind


@pytest.mark.parametrize("how", ["dynamic", "qdq-uint8", "qdq-int8"])
def test_dequantize_gives_a_float_graph_close_to_the_original(tmp_path, how):
    x = np.random.default_rng(2).normal(size=(5, 16)).astype(np.float32)
    reference = _run(_mlp(), {"x": x})[0]
    quantized = _quantize(_mlp(), tmp_path, how)
    changed = surgery.dequantize(quantized)
    assert changed >= 2
    assert surgery.quantization_kind(quantized) == "float"
    onnx.checker.check_model(quantized)
    result = _run(quantized, {"x": x})[0]
    # int8-rounded weights only (activations stay float): within 2% of the output scale
    assert np.max(np.abs(result - reference)) < 0.02 * np.max(np.abs(reference))


def test_dequantize_refuses_what_it_cannot_follow():
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("Identity", ["q"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                   [helper.make_tensor_value_info("y", TensorProto.UINT8, [2])])
    with pytest.raises(ValueError, match="could not dequantize"):
        surgery.dequantize(model)


# ---- profiles ------------------------------------------------------------------------------------
def test_profiles_from_report_manifest(tiny_report_model):
    m = Manifest.read(tiny_report_model)  # max_length 32, inputs [batch, sequence]
    shapes = profiles.profile_shapes(m, max_batch=16)
    for name in ("input_ids", "attention_mask"):
        assert shapes[name].min == (1, 1) and shapes[name].opt == (8, 32) and shapes[name].max == (16, 32)
    custom = profiles.profile_shapes(m, max_batch=4, opt_batch=1, max_length=24, opt_length=12)
    assert custom["input_ids"] == profiles.ShapeRange((1, 1), (1, 12), (4, 24))


def test_profiles_from_image_manifest_keep_fixed_axes(tiny_image_model):
    shapes = profiles.profile_shapes(Manifest.read(tiny_image_model), max_batch=8)
    assert shapes["pixels"] == profiles.ShapeRange((1, 3, 32, 32), (4, 3, 32, 32), (8, 3, 32, 32))


@pytest.mark.parametrize("kwargs,message", [
    ({"max_batch": 0}, "at least 1"), ({"max_batch": 4, "opt_batch": 5}, "opt batch"),
    ({"max_length": 64}, "exceeds the model's max_length"), ({"opt_length": 40}, "opt length"),
])
def test_profile_errors(tiny_report_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        profiles.profile_shapes(Manifest.read(tiny_report_model), **kwargs)


def test_sequence_axis_needs_a_max_length(tiny_report_model):
    m = Manifest.read(tiny_report_model)
    m.max_length = None
    with pytest.raises(ValueError, match="no max_length"):
        profiles.profile_shapes(m)


def test_covers_compares_recorded_ranges(tiny_report_model):
    m = Manifest.read(tiny_report_model)
    recorded = {k: v.to_dict() for k, v in profiles.profile_shapes(m, max_batch=16).items()}
    assert profiles.covers(recorded, profiles.profile_shapes(m, max_batch=8))
    assert not profiles.covers(recorded, profiles.profile_shapes(m, max_batch=32))
    assert not profiles.covers({}, profiles.profile_shapes(m))


# ---- precision: fp16 / int8 graphs, calibration, gate ------------------------------------------
def _reports_folder(tmp_path: Path) -> Path:
    from tiny_models import VOCAB_TEXTS

    folder = tmp_path / "calib-reports"
    folder.mkdir()
    for i, text in enumerate(VOCAB_TEXTS * 4):
        (folder / f"{i}.txt").write_text(f"FINDINGS: {text}.\nIMPRESSION: {text}.")
    return folder


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
    feeds = precision.calibration_feeds(m, tiny_report_model, _reports_folder(tmp_path), limit=10, batch=4)
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
                                 calib=_reports_folder(tmp_path))
    assert prepared.gate is not None and prepared.gate["samples"] >= 20
    assert prepared.gate["passed"], prepared.gate
    assert prepared.precision == "int8"
    assert surgery.quantization_kind(prepared.model) == "qdq-int8"


def test_int8_falls_back_to_fp16_when_the_gate_fails(tiny_report_model, tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "REPORT_AGREEMENT_GATE", 1.01)  # impossible to reach
    prepared = precision.prepare(tiny_report_model, Manifest.read(tiny_report_model), "int8",
                                 calib=_reports_folder(tmp_path))
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
    onnx.save(_quantize(_mlp(), tmp_path, "dynamic"), str(folder / "model.onnx"))
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
    ref = _run(onnx.load(str(tiny_image_model / "model.onnx")), {"pixels": x})[0]
    np.testing.assert_allclose(_run(prepared.model, {"pixels": x})[0], ref, atol=2e-3)


# ---- plan cache keys ----------------------------------------------------------------------------
H100 = trtb.DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


def test_plan_key_changes_with_gpu_capability_tensorrt_model_and_precision():
    base = trtb.PlanKey("ab" * 32, H100, "fp16")
    variants = [
        trtb.PlanKey("cd" * 32, H100, "fp16"),
        trtb.PlanKey("ab" * 32, trtb.DeviceInfo("NVIDIA A100-SXM4-40GB", (9, 0), "10.13.0.35"), "fp16"),
        trtb.PlanKey("ab" * 32, trtb.DeviceInfo("NVIDIA H100 80GB HBM3", (8, 9), "10.13.0.35"), "fp16"),
        trtb.PlanKey("ab" * 32, trtb.DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "11.4.0.106"), "fp16"),
        trtb.PlanKey("ab" * 32, H100, "int8"),
    ]
    stems = {base.stem} | {v.stem for v in variants}
    assert len(stems) == 6
    assert base.stem == "abababababababab.nvidia-h100-80gb-hbm3.sm90.trt10-13-0-35.fp16"


def test_find_plan_prefers_int8_then_fp16(tmp_path):
    sha = "ef" * 32
    assert trtb.find_plan(tmp_path, sha, H100) is None
    fp16 = trtb.plan_path(tmp_path, trtb.PlanKey(sha, H100, "fp16"))
    fp16.write_bytes(b"x")
    assert trtb.find_plan(tmp_path, sha, H100) == fp16
    int8 = trtb.plan_path(tmp_path, trtb.PlanKey(sha, H100, "int8"))
    int8.write_bytes(b"x")
    assert trtb.find_plan(tmp_path, sha, H100) == int8
    assert trtb.find_plan(tmp_path, sha, H100, "fp16") == fp16
    other_gpu = trtb.DeviceInfo("NVIDIA L4", (8, 9), "10.13.0.35")
    assert trtb.find_plan(tmp_path, sha, other_gpu) is None  # a new GPU misses: rebuild, never a wrong plan


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(trtb.ENGINE_DIR_VAR, str(tmp_path / "engines"))
    assert trtb.default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv(trtb.ENGINE_DIR_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert trtb.default_cache_dir() == tmp_path / "xdg" / "radedge" / "engines"


# ---- presence and error paths --------------------------------------------------------------------
def test_cuda_device_count_is_zero_without_a_driver(monkeypatch):
    def no_lib(name):
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", no_lib)
    assert trtb.cuda_device_count() == 0


def test_require_gpu(monkeypatch):
    with pytest.raises(DeviceUnavailableError, match="only on a GPU"):
        trtb.require_gpu("cpu")
    monkeypatch.setattr(trtb, "cuda_device_count", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        trtb.require_gpu("cuda")
    monkeypatch.setattr(trtb, "cuda_device_count", lambda: 1)
    trtb.require_gpu("auto")


def test_open_backend_tensorrt_on_cpu_is_a_device_error(tiny_report_model):
    with pytest.raises(DeviceUnavailableError):
        open_backend(tiny_report_model, Manifest.read(tiny_report_model), backend="tensorrt", device="cpu")


def _no_accelerator() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return True
    return trtb.cuda_device_count() == 0


@pytest.mark.skipif(not _no_accelerator(), reason="TensorRT and a GPU are present: the error path cannot happen")
def test_build_engine_without_gpu_or_tensorrt_exits_2_with_one_line(tiny_report_model):
    from radedge.cli import main

    result = CliRunner().invoke(main, ["build-engine", str(tiny_report_model)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1 and ("TensorRT" in lines[0] or "GPU" in lines[0])


def test_build_engine_passes_its_options_to_the_builder(tiny_report_model, tmp_path, monkeypatch):
    import json

    from radedge.cli import main

    calls = []

    def build_plan(model_dir, **kwargs):
        calls.append((model_dir, kwargs))
        return SimpleNamespace(plan=tmp_path / "x.plan", meta={"precision": kwargs["precision"]}, cached=False)

    builder = SimpleNamespace(build_plan=build_plan, resolve_model=lambda name: Path(name),
                              summary=lambda result: f"built {result.meta['precision']}")
    monkeypatch.setattr(trtb, "import_tensorrt", lambda: object())
    monkeypatch.setattr(trtb, "require_gpu", lambda device: None)
    monkeypatch.setattr(trtb, "import_builder", lambda model_dir=None: builder)
    runner = CliRunner()
    result = runner.invoke(main, ["build-engine", str(tiny_report_model), "--precision", "int8", "--calib",
                                  str(tmp_path), "--max-batch", "8", "--max-length", "16", "--cache-dir",
                                  str(tmp_path / "c"), "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"plan": str(tmp_path / "x.plan"), "precision": "int8"}
    assert calls == [(tiny_report_model, {"precision": "int8", "calib": str(tmp_path), "max_batch": 8,
                                          "max_length": 16, "cache_dir": str(tmp_path / "c"), "force": True})]
    assert runner.invoke(main, ["build-engine", str(tiny_report_model)]).output.strip() == "built fp16"
    assert runner.invoke(main, ["build-engine", str(tiny_report_model), "--precision", "fp32"]).exit_code == 2
    assert runner.invoke(main, ["build-engine", str(tiny_report_model), "--max-batch", "0"]).exit_code == 2


@pytest.mark.skipif(not _no_accelerator(), reason="TensorRT and a GPU are present: the error path cannot happen")
def test_runtimes_command_without_gpu_exits_2(tiny_report_model, capsys):
    from runtimes.tensorrt.__main__ import main

    assert main(["build", str(tiny_report_model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("runtimes.tensorrt: error:")


def test_runtimes_prepare_command_writes_a_graph_onnxruntime_runs(tiny_report_model, tmp_path, capsys):
    from runtimes.tensorrt.__main__ import main

    out = tmp_path / "prepared.onnx"
    assert main(["prepare", str(tiny_report_model), str(out)]) == 0
    ids = np.array([[2, 5, 9, 3]], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    np.testing.assert_allclose(_run(onnx.load(str(out)), feeds)[0],
                               _run(onnx.load(str(tiny_report_model / "model.onnx")), feeds)[0], rtol=1e-6)
    assert main(["prepare", str(tmp_path / "nowhere"), str(out)]) == 2


def test_builder_is_importable_from_the_checkout_and_missing_builder_is_explained(monkeypatch):
    assert hasattr(trtb.import_builder(), "build_plan")
    import importlib

    real = importlib.import_module

    def fail(name, *args):
        if name == "runtimes.tensorrt":
            raise ImportError("No module named 'runtimes'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.raises(BackendError, match="source checkout"):
        trtb.import_builder("models/report-student")


# ---- onnxruntime providers (the CUDA / TensorRT execution providers) ----------------------------
def test_providers_for_checks_the_gpu_not_only_the_install(monkeypatch):
    from radedge.backends import onnxruntime as ortb

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(trtb, "cuda_device_count", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        ortb.providers_for("cuda")
    with pytest.warns(UserWarning, match="CPU"):
        assert ortb.providers_for("auto") == ["CPUExecutionProvider"]
    monkeypatch.setattr(trtb, "cuda_device_count", lambda: 1)
    assert ortb.providers_for("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ortb.providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ortb.providers_for("cuda", provider="tensorrt")[0] == "TensorrtExecutionProvider"
    opts = ortb.provider_options(["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    assert opts[0]["trt_engine_cache_enable"] == "True" and opts[1] == {}


def test_plain_onnxruntime_has_no_cuda_provider(monkeypatch):
    from radedge.backends import onnxruntime as ortb

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceUnavailableError, match="radedge\\[gpu\\]"):
        ortb.providers_for("cuda")


# ---- the backend's run logic on a fake CUDA + TensorRT -----------------------------------------
class FakeCudart:
    """Host memory standing in for device memory, with cuda-python's (error, value) returns."""

    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self):
        self.blocks: dict[int, ctypes.Array] = {}
        self.mallocs = 0
        self.streams = 0

    def cudaMalloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(buf)] = buf
        self.mallocs += 1
        return (0, ctypes.addressof(buf))

    def cudaFree(self, ptr):
        del self.blocks[ptr]
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamCreate(self):
        self.streams += 1
        return (0, self.streams)

    def cudaStreamDestroy(self, s):
        return (0,)

    def cudaStreamSynchronize(self, s):
        return (0,)

    def cudaSetDevice(self, i):
        return (0,)


def _from(ptr: int, dtype, shape) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_char * n).from_address(ptr), dtype=dtype).reshape(shape)


class FakeContext:
    """y[b] = sum(x[b, :]) as float32; x is int32 inside the 'engine'; profile max (4, 80)."""

    def __init__(self):
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return shape[0] <= 4 and shape[1] <= 80

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def get_tensor_shape(self, name):
        return (self.shapes["x"][0],)

    def execute_async_v3(self, stream):
        x = _from(self.addresses["x"], np.int32, self.shapes["x"])
        y = _from(self.addresses["y"], np.float32, (self.shapes["x"][0],))
        y[:] = x.sum(axis=1)
        return True


class FakeEngine:
    num_io_tensors = 2

    def __init__(self):
        self.contexts = 0

    def get_tensor_name(self, i):
        return ["x", "y"][i]

    def get_tensor_dtype(self, name):
        return np.int32 if name == "x" else np.float32

    def get_tensor_shape(self, name):
        return (-1, -1) if name == "x" else (-1,)

    def get_tensor_mode(self, name):
        return "in" if name == "x" else "out"

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 1), (2, 4), (4, 80)]

    def create_execution_context(self):
        self.contexts += 1
        return FakeContext()


def _fake_trt(engine):
    runtime = SimpleNamespace(deserialize_cuda_engine=lambda data: engine if data == b"plan" else None)
    return SimpleNamespace(Logger=type("Logger", (), {"WARNING": 0, "__init__": lambda self, level: None}),
                           Runtime=lambda logger: runtime, nptype=lambda t: t,
                           TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"), __version__="10.13.0.35")


FAKE_MANIFEST = SimpleNamespace(inputs=[TensorSpec("x", "int64", ("batch", "sequence"))],
                                outputs=[TensorSpec("y", "float32", ("batch",))])


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    engine, cudart = FakeEngine(), FakeCudart()
    monkeypatch.setattr(trtb, "import_tensorrt", lambda: _fake_trt(engine))
    monkeypatch.setattr(trtb, "import_cudart", lambda: cudart)
    plan = tmp_path / "fake.plan"
    plan.write_bytes(b"plan")
    return SimpleNamespace(engine=engine, cudart=cudart, plan=plan)


def test_backend_runs_reuses_and_grows_buffers(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    assert backend.inputs == [TensorSpec("x", "int64", ("batch", "sequence"))]
    assert backend.outputs == [TensorSpec("y", "float32", ("batch",))]
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    out = backend.run({"x": x})["y"]
    assert out.dtype == np.float32 and out.tolist() == [3.0, 12.0]
    allocated = fake_gpu.cudart.mallocs
    backend.run({"x": x + 1})
    assert fake_gpu.cudart.mallocs == allocated  # same shape: buffers reused
    big = np.ones((4, 80), dtype=np.int64)
    assert backend.run({"x": big})["y"].tolist() == [80.0] * 4
    assert fake_gpu.cudart.mallocs > allocated  # bigger batch: buffers grew
    backend.close()
    assert fake_gpu.cudart.blocks == {}


def test_backend_splits_batches_above_the_profile(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    x = np.arange(30, dtype=np.int64).reshape(10, 3)
    np.testing.assert_array_equal(backend.run({"x": x})["y"], x.sum(axis=1).astype(np.float32))


def test_backend_rejects_long_sequences_and_missing_inputs(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    with pytest.raises(BackendError, match="exceeds the plan's profile"):
        backend.run({"x": np.ones((1, 81), np.int64)})
    with pytest.raises(BackendError, match="missing inputs"):
        backend.run({})


def test_backend_keeps_one_context_per_thread(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    results, errors = {}, []

    def work(k):
        try:
            x = np.full((3, 5), k, dtype=np.int64)
            for _ in range(20):
                results[k] = backend.run({"x": x})["y"].tolist()
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {k: [5.0 * k] * 3 for k in range(4)}
    assert fake_gpu.engine.contexts == 4


def test_backend_refuses_an_unreadable_plan(fake_gpu, tmp_path):
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"garbage")
    with pytest.raises(BackendError, match="could not deserialise"):
        trtb.TensorRTBackend(bad, FAKE_MANIFEST)


def test_from_model_dir_uses_the_cache_then_the_builder(fake_gpu, tiny_report_model, tmp_path, monkeypatch):
    m = Manifest.read(tiny_report_model)
    monkeypatch.setattr(trtb, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(trtb, "current_device", lambda index=0: H100)
    cache = tmp_path / "engines"
    cache.mkdir()
    built = []

    def build_plan(model_dir, precision="fp16", cache_dir=None, force=False, **kw):
        path = trtb.plan_path(cache_dir, trtb.PlanKey(m.files["model.onnx"], H100, precision))
        path.write_bytes(b"plan")
        built.append((precision, force, kw.get("max_batch")))
        return SimpleNamespace(plan=path)

    monkeypatch.setattr(trtb, "import_builder", lambda model_dir=None: SimpleNamespace(build_plan=build_plan))
    backend = trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache)
    assert built == [("fp16", False, None)] and isinstance(backend, trtb.TensorRTBackend)
    trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache)
    assert len(built) == 1  # second time: from the cache
    stale = trtb.plan_path(cache, trtb.PlanKey(m.files["model.onnx"], H100, "fp16"))
    stale.write_bytes(b"stale")  # e.g. after a driver change
    trtb.meta_path(stale).write_text('{"build_args": {"precision": "fp16", "max_batch": 8}}')
    trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache)
    assert built[-1] == ("fp16", True, 8)  # rebuilt as it had been built


def FAKE_MANIFEST_FOR(m: Manifest) -> Manifest:
    """The tiny report manifest, its files kept, its tensors those of the fake engine."""
    fake = Manifest.from_dict(m.to_dict())
    fake.inputs, fake.outputs = FAKE_MANIFEST.inputs, FAKE_MANIFEST.outputs
    return fake


def test_engine_for_turns_build_refusals_into_backend_errors(fake_gpu, tiny_report_model, tmp_path, monkeypatch):
    monkeypatch.setattr(trtb, "current_device", lambda index=0: H100)

    prepare = precision.prepare  # the builder's first step; refuses int8 without Q/DQ or calibration

    def build_plan(model_dir, precision="fp16", cache_dir=None, **kw):
        return prepare(model_dir, Manifest.read(model_dir), precision)
    monkeypatch.setattr(trtb, "import_builder", lambda model_dir=None: SimpleNamespace(build_plan=build_plan))
    with pytest.raises(BackendError, match="int8 TensorRT plan.*calibration folder"):
        trtb.engine_for(tiny_report_model, Manifest.read(tiny_report_model), precision="int8", cache_dir=tmp_path)


def test_engine_for_without_plan_or_builder_names_the_command(fake_gpu, tiny_report_model, tmp_path, monkeypatch):
    monkeypatch.setattr(trtb, "current_device", lambda index=0: H100)
    with pytest.raises(BackendError, match="build-engine"):
        trtb.engine_for(tiny_report_model, Manifest.read(tiny_report_model), cache_dir=tmp_path, build=False)


# ---- on a GPU with TensorRT ---------------------------------------------------------------------
def _cpu_outputs(model_dir: Path, feeds: dict) -> np.ndarray:
    m = Manifest.read(model_dir)
    return open_backend(model_dir, m).run(feeds)[m.outputs[0].name]


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision_name", ["fp16", "int8"])
def test_tiny_report_plan_matches_onnxruntime_cpu(tiny_report_model, tmp_path, precision_name, monkeypatch):
    from runtimes.tensorrt import build_plan

    calib = _reports_folder(tmp_path) if precision_name == "int8" else None
    result = build_plan(tiny_report_model, precision=precision_name, calib=calib, max_batch=8,
                        cache_dir=tmp_path / "engines")
    assert not result.cached and result.plan.is_file()
    again = build_plan(tiny_report_model, precision=precision_name, calib=calib, max_batch=8,
                       cache_dir=tmp_path / "engines")
    assert again.cached and again.plan == result.plan
    m = Manifest.read(tiny_report_model)
    monkeypatch.setenv(trtb.ENGINE_DIR_VAR, str(tmp_path / "engines"))
    backend = open_backend(tiny_report_model, m, backend="tensorrt", device="cuda")  # finds the cached plan
    assert isinstance(backend, trtb.TensorRTBackend) and backend.plan == result.plan
    rng = np.random.default_rng(0)
    for batch, length in [(1, 5), (8, 32), (13, 17)]:  # 13 > max batch: split into chunks
        ids = rng.integers(4, 60, size=(batch, length)).astype(np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        got, want = backend.run(feeds)["logits"], _cpu_outputs(tiny_report_model, feeds)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.95
        np.testing.assert_allclose(got, want, atol=0.1 * np.abs(want).max())


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tiny_image_plan_matches_onnxruntime_cpu_from_threads(tiny_image_model, tmp_path):
    from runtimes.tensorrt import build_plan

    result = build_plan(tiny_image_model, max_batch=4, cache_dir=tmp_path / "engines")
    m = Manifest.read(tiny_image_model)
    backend = trtb.TensorRTBackend(result.plan, m)
    x = np.random.default_rng(0).normal(size=(6, 3, 32, 32)).astype(np.float32)
    want = _cpu_outputs(tiny_image_model, {"pixels": x})
    outs = [None] * 4

    def work(k):
        outs[k] = backend.run({"pixels": x})["probs"]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in outs:
        np.testing.assert_allclose(got, want, atol=5e-3)


@pytest.mark.gpu
def test_onnxruntime_cuda_provider_matches_cpu(tiny_image_model):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu (CUDAExecutionProvider) not installed")
    m = Manifest.read(tiny_image_model)
    gpu = open_backend(tiny_image_model, m, device="cuda")
    assert gpu.device == "cuda"
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(gpu.run({"pixels": x})["probs"], _cpu_outputs(tiny_image_model, {"pixels": x}),
                               atol=1e-4)


def test_module_help_runs():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "runtimes.tensorrt", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert "build" in out.stdout and "prepare" in out.stdout


# ---- a real DeBERTa-v2 export (transformers + torch) --------------------------------------------
def _export_tiny_deberta(path: Path, vocab_size: int = 100, report_head: bool = False) -> None:
    """A 2-layer, 32-wide DebertaV2 with relative attention (random weights; no download), exported by
    torch's TorchScript exporter with dynamic batch and sequence axes; `report_head` adds a linear
    head to [batch, 14, 4] logits, the report-model contract."""
    torch = pytest.importorskip("torch", reason="needs the export extra (torch)")
    transformers = pytest.importorskip("transformers", reason="needs the export extra (transformers)")
    import warnings

    cfg = transformers.DebertaV2Config(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                                       relative_attention=True, position_buckets=16, max_relative_positions=64,
                                       pos_att_type=["p2c", "c2p"], position_biased_input=False)
    torch.manual_seed(0)

    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = transformers.DebertaV2Model(cfg)
            self.head = torch.nn.Linear(32, 56)

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.head(hidden[:, 0]).reshape(-1, 14, 4) if report_head else hidden

    output = "logits" if report_head else "last_hidden_state"
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            output: {0: "batch"} if report_head else {0: "batch", 1: "sequence"}}
    ids = torch.randint(0, vocab_size, (2, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on branches self-attention never takes
        torch.onnx.export(Student().eval(), (ids, torch.ones_like(ids)), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=[output], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


@pytest.fixture(scope="module")
def tiny_deberta_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("deberta") / "model.onnx"
    _export_tiny_deberta(path)
    return path


@pytest.fixture(scope="module")
def tiny_deberta_report_model(tmp_path_factory) -> Path:
    """A report-model folder (tokenizer, manifest) around a tiny DebertaV2 export."""
    from tiny_models import write_tokenizer

    from radedge.labels import CLASSES
    from radedge.manifest import file_hashes

    folder = tmp_path_factory.mktemp("deberta-report")
    write_tokenizer(folder)
    _export_tiny_deberta(folder / "model.onnx", vocab_size=200, report_head=True)
    Manifest(name="deberta-report", task="report-labels", files=file_hashes(folder, ["model.onnx", "tokenizer.json"]),
             inputs=[TensorSpec("input_ids", "int64", ("batch", "sequence")),
                     TensorSpec("attention_mask", "int64", ("batch", "sequence"))],
             outputs=[TensorSpec("logits", "float32", ("batch", 14, 4))], classes=list(CLASSES),
             tokenizer="tokenizer.json", max_length=64, stride=8).write(folder)
    return folder


def _deberta_feeds() -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 100, size=(3, 20)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 11:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.export
def test_deberta_export_surgery_removes_integer_unary_ops_and_keeps_outputs(tiny_deberta_onnx):
    model = onnx.load(str(tiny_deberta_onnx))
    feeds = _deberta_feeds()
    before = _run(model, feeds)[0]
    report = surgery.fix_for_tensorrt(model)
    assert report["float_integer_unary"] >= 2  # sign() and abs() of the int64 relative positions
    types = surgery.elem_types(model)
    for node in model.graph.node:
        if node.op_type in surgery.INTEGER_UNARY:
            assert types.get(node.input[0]) not in surgery.INTEGER_TYPES, node.name
        if node.op_type == "Cast":
            assert helper.get_attribute_value(node.attribute[0]) != TensorProto.UINT8
    np.testing.assert_allclose(_run(model, feeds)[0], before, atol=1e-5)


@pytest.mark.export
@pytest.mark.filterwarnings("ignore:the float32 number")  # onnxconverter-common notes the clamped mask value
def test_deberta_export_in_fp16_stays_close_to_fp32(tiny_deberta_onnx):
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (radedge[gpu]) not installed")
    model = onnx.load(str(tiny_deberta_onnx))
    feeds = _deberta_feeds()
    reference = _run(model, feeds)[0]
    prepared = precision.prepare_fp16(model, strongly_typed=True)  # what a TensorRT 11 build is given
    result = _run(prepared.model, feeds)[0]
    assert np.all(np.isfinite(result))
    assert np.max(np.abs(result - reference)) < 0.05  # LayerNorm outputs are O(1)


@pytest.mark.export
@pytest.mark.filterwarnings("ignore:the float32 number")
def test_deberta_report_model_int8_calibration_on_openi_reports(tiny_deberta_report_model):
    """The whole CPU side of an int8 build on a DeBERTa-family report model: windows from real reports,
    static Q/DQ quantization, the gate, and either a TensorRT-ready int8 graph or the fp16 fallback."""
    from conftest import need_data

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

"""Getting a TensorRT-ready ONNX graph for a precision, on the CPU (no GPU needed to test any of it).

* fp16: the float graph (dequantized when the shipped model is an onnxruntime int8 graph). TensorRT 10
  takes it with BuilderFlag.FP16; TensorRT 11 dropped that flag ("weak typing"), so there the graph
  itself is converted to fp16 (onnxconverter-common, inputs and outputs kept as declared).
* int8: explicit quantization, the path TensorRT 10 and 11 both support: a graph that already has
  signed, symmetric Q/DQ nodes is used as it is; otherwise the float graph is quantized here with
  onnxruntime's `quantize_static` (Q/DQ format, int8 symmetric activations and weights: what
  TensorRT parses) from a calibration folder read through radedge's own preprocessing. The result
  must pass an accuracy gate against the float graph on the same samples (onnxruntime on the CPU);
  when quantizing Conv too breaks it, MatMul / Gemm alone are tried (QUANTIZED_OPS), and when that
  fails as well the build falls back to fp16 and records why: "int8 where accuracy holds".
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import onnx

from radedge.manifest import Manifest

from . import surgery

REPORT_SUFFIXES = (".txt", ".jsonl")
REPORT_AGREEMENT_GATE = 0.99  # class arg-max agreement, int8 vs float, over findings x samples
IMAGE_AGREEMENT_GATE = 0.99   # thresholded decision agreement
IMAGE_PROB_GATE = 0.02        # mean absolute probability difference
CALIB_BATCH = 8
# What static int8 quantizes, tried in order until one passes the gate. Conv goes first because it is
# most of a CNN's work, but per-tensor int8 activations can break a small depthwise stem (the shipped
# image model's effnet-lite0 stem: decision agreement 0.92 with Conv, 0.99 without on the COVID-collection
# images); without it TensorRT runs those layers in fp16.
QUANTIZED_OPS = (("MatMul", "Gemm", "Conv"), ("MatMul", "Gemm"))


@dataclass
class Prepared:
    """A graph ready for the TensorRT parser and what was done to get it."""

    model: onnx.ModelProto
    precision: str            # what the plan will be: fp16 or int8
    requested: str
    source_kind: str          # quantization_kind of the shipped graph
    surgery: dict[str, int] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def source_graph(model_dir: str | os.PathLike, manifest: Manifest) -> Path:
    """The ONNX to build from: a float companion when the manifest lists one (`fp32_model`), else model.onnx."""
    companion = manifest.extra.get("fp32_model")
    if companion and companion in manifest.files:
        return Path(model_dir) / companion
    return Path(model_dir) / "model.onnx"


def float_graph(model: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    kind = surgery.quantization_kind(model)
    if kind != "float":
        changed = surgery.dequantize(model)
        notes.append(f"dequantized {changed} {kind} quantized node(s) to float (int8-rounded weights)")
    return model


def prepare(model_dir: str | os.PathLike, manifest: Manifest, precision: str = "fp16",
            calib: str | os.PathLike | None = None, strongly_typed: bool = False,
            calib_limit: int = 256) -> Prepared:
    """The graph to hand TensorRT for `precision` ("fp16" or "int8"); raises ValueError with the reason."""
    if precision not in ("fp16", "int8"):
        raise ValueError(f"precision must be fp16 or int8, got {precision!r}")
    model = onnx.load(str(source_graph(model_dir, manifest)))
    kind = surgery.quantization_kind(model)
    notes: list[str] = []
    if precision == "int8" and strongly_typed:
        notes.append("strongly typed TensorRT: layers outside the Q/DQ pairs run in fp32, not fp16")
    if precision == "int8" and kind == "qdq-int8":
        report = surgery.fix_for_tensorrt(model, fp16=True)
        notes.append("int8 from the model's own Q/DQ nodes (explicit quantization)")
        return Prepared(model, "int8", precision, kind, report, notes=notes)
    if precision == "int8" and calib is None:
        raise ValueError(f"int8 needs either a model quantized with signed symmetric Q/DQ nodes (this one is {kind!r}) "
                         "or a calibration folder (--calib DIR of reports or images)")
    base = float_graph(model, notes)
    if precision == "int8":
        quantized, gate = calibrated_int8(base, manifest, model_dir, calib, calib_limit)
        if gate["passed"]:
            report = surgery.fix_for_tensorrt(quantized, fp16=True)
            notes.append(f"int8 ({', '.join(gate['op_types'])}) calibrated on {gate['samples']} samples from {calib}")
            return Prepared(quantized, "int8", precision, kind, report, gate, notes)
        notes.append(f"int8 failed its accuracy gate ({gate['reason']}); building fp16 instead")
        fallback = prepare_fp16(base, strongly_typed)
        fallback.requested, fallback.source_kind, fallback.gate = precision, kind, gate
        fallback.notes = notes + fallback.notes
        return fallback
    result = prepare_fp16(base, strongly_typed)
    result.source_kind, result.notes = kind, notes + result.notes
    return result


def prepare_fp16(model: onnx.ModelProto, strongly_typed: bool) -> Prepared:
    report = surgery.fix_for_tensorrt(model, fp16=True)
    notes = []
    if strongly_typed:
        model = to_fp16(model)
        notes.append("converted to fp16 in the graph (strongly typed TensorRT)")
    return Prepared(model, "fp16", "fp16", "float", report, notes=notes)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """fp16 weights and activations, graph inputs and outputs unchanged (onnxconverter-common)."""
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise ValueError("TensorRT without BuilderFlag.FP16 (11.x) needs the graph in fp16: "
                         "pip install onnxconverter-common (in radedge[gpu])") from exc
    # Exporters' value_info still says float32 for tensors the converter retypes; drop it and let
    # the parsers infer (stale entries make the converted graph invalid).
    del model.graph.value_info[:]
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    _retarget_float_casts(converted)
    return converted


def _retarget_float_casts(model: onnx.ModelProto) -> None:
    """onnxconverter-common types a Cast(to=FLOAT)'s output as fp16 but leaves `to` at FLOAT
    (seen with 1.16 on DeBERTa's mask casts); make the node agree with its declared output."""
    from onnx import TensorProto

    declared = {vi.name: vi.type.tensor_type.elem_type for vi in model.graph.value_info}
    for node in model.graph.node:
        if node.op_type == "Cast" and declared.get(node.output[0]) == TensorProto.FLOAT16:
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.FLOAT:
                    attr.i = TensorProto.FLOAT16


# ---- calibration ---------------------------------------------------------------------------------
def calibration_feeds(manifest: Manifest, model_dir: str | os.PathLike, calib: str | os.PathLike,
                      limit: int = 256, batch: int = CALIB_BATCH) -> list[dict[str, np.ndarray]]:
    """Batches of model inputs made from a folder (or file) of reports or images, read and
    preprocessed exactly as radedge serves them (ReportWindows; ImageScorer's prepare_input, so PNG,
    JPEG and DICOM all work); ValueError when the folder holds nothing usable."""
    if manifest.task == "report-labels":
        return _report_feeds(manifest, model_dir, Path(calib), limit, batch)
    return _image_feeds(manifest, Path(calib), limit, batch)


def _report_feeds(manifest: Manifest, model_dir: str | os.PathLike, calib: Path, limit: int,
                  batch: int) -> list[dict[str, np.ndarray]]:
    from radedge.reports.windows import ReportWindows

    texts = list(_report_texts(calib, limit))
    windows = ReportWindows.from_model_dir(model_dir, manifest)
    encoded = windows.encode(texts)
    if not encoded:
        raise ValueError(f"{calib}: no reports with text found (*.txt files, or *.jsonl with a 'text' field)")
    names = {t.name for t in manifest.inputs}
    feeds = []
    for b in windows.batches(encoded, batch):
        feed = {"input_ids": b.input_ids, "attention_mask": b.attention_mask}
        if "token_type_ids" in names:
            feed["token_type_ids"] = np.zeros_like(b.input_ids)
        feeds.append({k: v for k, v in feed.items() if k in names})
    return feeds


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path}: no such calibration folder or file")
    return sorted(p for p in path.rglob("*") if p.is_file())


def _report_texts(path: Path, limit: int) -> Iterator[str]:
    count = 0
    for file in _files(path):
        if file.suffix.lower() not in REPORT_SUFFIXES:
            continue
        if file.suffix.lower() == ".jsonl":
            lines = (json.loads(line).get("text") for line in file.read_text(encoding="utf-8").splitlines()
                     if line.strip())
        else:
            lines = iter([file.read_text(encoding="utf-8", errors="replace")])
        for text in lines:
            if text and text.strip():
                yield text
                count += 1
                if count >= limit:
                    return


def _image_feeds(manifest: Manifest, calib: Path, limit: int, batch: int) -> list[dict[str, np.ndarray]]:
    from radedge.images.preprocess import check_spec
    from radedge.images.scorer import prepare_input

    spec = check_spec(manifest.preprocess or {})
    pixels = []
    for file in _files(calib):
        prepared = prepare_input(file, spec)
        if prepared.status == "scored":  # a lateral, a colour photo, a text file: not a sample
            pixels.append(prepared.pixels)
        if len(pixels) >= limit:
            break
    if not pixels:
        raise ValueError(f"{calib}: no readable frontal images (PNG, JPEG or DICOM) found")
    name = manifest.inputs[0].name
    return [{name: np.stack(pixels[i:i + batch])} for i in range(0, len(pixels), batch)]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over prepared batches."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._iter = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._iter, None)


def quantize_qdq(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]],
                 op_types: Sequence[str] = QUANTIZED_OPS[0]) -> onnx.ModelProto:
    """Static int8 Q/DQ quantization in the form TensorRT parses: signed int8, symmetric
    (zero point 0) activations and per-channel weights, only around `op_types`, float biases."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_static(str(src), str(dst), _Reader(feeds), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True,
                        op_types_to_quantize=list(op_types),
                        # TensorRT has no int32 Q/DQ: biases stay float (Gemm's would be int32)
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})
        return onnx.load(str(dst))


def run_cpu(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The first output of `model` on every batch, with onnxruntime on the CPU, concatenated."""
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, f)[0] for f in feeds])


def accuracy_gate(manifest: Manifest, reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """Does the int8 output agree with the float output? Report models: arg-max class per finding;
    image models: decisions at the manifest's thresholds and mean probability difference."""
    if manifest.task == "report-labels":
        agreement = float(np.mean(reference.argmax(-1) == candidate.argmax(-1)))
        passed = agreement >= REPORT_AGREEMENT_GATE
        reason = f"class agreement {agreement:.4f} {'>=' if passed else '<'} {REPORT_AGREEMENT_GATE}"
        return {"passed": passed, "agreement": agreement, "reason": reason, "samples": int(len(reference))}
    thresholds = np.array([(manifest.thresholds or {}).get(f, 0.5) for f in manifest.labels], dtype=np.float32)
    agreement = float(np.mean((reference >= thresholds) == (candidate >= thresholds)))
    diff = float(np.mean(np.abs(reference - candidate)))
    passed = agreement >= IMAGE_AGREEMENT_GATE and diff <= IMAGE_PROB_GATE
    reason = (f"decision agreement {agreement:.4f} (gate {IMAGE_AGREEMENT_GATE}), "
              f"mean |dp| {diff:.4f} (gate {IMAGE_PROB_GATE})")
    return {"passed": passed, "agreement": agreement, "mean_abs_diff": diff, "reason": reason,
            "samples": int(len(reference))}


def calibrated_int8(model: onnx.ModelProto, manifest: Manifest, model_dir: str | os.PathLike,
                    calib: str | os.PathLike, limit: int) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """The first of QUANTIZED_OPS whose int8 graph passes the accuracy gate (else the last one tried,
    with its failed gate); the gate records which op types were quantized and what each try gave."""
    feeds = calibration_feeds(manifest, model_dir, calib, limit)
    reference = run_cpu(model, feeds)
    tries = []
    for op_types in QUANTIZED_OPS:
        present = [op for op in op_types if surgery.has_any(model, [op])]
        if tries and present == tries[-1]["op_types"]:
            continue  # this model has none of the op types the previous try added: same graph, same gate
        quantized = quantize_qdq(model, feeds, op_types)
        kind = surgery.quantization_kind(quantized)
        if kind != "qdq-int8":  # onnxruntime changed what quantize_static emits: do not hand TensorRT a bad graph
            raise ValueError(f"onnxruntime's static quantization produced a {kind!r} graph, "
                             "not TensorRT's signed int8 Q/DQ")
        gate = accuracy_gate(manifest, reference, run_cpu(quantized, feeds))
        tries.append({"op_types": present, "reason": gate["reason"], "passed": gate["passed"]})
        if gate["passed"]:
            break
    return quantized, {**gate, "op_types": present, "tries": tries}

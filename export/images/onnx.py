"""ONNX export, parity check, int8 static quantization and the shipped model folder.

    export_onnx      torch -> ONNX (input `pixels` [batch, 3, S, S] float32 -> `probs` [batch, 14] and the
                     pooled `embedding` [batch, dim] that the out-of-distribution check reads)
    parity           max |onnxruntime - PyTorch| on real inputs (must be below PARITY_TOL)
    quantize_int8    onnxruntime static QDQ quantization (per-channel int8 weights, uint8
                     activations), calibrated on preprocessed training images
    write_manifest   manifest.json (radedge.manifest.Manifest) for model.onnx, MODEL_CARD.md and any
                     other shipped file (the fp32 export stays out of the model folder)
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from radedge.labels import FINDINGS
from radedge.manifest import Manifest, TensorSpec, file_hashes

from ..common import git_commit
from .evaluate import FP32_NAME, onnx_outputs
from .model import ImageViT, ProbsWrapper

OPSET = 17
PARITY_TOL = 1e-4
INT8_AUC_BOUND = 0.01
QUANT_MODES = ("static", "static-matmul", "dynamic")  # tried in this order
STATIC_OPS = {"static": ["Conv", "MatMul", "Gemm"], "static-matmul": ["MatMul", "Gemm"]}


def export_onnx(model: ImageViT, path: Path) -> Path:
    """Legacy (TorchScript) exporter, opset 17, symbolic batch axis."""
    size = model.spec.size
    wrapper = ProbsWrapper(model.eval()).eval()
    dummy = torch.zeros(1, 3, size, size)
    with torch.no_grad():
        torch.onnx.export(wrapper, (dummy,), str(path), input_names=["pixels"], output_names=["probs", "embedding"],
                          dynamic_axes={"pixels": {0: "batch"}, "probs": {0: "batch"}, "embedding": {0: "batch"}},
                          opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(str(path))
    return path


def add_embedding_output(src: Path, dst: Path) -> Path:
    """Copy of an image graph with the pooled embedding as output `embedding` (graphs exported before
    the embedding was an output: the input of the head, whose Sigmoid makes `probs`)."""
    model = onnx.load(str(src))
    if any(o.name == "embedding" for o in model.graph.output):
        onnx.save(model, str(dst))
        return dst
    producer = {out: node for node in model.graph.node for out in node.output}
    sigmoid = producer["probs"]
    head = producer[sigmoid.input[0]]
    if head.op_type == "Add":  # MatMul + Add instead of Gemm
        head = next(producer[i] for i in head.input if i in producer and producer[i].op_type == "MatMul")
    if sigmoid.op_type != "Sigmoid" or head.op_type not in ("Gemm", "MatMul"):
        raise ValueError(f"{src}: no Sigmoid(head(embedding)) at the end of the graph")
    dim = next(i for i in model.graph.initializer if i.name == head.input[1]).dims
    trans_b = head.op_type == "Gemm" and any(a.name == "transB" and a.i for a in head.attribute)
    width = dim[1] if trans_b else dim[0]  # weight [out, in] when transposed, else [in, out]
    model.graph.node.append(onnx.helper.make_node("Identity", [head.input[0]], ["embedding"]))
    model.graph.output.append(onnx.helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, ["batch", width]))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return dst


@torch.no_grad()
def torch_probs(model: ImageViT, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    model.eval()
    wrapper = ProbsWrapper(model).eval()
    return np.concatenate([wrapper(torch.from_numpy(pixels[i:i + batch]))[0].numpy()
                           for i in range(0, len(pixels), batch)])


def parity(model: ImageViT, path: Path, pixels: np.ndarray) -> float:
    """Max absolute difference of probabilities between onnxruntime and PyTorch."""
    diff = float(np.abs(onnx_outputs(path, pixels)["probs"] - torch_probs(model, pixels)).max())
    if diff > PARITY_TOL:
        raise RuntimeError(f"ONNX parity failed: max |diff| {diff:.2e} > {PARITY_TOL:.0e}")
    return diff


class _Calibration(CalibrationDataReader):
    def __init__(self, pixels: np.ndarray, batch: int = 16):
        self._batches: Iterator[np.ndarray] = iter([pixels[i:i + batch] for i in range(0, len(pixels), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"pixels": batch}


def quantize_int8(fp32: Path, out: Path, calibration: np.ndarray, mode: str = "static") -> Path:
    """int8 model: "static" (QDQ, per-channel weights, calibrated on `calibration` pixels; Conv and
    MatMul), "static-matmul" (the same on the transformer's MatMul / Gemm only, stem kept fp32) or
    "dynamic" (MatMul weights only, activations quantized at run time)."""
    prepared = out.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    try:
        if mode in STATIC_OPS:
            quantize_static(str(prepared), str(out), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=STATIC_OPS[mode])
        elif mode == "dynamic":
            quantize_dynamic(str(prepared), str(out), per_channel=True, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"])
        else:
            raise ValueError(f"unknown quantization mode {mode!r}")
    finally:
        prepared.unlink(missing_ok=True)
    return out


# The image model is trained on the COVID-19 image data collection cases, mostly CC BY-NC-SA: the model is
# a derivative of NC-SA data (non-commercial use, share alike), whatever the licence of the code.
LICENCE = "CC-BY-NC-SA-4.0"


def write_manifest(folder: Path, name: str, size: int, preprocess: dict[str, Any], precision: str,
                   thresholds: dict[str, float], metrics: dict[str, Any], provenance: dict[str, Any],
                   embedding_dim: int, extra_files: Sequence[str] = (), trained_findings: Sequence[str] | None = None,
                   calibration: dict[str, Any] | None = None, ood: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None, licence: str = LICENCE) -> Manifest:
    files = ["model.onnx", *extra_files, "MODEL_CARD.md"]
    manifest = Manifest(
        name=name, task="image-findings", files=file_hashes(folder, files),
        inputs=[TensorSpec("pixels", "float32", ("batch", 3, size, size))],
        outputs=[TensorSpec("probs", "float32", ("batch", len(FINDINGS))),
                 TensorSpec("embedding", "float32", ("batch", embedding_dim))],
        precision=precision, preprocess=preprocess, thresholds=thresholds, metrics=metrics,
        provenance=provenance, trained_findings=list(trained_findings) if trained_findings is not None else None,
        calibration=calibration, ood=ood, extra=extra or {}, licence=licence,
    )
    manifest.validate()
    manifest.write(folder)
    return manifest


def provenance(command: Sequence[str], repo: Path, data: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"command": " ".join(command), "git_commit": git_commit(repo),
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "data": data, **more}


__all__ = ["FP32_NAME", "LICENCE", "QUANT_MODES", "INT8_AUC_BOUND", "PARITY_TOL", "add_embedding_output", "export_onnx", "onnx_outputs", "parity", "provenance",
           "quantize_int8", "torch_probs", "write_manifest"]

"""Throughput as a fraction of this machine's limit: FLOPs per item x items/s / measured peak.

FLOPs come from the model's ONNX graph (`count_flops` below) at the batch size and sequence length
(report models) or the fixed image size the throughput was measured at, divided by the batch; the peak is the int8 one
for int8 graphs and the better of the two fp32 ones for fp32 graphs (`measure_peaks` below). GPU rows
get no fraction: only a CPU peak is measured.

FLOPs: only the matrix products are counted (MatMul, Gemm, Conv and their int8 / contrib forms): in an
encoder they are essentially all of the arithmetic, and they are what the machine's measured peak
(a large matrix product) is a limit for. One multiply-add is 2 FLOPs (2 OPs for int8).

Shapes come from onnx shape inference after the symbolic axes (`batch`, `sequence`) are fixed;
nodes it cannot resolve (contrib operators) are retried with onnxruntime's symbolic shape inference.
Nodes that still have no shapes are listed under `unresolved`, never guessed.

Peaks: fp32 from a large numpy matrix product (the BLAS numpy ships with, all cores), int8 from onnxruntime's
MatMulInteger (uint8 activations x int8 weights, the kernel a dynamically quantized model runs)
at a transformer-like shape. Each is the best of several timed runs: a peak, not a typical rate.
"""
from __future__ import annotations

import math
import os
import time
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import onnx
from onnx import shape_inference

from .data import absolute


# ---- the roofline ---------------------------------------------------------------------------------
@lru_cache(maxsize=128)
def flops_per_item(onnx_path: str, sequence: int | None, batch: int = 1) -> float:
    """Matrix-product FLOPs per item (one report window of `sequence` tokens, or one image) in a batch of
    `batch`: counted for the whole batch and divided, since some products (e.g. DeBERTa's relative-position
    projections) are computed once per batch."""
    dims = {"batch": int(batch)}
    if sequence is not None:
        dims["sequence"] = int(sequence)
    return count_flops(absolute(onnx_path), dims)["total"] / batch


def peak_for(precision: str, device: str, peaks: Mapping[str, Any]) -> float | None:
    """GOP/s limit for a precision on the CPU, None where none was measured (GPU, fp16)."""
    if device != "cpu" or not peaks:
        return None
    if precision == "int8":
        return peaks.get("int8_gops")
    if precision == "fp32":
        return max(peaks.get("fp32_gflops") or 0, peaks.get("ort_fp32_gflops") or 0) or None
    return None


def annotate(row: dict[str, Any], onnx_path: str, sequence: int | None, throughput: float, precision: str,
             device: str, peaks: Mapping[str, Any], batch: int = 1) -> dict[str, Any]:
    """Add flops_per_item, achieved_gops and fraction_of_peak to a row (in place) and return it."""
    flops = flops_per_item(onnx_path, sequence, batch)
    achieved = flops * throughput / 1e9
    peak = peak_for(precision, device, peaks)
    row["flops_per_item"] = int(flops)
    row["achieved_gops"] = round(achieved, 2)
    row["peak_gops"] = peak
    row["fraction_of_peak"] = round(achieved / peak, 3) if peak else None
    return row


# ---- measured peaks --------------------------------------------------------------------------------
def _best_rate(fn, ops: float, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return ops / best / 1e9


def numpy_fp32_gflops(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of an n x n x n float32 matrix product in numpy."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    return _best_rate(lambda: a @ b, 2.0 * n**3, repeats)


def _matmul_session(m: int, k: int, n: int, integer: bool, threads: int | None):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if integer:
        weight = numpy_helper.from_array(rng.integers(-127, 128, size=(k, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "peak", [helper.make_tensor_value_info("a", a_type, [m, k])],
                              [helper.make_tensor_value_info("y", y_type, [m, n])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    a = (rng.integers(0, 256, size=(m, k), dtype=np.uint8) if integer
         else rng.standard_normal((m, k)).astype(np.float32))
    return session, a


def onnxruntime_gops(m: int = 2048, k: int = 768, n: int = 3072, integer: bool = True, repeats: int = 8,
                     threads: int | None = None) -> float:
    """G(FL)OP/s of one onnxruntime MatMulInteger (integer=True) or fp32 MatMul of [m, k] x [k, n]."""
    session, a = _matmul_session(m, k, n, integer, threads)
    return _best_rate(lambda: session.run(None, {"a": a}), 2.0 * m * k * n, repeats)


def measure_peaks(quick: bool = False) -> dict[str, Any]:
    """{"fp32_gflops", "ort_fp32_gflops", "int8_gops", "method"}: what the roofline divides by."""
    repeats = 3 if quick else 6
    return {
        "fp32_gflops": round(numpy_fp32_gflops(1024 if quick else 2048, repeats), 1),
        "ort_fp32_gflops": round(onnxruntime_gops(integer=False, repeats=repeats), 1),
        "int8_gops": round(onnxruntime_gops(integer=True, repeats=repeats), 1),
        "method": ("best of timed runs, at the start and at the end of the run: numpy float32 n x n x n matmul (n=2048); onnxruntime MatMul fp32 and "
                   "MatMulInteger u8 x s8 at [2048, 768] x [768, 3072]; all cores"),
    }


# ---- FLOPs of an ONNX graph ------------------------------------------------------------------------
# op type -> (index of input A, index of input B / weight); "conv" ops use the weight's shape.
MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "FusedMatMul": (0, 1),
              "DynamicQuantizeMatMul": (0, 1), "MatMulIntegerToFloat": (0, 1), "Gemm": (0, 1),
              "QGemm": (0, 3)}
CONV_OPS = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "FusedConv": 1}


def _fix_input_dims(model: onnx.ModelProto, dims: Mapping[str, int]) -> onnx.ModelProto:
    """A copy whose graph inputs have every symbolic axis replaced by its value in `dims`."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    initializers = {i.name for i in fixed.graph.initializer}
    for value in fixed.graph.input:
        if value.name in initializers:
            continue
        for d in value.type.tensor_type.shape.dim:
            if d.HasField("dim_param"):
                if d.dim_param not in dims:
                    raise ValueError(f"input {value.name!r} has axis {d.dim_param!r}: give its size")
                d.dim_value = int(dims[d.dim_param])
    return fixed


def _shapes_from(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    shapes: dict[str, list[int | None]] = {}
    graph = model.graph
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        t = value.type.tensor_type
        if t.HasField("shape"):
            shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def _known(shape: list[int | None] | None) -> bool:
    return shape is not None and all(isinstance(d, int) and d > 0 for d in shape)


def _infer(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    shapes = _shapes_from(shape_inference.infer_shapes(model, data_prop=True))
    if all(_known(shapes.get(n.output[0])) for n in model.graph.node if _counted(n)):
        return shapes
    try:  # contrib ops (com.microsoft) that onnx's inference does not know
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
        extra = _shapes_from(inferred) if inferred is not None else {}
    except Exception:  # a failure here only means fewer resolved nodes, reported as unresolved
        extra = {}
    for name, shape in extra.items():
        if _known(shape) and not _known(shapes.get(name)):
            shapes[name] = shape
    return shapes


def _counted(node: onnx.NodeProto) -> bool:
    return node.op_type in MATMUL_OPS or node.op_type in CONV_OPS


def _attr(node: onnx.NodeProto, name: str, default: int = 0) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(onnx.helper.get_attribute_value(a))
    return default


def node_flops(node: onnx.NodeProto, shapes: Mapping[str, list[int | None]]) -> int | None:
    """FLOPs of one counted node, or None when its shapes are unknown."""
    out = shapes.get(node.output[0])
    if not _known(out):
        return None
    out_elems = math.prod(out)  # type: ignore[arg-type]
    if node.op_type in MATMUL_OPS:
        a_shape = shapes.get(node.input[MATMUL_OPS[node.op_type][0]])
        if not _known(a_shape):
            return None
        transposed = _attr(node, "transA") if node.op_type in ("Gemm", "QGemm", "FusedMatMul") else 0
        k = a_shape[0] if len(a_shape) == 1 else a_shape[-2] if transposed else a_shape[-1]  # type: ignore[index]
        return 2 * out_elems * int(k)  # type: ignore[arg-type]
    w_shape = shapes.get(node.input[CONV_OPS[node.op_type]])
    if not _known(w_shape):
        return None
    return 2 * out_elems * math.prod(w_shape[1:])  # type: ignore[arg-type]


def constant_tensors(graph: onnx.GraphProto) -> set[str]:
    """Tensors that depend on weights only (initializers, Constant nodes and what is computed from them
    alone): onnxruntime folds those products once at load, so they cost nothing per call."""
    const = {init.name for init in graph.initializer}
    for node in graph.node:  # ONNX graphs are topologically sorted
        if node.op_type == "Constant" or (node.input and all(i in const or i == "" for i in node.input)):
            const.update(node.output)
    return const


def count_flops(model: str | os.PathLike | onnx.ModelProto, dims: Mapping[str, int]) -> dict[str, Any]:
    """FLOPs of one forward pass with the symbolic axes set to `dims` (e.g. {"batch": 1, "sequence": 88}).

    Returns {"total": int, "by_op": {op_type: flops}, "nodes": counted nodes, "unresolved": [names],
    "folded": FLOPs of weight-only products (e.g. DeBERTa's relative-position projections), not in total}.
    """
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model), load_external_data=False)
    fixed = _fix_input_dims(proto, dims)
    shapes = _infer(fixed)
    const = constant_tensors(fixed.graph)
    total, folded, by_op, unresolved, counted = 0, 0, {}, [], 0
    for node in fixed.graph.node:
        if not _counted(node):
            continue
        flops = node_flops(node, shapes)
        if flops is None:
            unresolved.append(node.name or node.output[0])
            continue
        if all(i in const or i == "" for i in node.input):
            folded += flops
            continue
        counted += 1
        total += flops
        by_op[node.op_type] = by_op.get(node.op_type, 0) + flops
    return {"total": total, "by_op": by_op, "nodes": counted, "unresolved": unresolved, "folded": folded,
            "dims": dict(dims)}

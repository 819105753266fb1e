"""FLOPs of an ONNX graph at concrete input sizes: the numerator of every roofline fraction.

Only the matrix products are counted (MatMul, Gemm, Conv and their int8 / contrib forms): in an
encoder they are essentially all of the arithmetic, and they are what the machine's measured peak
(a large matrix product) is a limit for. One multiply-add is 2 FLOPs (2 OPs for int8).

Shapes come from onnx shape inference after the symbolic axes (`batch`, `sequence`) are fixed;
nodes it cannot resolve (contrib operators) are retried with onnxruntime's symbolic shape inference.
Nodes that still have no shapes are listed under `unresolved`, never guessed.
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping

import onnx
from onnx import shape_inference

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

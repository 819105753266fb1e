"""ONNX graph surgery that TensorRT needs before it will parse (or run correctly) our exports.

Each pass takes an `onnx.ModelProto`, edits it in place and returns the number of places changed, so
`fix_for_tensorrt` can report what it did. The known problems, with where they were reported:

* **uint8 tensors** (DeBERTa's XSoftmax / XDropout symbolic functions in transformers before the fix
  of huggingface/transformers#23683; microsoft/DeBERTa#83): TensorRT has no UINT8 arithmetic, so a
  `Cast(to=UINT8)` fails to parse. NVIDIA's DeBERTa demo (demo/DeBERTa/deberta_onnx_modify.py) deletes
  those Casts; we retype them instead: to BOOL when every consumer reads a boolean (Where's condition,
  Not/And/Or/Xor) — the meaning those masks had — else to INT32, which holds every uint8 value.
* **integer unary ops** (DeBERTa's relative-position bucketing calls `sign` and `abs` on int64
  positions; NVIDIA/TensorRT#3124 and #3587, "validUnaryType"): TensorRT's unary layer wants floats
  (kSIGN also int32). We cast to float32 around Abs / Sign / Neg on integer tensors; exact for the
  position values involved (|x| < 2**24).
* **fp32-only mask constants** (`torch.finfo(float32).min` in masked_fill / additive attention masks):
  in fp16 they become -inf, and `-inf - -inf` turns a fully masked softmax row into NaN. For fp16
  builds scalar constants beyond the fp16 range are clamped to +/-1e4 (what BERT-era masks used).
* **onnxruntime-only quantization** (`quantize_dynamic`'s DynamicQuantizeLinear + MatMulInteger, and
  uint8 / asymmetric Q/DQ from `quantize_static`): TensorRT parses only signed int8 Q/DQ with zero
  point 0. `dequantize` turns such graphs back into float graphs with the int8-rounded weights, so
  the shipped CPU model can still be built for the GPU in fp16 (or re-quantized for TensorRT).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FP16_MAX = 65504.0
MASK_CLAMP = 1e4
INTEGER_TYPES = {TensorProto.INT64, TensorProto.INT32, TensorProto.INT16, TensorProto.INT8, TensorProto.UINT8}
BOOLEAN_READERS = {("Where", 0), ("Not", 0), ("And", 0), ("And", 1), ("Or", 0), ("Or", 1), ("Xor", 0), ("Xor", 1)}
INTEGER_UNARY = {"Abs", "Sign", "Neg"}
DYNAMIC_QUANT_OPS = {"DynamicQuantizeLinear", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                     "MatMulIntegerToFloat"}


# ---- graph helpers -------------------------------------------------------------------------------
def consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """tensor name -> [(node, input index)] for every node reading it."""
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name:
                out[name].append((node, i))
    return out


def producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {name: node for node in graph.node for name in node.output if name}


def initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer}


def constant_array(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of an initializer or a Constant node's output, else None."""
    init = initializers(graph).get(name)
    if init is not None:
        return numpy_helper.to_array(init)
    node = producers(graph).get(name)
    if node is not None and node.op_type == "Constant":
        for attr in node.attribute:
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
    return None


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """tensor name -> ONNX element type, from shape inference (unknown tensors are left out)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is a help, not a requirement
        inferred = model
    g = inferred.graph
    types = {}
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        types[init.name] = init.data_type
    return types


def _unique(graph: onnx.GraphProto, base: str) -> str:
    taken = {n for node in graph.node for n in [node.name, *node.output, *node.input]}
    taken |= {t.name for t in graph.initializer} | {t.name for t in graph.input}
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


def prune_dead_nodes(graph: onnx.GraphProto) -> int:
    """Drop nodes (and initializers) nothing reads any more; returns how many nodes went."""
    removed = 0
    while True:
        used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        removed += len(dead)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
    return removed


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _set_attr(node: onnx.NodeProto, name: str, value) -> None:
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


# ---- passes --------------------------------------------------------------------------------------
def retype_uint8_casts(model: onnx.ModelProto) -> int:
    """Cast(to=UINT8) -> Cast(to=BOOL) when only boolean readers follow, else Cast(to=INT32)."""
    graph = model.graph
    readers = consumers(graph)
    changed = 0
    for node in graph.node:
        if node.op_type != "Cast" or _attr(node, "to") != TensorProto.UINT8:
            continue
        uses = readers.get(node.output[0], [])
        boolean = bool(uses) and all((n.op_type, i) in BOOLEAN_READERS for n, i in uses)
        _set_attr(node, "to", TensorProto.BOOL if boolean else TensorProto.INT32)
        changed += 1
    return changed


def float_integer_unary(model: onnx.ModelProto) -> int:
    """Wrap Abs / Sign / Neg on integer tensors in Cast(float32) ... Cast(back)."""
    graph = model.graph
    types = elem_types(model)
    changed = 0
    for node in list(graph.node):
        if node.op_type not in INTEGER_UNARY or types.get(node.input[0]) not in INTEGER_TYPES:
            continue
        int_type = types[node.input[0]]
        as_float = _unique(graph, f"{node.input[0]}_as_float")
        float_out = _unique(graph, f"{node.output[0]}_float")
        index = list(graph.node).index(node)
        graph.node.insert(index, helper.make_node("Cast", [node.input[0]], [as_float], to=TensorProto.FLOAT,
                                                  name=_unique(graph, f"{node.name or node.op_type}_to_float")))
        original_out = node.output[0]
        node.input[0], node.output[0] = as_float, float_out
        graph.node.insert(index + 2, helper.make_node("Cast", [float_out], [original_out], to=int_type,
                                                      name=_unique(graph, f"{node.name or node.op_type}_to_int")))
        changed += 1
    return changed


def clamp_fp16_constants(model: onnx.ModelProto, limit: float = MASK_CLAMP) -> int:
    """Scalar float constants outside the fp16 range -> +/-limit (finfo.min masks stay finite)."""
    changed = 0

    def clamp(t: onnx.TensorProto) -> onnx.TensorProto | None:
        if t.data_type not in (TensorProto.FLOAT, TensorProto.DOUBLE):
            return None
        value = numpy_helper.to_array(t)
        if value.size != 1 or not np.all(np.abs(value) > FP16_MAX):
            return None
        return numpy_helper.from_array((np.sign(value) * limit).astype(value.dtype), t.name)

    graph = model.graph
    for i, init in enumerate(graph.initializer):
        new = clamp(init)
        if new is not None:
            graph.initializer[i].CopyFrom(new)
            changed += 1
    for node in graph.node:
        if node.op_type in ("Constant", "ConstantOfShape"):
            for attr in node.attribute:
                if attr.name == "value":
                    new = clamp(attr.t)
                    if new is not None:
                        attr.t.CopyFrom(new)
                        changed += 1
    return changed


# ---- quantized graphs ----------------------------------------------------------------------------
def quantization_kind(model: onnx.ModelProto) -> str:
    """"float", "qdq-int8" (TensorRT-ready: signed int8, zero point 0), "qdq-other" (uint8 or
    asymmetric Q/DQ), or "dynamic" (onnxruntime-only integer ops)."""
    graph = model.graph
    ops = {n.op_type for n in graph.node}
    if ops & DYNAMIC_QUANT_OPS:
        return "dynamic"
    qdq = [n for n in graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if not qdq:
        return "float"
    for node in qdq:
        zp = constant_array(graph, node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if zp is None:
            if node.op_type == "QuantizeLinear" and _attr(node, "output_dtype", 0) not in (0, TensorProto.INT8):
                return "qdq-other"
            if node.op_type == "QuantizeLinear" and _attr(node, "output_dtype", 0) == 0:
                return "qdq-other"  # default output type of QuantizeLinear is uint8
            continue
        if zp.dtype != np.int8 or np.any(zp != 0):
            return "qdq-other"
    return "qdq-int8"


def _dequantized(graph: onnx.GraphProto, q: str, scale: str, zp: str | None, axis: int | None) -> np.ndarray:
    values = constant_array(graph, q).astype(np.float32)
    s = constant_array(graph, scale).astype(np.float32)
    z = constant_array(graph, zp).astype(np.float32) if zp else np.zeros_like(s)
    if s.ndim == 1 and s.size > 1:  # per-channel along `axis`
        shape = [1] * values.ndim
        shape[axis if axis is not None else 1] = -1
        s, z = s.reshape(shape), z.reshape(shape)
    return (values - z) * s


def dequantize(model: onnx.ModelProto) -> int:
    """Turn an onnxruntime-quantized graph back into a float graph with int8-rounded weights.

    Handles quantize_dynamic's DynamicQuantizeLinear -> MatMulInteger -> Cast -> Mul(scale) chain,
    com.microsoft DynamicQuantizeMatMul, and Q/DQ graphs (weight DequantizeLinear folded into a float
    initializer; activation QuantizeLinear -> DequantizeLinear pairs bypassed).
    """
    graph = model.graph
    changed = _dequantize_matmul_integer(graph) + _dequantize_dqmm(graph) + _dequantize_qdq(graph)
    prune_dead_nodes(graph)
    left = {n.op_type for n in graph.node} & (DYNAMIC_QUANT_OPS | {"QuantizeLinear", "DequantizeLinear"})
    if left:
        raise ValueError(f"could not dequantize every quantized node (left: {', '.join(sorted(left))})")
    return changed


def _dequantize_matmul_integer(graph: onnx.GraphProto) -> int:
    made = producers(graph)
    readers = consumers(graph)
    changed = 0
    for node in [n for n in graph.node if n.op_type == "MatMulInteger"]:
        dq = made.get(node.input[0])
        if dq is None or dq.op_type != "DynamicQuantizeLinear":
            raise ValueError(f"MatMulInteger {node.name!r}: input A is not from DynamicQuantizeLinear")
        cast = _only_reader(readers, node.output[0], "Cast")
        mul = _only_reader(readers, cast.output[0], "Mul")
        scale_in = mul.input[1] if mul.input[0] == cast.output[0] else mul.input[0]
        scale_mul = made.get(scale_in)
        if scale_mul is None or scale_mul.op_type != "Mul":
            raise ValueError(f"MatMulInteger {node.name!r}: no scale Mul after it")
        w_scale = scale_mul.input[1] if scale_mul.input[0] == dq.output[1] else scale_mul.input[0]
        w_zp = node.input[3] if len(node.input) > 3 and node.input[3] else None
        weight = _dequantized(graph, node.input[1], w_scale, w_zp, axis=1)
        w_name = _unique(graph, f"{node.input[1]}_dequantized")
        graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), w_name))
        index = list(graph.node).index(mul)
        graph.node.insert(index, helper.make_node("MatMul", [dq.input[0], w_name], [mul.output[0]],
                                                  name=_unique(graph, f"{node.name or 'MatMul'}_float")))
        graph.node.remove(mul)  # its output is now the new MatMul's; the rest goes in prune_dead_nodes
        changed += 1
    return changed


def _only_reader(readers, tensor: str, op: str) -> onnx.NodeProto:
    uses = readers.get(tensor, [])
    if len(uses) != 1 or uses[0][0].op_type != op:
        raise ValueError(f"expected {tensor!r} to be read by one {op}, found {[n.op_type for n, _ in uses]}")
    return uses[0][0]


def _dequantize_dqmm(graph: onnx.GraphProto) -> int:
    changed = 0
    for node in [n for n in graph.node if n.op_type == "DynamicQuantizeMatMul"]:
        zp = node.input[3] if len(node.input) > 3 and node.input[3] else None
        weight = _dequantized(graph, node.input[1], node.input[2], zp, axis=1)
        w_name = _unique(graph, f"{node.input[1]}_dequantized")
        graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), w_name))
        index = list(graph.node).index(node)
        bias = node.input[4] if len(node.input) > 4 and node.input[4] else None
        mm_out = _unique(graph, f"{node.output[0]}_nobias") if bias else node.output[0]
        new = [helper.make_node("MatMul", [node.input[0], w_name], [mm_out])]
        if bias:
            new.append(helper.make_node("Add", [mm_out, bias], [node.output[0]]))
        graph.node.remove(node)
        for offset, n in enumerate(new):
            graph.node.insert(index + offset, n)
        changed += 1
    return changed


def _dequantize_qdq(graph: onnx.GraphProto) -> int:
    changed = 0
    made = producers(graph)
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
        source = made.get(node.input[0])
        if source is not None and source.op_type == "QuantizeLinear":
            # Activation fake-quant: keep its clipping (it can carry a fused Relu: uint8, zero point 0)
            # but not its rounding.
            lo, hi = _fake_quant_range(graph, source)
            names = [_unique(graph, f"{node.output[0]}_lo"), _unique(graph, f"{node.output[0]}_hi")]
            graph.initializer.extend([numpy_helper.from_array(np.array(lo, np.float32), names[0]),
                                      numpy_helper.from_array(np.array(hi, np.float32), names[1])])
            index = list(graph.node).index(node)
            graph.node.insert(index, helper.make_node("Clip", [source.input[0], *names], [node.output[0]],
                                                      name=_unique(graph, f"{node.name or 'fake_quant'}_clip")))
        elif constant_array(graph, node.input[0]) is not None:
            zp = node.input[2] if len(node.input) > 2 and node.input[2] else None
            weight = _dequantized(graph, node.input[0], node.input[1], zp, axis=_attr(node, "axis", 1))
            graph.initializer.append(numpy_helper.from_array(weight.astype(np.float32), node.output[0]))
        else:
            raise ValueError(f"DequantizeLinear {node.name!r}: input is neither constant nor from QuantizeLinear")
        graph.node.remove(node)
        changed += 1
    return changed


def _fake_quant_range(graph: onnx.GraphProto, quant: onnx.NodeProto) -> tuple[float, float]:
    """The float interval a QuantizeLinear can represent: [(qmin - zp) * scale, (qmax - zp) * scale]."""
    scale = constant_array(graph, quant.input[1])
    zp = constant_array(graph, quant.input[2]) if len(quant.input) > 2 and quant.input[2] else None
    if scale is None or scale.size != 1:
        raise ValueError(f"QuantizeLinear {quant.name!r}: only per-tensor activation quantization is supported")
    info = np.iinfo(zp.dtype if zp is not None else np.uint8)
    z = float(zp.reshape(())) if zp is not None else 0.0
    s = float(scale.reshape(()))
    return (info.min - z) * s, (info.max - z) * s


# ---- all together --------------------------------------------------------------------------------
def fix_for_tensorrt(model: onnx.ModelProto, fp16: bool = False) -> dict[str, int]:
    """Run every TensorRT fix; returns {pass name: places changed} (zeros when nothing was needed)."""
    report = {
        "retype_uint8_casts": retype_uint8_casts(model),
        "float_integer_unary": float_integer_unary(model),
        "clamp_fp16_constants": clamp_fp16_constants(model) if fp16 else 0,
    }
    onnx.checker.check_model(model)
    return report


def ops_in(model: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in model.graph.node}


def has_any(model: onnx.ModelProto, ops: Iterable[str]) -> bool:
    return bool(ops_in(model) & set(ops))

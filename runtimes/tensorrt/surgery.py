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
* **onnxruntime-only quantization** (`quantize_dynamic`'s DynamicQuantizeLinear + MatMulInteger /
  ConvInteger, its uint8 Gather tables followed by DequantizeLinear, and uint8 / asymmetric Q/DQ from
  `quantize_static`): TensorRT parses only signed int8 Q/DQ with zero point 0. `dequantize` turns such
  graphs back into float graphs with the int8-rounded weights, so the shipped CPU model can still be
  built for the GPU in fp16 (or re-quantized for TensorRT).
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
INTEGER_OPS = {"MatMulInteger": "MatMul", "ConvInteger": "Conv"}  # integer op -> its float form
# Ops that only pick or move elements, so they commute with dequantization: onnxruntime runs them on
# the integer tensor (its Gather and Direct8BitOp quantizers) and dequantizes after. Input 0 is the data.
MOVEMENT_OPS = {"Gather", "Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Slice", "Identity", "Expand"}


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


def dequantize(model: onnx.ModelProto) -> int:
    """Turn an onnxruntime-quantized graph back into a float graph with int8-rounded weights.

    Every quantized tensor is traced back (through MOVEMENT_OPS) to where its integers were made and
    replaced by the float tensor it stands for:

    * a constant (a quantized weight or embedding table): dequantized once, here, into a float
      initializer; the Gather / Reshape / ... that read it now read the float table. This is how
      `quantize_dynamic` output with `Gather` in its op types (the report student's word, position
      and token-type embeddings: Gather on a uint8 table -> DequantizeLinear) becomes parseable.
      The alternative, Gather on the integer table followed by DequantizeLinear, is not open to
      TensorRT: its DequantizeLinear takes only signed int8 with zero point 0, and these tables are
      asymmetric uint8. The float table is exact (Gather picks rows; dequantizing before or after
      picking gives the same numbers) and costs only memory (an fp16 plan stores it at 2 bytes a value);
    * DynamicQuantizeLinear's output: the float input it quantized (activations are not rounded);
    * QuantizeLinear's output: a Clip to the range it could represent (its clipping kept, rounding not).

    Integer ops (MatMulInteger, ConvInteger from quantize_dynamic, per-tensor or per-channel weights;
    com.microsoft DynamicQuantizeMatMul) become MatMul / Conv on those floats; DequantizeLinear nodes
    (Q/DQ graphs, and what quantize_dynamic puts after a quantized Gather) become the float tensor.
    Raises ValueError, naming the node, for anything it cannot follow.
    """
    graph = model.graph
    changed = _dequantize_integer_ops(graph) + _dequantize_dqmm(graph) + _dequantize_qdq(graph)
    prune_dead_nodes(graph)
    left = {n.op_type for n in graph.node} & (DYNAMIC_QUANT_OPS | {"QuantizeLinear", "DequantizeLinear"})
    if left:
        raise ValueError(f"could not dequantize every quantized node (left: {', '.join(sorted(left))})")
    return changed


def _input(node: onnx.NodeProto, index: int) -> str | None:
    """An optional input's name, None when absent or empty."""
    return node.input[index] if len(node.input) > index and node.input[index] else None


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray:
    value = constant_array(graph, name)
    if value is None:
        raise ValueError(f"{name!r} should be a constant (initializer or Constant node) and is not")
    return value


def _dequantized(graph: onnx.GraphProto, q: str, scale: str | None, zp: str | None, axis: int) -> np.ndarray:
    """(q - zp) * scale as float32, per-tensor or per-channel along `axis`; scale None means 1."""
    values = _constant(graph, q).astype(np.float32)
    s = _constant(graph, scale).astype(np.float32) if scale else np.ones((), np.float32)
    z = _constant(graph, zp).astype(np.float32) if zp else np.zeros((), np.float32)
    shape = [1] * values.ndim
    shape[axis] = -1
    s = s.reshape(shape) if s.size > 1 else s.reshape(())
    z = z.reshape(shape) if z.size > 1 else z.reshape(())
    return ((values - z) * s).astype(np.float32)


def _quantized_root(graph: onnx.GraphProto, tensor: str) -> tuple[list[onnx.NodeProto], str]:
    """Where a quantized tensor's integers were made: (the MOVEMENT_OPS between, root first; the root tensor)."""
    made = producers(graph)
    chain: list[onnx.NodeProto] = []
    while constant_array(graph, tensor) is None:
        node = made.get(tensor)
        if node is None or node.op_type not in MOVEMENT_OPS:
            break
        chain.insert(0, node)
        tensor = node.input[0]
    return chain, tensor


def _float_twin(graph: onnx.GraphProto, tensor: str, scale: str | None, zp: str | None, axis: int,
                out: str) -> list[onnx.NodeProto]:
    """Nodes that compute, into `out`, the float tensor that DequantizeLinear(tensor, scale, zp, axis)
    stands for, from its source instead of its integers (see `dequantize`). Constants are added to the
    graph at once; the nodes are returned for the caller to insert where `tensor`'s reader was."""
    chain, root = _quantized_root(graph, tensor)
    source = producers(graph).get(root)
    nodes: list[onnx.NodeProto] = []
    if constant_array(graph, root) is not None:
        if chain and scale and _constant(graph, scale).size > 1:
            raise ValueError(f"{tensor!r}: per-channel dequantization after {chain[-1].op_type} "
                             f"{chain[-1].name!r} is not supported (quantize_dynamic quantizes Gather per tensor)")
        start = _unique(graph, f"{root}_dequantized") if chain else out
        graph.initializer.append(numpy_helper.from_array(_dequantized(graph, root, scale, zp, axis), start))
    elif source is not None and source.op_type == "DynamicQuantizeLinear" and root == source.output[0]:
        if scale != source.output[1]:
            raise ValueError(f"{tensor!r}: dequantized with {scale!r}, not the scale of DynamicQuantizeLinear "
                             f"{source.name!r} that made it")
        start = source.input[0]
    elif source is not None and source.op_type == "QuantizeLinear":
        lo, hi = _fake_quant_range(graph, source)
        bounds = [_unique(graph, f"{root}_lo"), _unique(graph, f"{root}_hi")]
        graph.initializer.extend([numpy_helper.from_array(np.array(lo, np.float32), bounds[0]),
                                  numpy_helper.from_array(np.array(hi, np.float32), bounds[1])])
        start = out if not chain else _unique(graph, f"{root}_clipped")
        nodes.append(helper.make_node("Clip", [source.input[0], *bounds], [start],
                                      name=_unique(graph, f"{source.name or 'fake_quant'}_clip")))
    else:
        made_by = f"{source.op_type} {source.name!r}" if source is not None else "a graph input"
        raise ValueError(f"{tensor!r}: its integers come from {made_by}, not from a constant, "
                         "DynamicQuantizeLinear or QuantizeLinear")
    for i, node in enumerate(chain):
        clone = onnx.NodeProto()
        clone.CopyFrom(node)
        clone.name = _unique(graph, f"{node.name or node.op_type}_float")
        clone.input[0] = start
        start = out if i == len(chain) - 1 else _unique(graph, f"{node.output[0]}_float")
        clone.output[0] = start
        nodes.append(clone)
    if start != out:
        nodes.append(helper.make_node("Identity", [start], [out], name=_unique(graph, f"{out}_identity")))
    return nodes


def _insert(graph: onnx.GraphProto, index: int, nodes: list[onnx.NodeProto]) -> None:
    for offset, node in enumerate(nodes):
        graph.node.insert(index + offset, node)


def _other_input(node: onnx.NodeProto, name: str) -> str:
    return node.input[1] if node.input[0] == name else node.input[0]


def _dequantize_integer_ops(graph: onnx.GraphProto) -> int:
    """MatMulInteger / ConvInteger -> Cast -> Mul(scales) back to MatMul / Conv on floats.

    quantize_dynamic's usual form has input A from DynamicQuantizeLinear and the Mul by (A's scale x
    the weight's scale): A becomes the float activation, B the dequantized weight, and the MatMul / Conv
    writes the Mul's output. When A's integers come from a constant instead (a quantized embedding
    read straight by a MatMul), both sides become their exact integer values as floats and the
    scale Mul after the Cast stays."""
    changed = 0
    for node in [n for n in graph.node if n.op_type in INTEGER_OPS]:
        readers, made = consumers(graph), producers(graph)
        cast = _only_reader(readers, node.output[0], "Cast")
        a_zp, w_zp = _input(node, 2), _input(node, 3)
        weight_axis = 0 if node.op_type == "ConvInteger" else -1  # per output channel / output column
        a_float = _unique(graph, f"{node.input[0]}_float")
        chain, root = _quantized_root(graph, node.input[0])
        dynamic = made.get(root)
        if dynamic is not None and dynamic.op_type == "DynamicQuantizeLinear":
            a_scale = dynamic.output[1]
            mul = _only_reader(readers, cast.output[0], "Mul")
            scales = made.get(_other_input(mul, cast.output[0]))
            if scales is None or scales.op_type != "Mul" or a_scale not in scales.input:
                raise ValueError(f"{node.op_type} {node.name!r}: no Mul by its input's scale after it")
            weight = _dequantized(graph, node.input[1], _other_input(scales, a_scale), w_zp, weight_axis)
            new = _float_twin(graph, node.input[0], a_scale, a_zp, 1, a_float)
            replaced = mul
        else:
            weight = _dequantized(graph, node.input[1], None, w_zp, weight_axis)
            new = _float_twin(graph, node.input[0], None, a_zp, 1, a_float)
            replaced = cast
        w_name = _unique(graph, f"{node.input[1]}_dequantized")
        graph.initializer.append(numpy_helper.from_array(weight, w_name))
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        new.append(helper.make_node(INTEGER_OPS[node.op_type], [a_float, w_name], [replaced.output[0]],
                                    name=_unique(graph, f"{node.name or node.op_type}_float"), **attrs))
        index = list(graph.node).index(node)
        graph.node.remove(replaced)  # its output is now the float op's; the rest goes in prune_dead_nodes
        _insert(graph, index, new)
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
        weight = _dequantized(graph, node.input[1], node.input[2], _input(node, 3), axis=-1)
        w_name = _unique(graph, f"{node.input[1]}_dequantized")
        graph.initializer.append(numpy_helper.from_array(weight, w_name))
        index = list(graph.node).index(node)
        bias = _input(node, 4)
        mm_out = _unique(graph, f"{node.output[0]}_nobias") if bias else node.output[0]
        new = [helper.make_node("MatMul", [node.input[0], w_name], [mm_out])]
        if bias:
            new.append(helper.make_node("Add", [mm_out, bias], [node.output[0]]))
        graph.node.remove(node)
        _insert(graph, index, new)
        changed += 1
    return changed


def _dequantize_qdq(graph: onnx.GraphProto) -> int:
    changed = 0
    for node in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
        new = _float_twin(graph, node.input[0], node.input[1], _input(node, 2), _attr(node, "axis", 1),
                          node.output[0])
        index = list(graph.node).index(node)
        graph.node.remove(node)
        _insert(graph, index, new)
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

"""surgery.dequantize on each pattern onnxruntime's quantize_dynamic writes, one small graph per pattern
(the shipped models run through it in test_tensorrt_shipped.py): a uint8 embedding table read by Gather
(and by Reshape / Transpose after it) then DequantizeLinear, a quantized Gather read straight by
MatMulInteger, DynamicQuantizeLinear -> Transpose on integers -> DequantizeLinear, ConvInteger; and
the one-line errors for what it cannot follow."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtimes.tensorrt import surgery
from tests.onnx_graphs import graph, run_cpu

RNG = np.random.default_rng(0)


def _quantize_dynamic(model: onnx.ModelProto, tmp_path: Path, ops: list[str], **options) -> onnx.ModelProto:
    from onnxruntime.quantization import quantize_dynamic

    src, dst = tmp_path / "float.onnx", tmp_path / "dynamic.onnx"
    onnx.save(model, str(src))
    quantize_dynamic(str(src), str(dst), op_types_to_quantize=ops, **options)
    return onnx.load(str(dst))


def _embedding_model(after: str = "Add") -> onnx.ModelProto:
    """ids [b, s] -> Gather(table [50, 16]) -> `after` (Add of a bias, or MatMul [16, 8]) -> y."""
    table = numpy_helper.from_array(RNG.normal(size=(50, 16)).astype(np.float32), "table")
    if after == "Add":
        other = numpy_helper.from_array(RNG.normal(size=(16,)).astype(np.float32), "bias")
        nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"]), helper.make_node("Add", ["emb", "bias"], ["y"])]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 16])
    else:
        other = numpy_helper.from_array(RNG.normal(size=(16, 8)).astype(np.float32), "w")
        nodes = [helper.make_node("Gather", ["table", "ids"], ["emb"]), helper.make_node("MatMul", ["emb", "w"], ["y"])]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 8])
    return graph(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])], [out], [table, other])


IDS = {"ids": RNG.integers(0, 50, size=(3, 7)).astype(np.int64)}


def test_quantized_embedding_table_becomes_a_float_table_with_identical_outputs(tmp_path):
    """The shipped report student's pattern: Gather on a uint8 table, then DequantizeLinear."""
    quantized = _quantize_dynamic(_embedding_model(), tmp_path, ["Gather"])
    dq = [n for n in quantized.graph.node if n.op_type == "DequantizeLinear"]
    assert dq and surgery.producers(quantized.graph)[dq[0].input[0]].op_type == "Gather"
    expected = run_cpu(quantized, IDS)[0]
    assert surgery.dequantize(quantized) == 1
    assert surgery.quantization_kind(quantized) == "float"
    onnx.checker.check_model(quantized)
    gather = next(n for n in quantized.graph.node if n.op_type == "Gather")
    assert surgery.constant_array(quantized.graph, gather.input[0]).dtype == np.float32
    np.testing.assert_allclose(run_cpu(quantized, IDS)[0], expected, rtol=0, atol=1e-6)


def test_integer_reshape_and_transpose_between_gather_and_dequantize_are_replayed_on_floats():
    table = numpy_helper.from_array(RNG.integers(0, 255, size=(50, 16), dtype=np.uint8), "table_q")
    scale = numpy_helper.from_array(np.array(0.02, np.float32), "scale")
    zp = numpy_helper.from_array(np.array(128, np.uint8), "zp")
    shape = numpy_helper.from_array(np.array([0, 0, 4, 4], np.int64), "shape")
    nodes = [helper.make_node("Gather", ["table_q", "ids"], ["g"]), helper.make_node("Reshape", ["g", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("DequantizeLinear", ["t", "scale", "zp"], ["y"])]
    model = graph(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4, "s", 4])], [table, scale, zp, shape])
    expected = run_cpu(model, IDS)[0]
    surgery.dequantize(model)
    assert surgery.ops_in(model) == {"Gather", "Reshape", "Transpose"}
    onnx.checker.check_model(model)
    np.testing.assert_allclose(run_cpu(model, IDS)[0], expected, rtol=0, atol=1e-6)


def test_quantized_gather_read_straight_by_matmulinteger_stays_exact(tmp_path):
    """quantize_dynamic reuses a quantized Gather output as MatMulInteger's A (no DynamicQuantizeLinear)."""
    quantized = _quantize_dynamic(_embedding_model("MatMul"), tmp_path, ["Gather", "MatMul"], per_channel=True)
    ops = surgery.ops_in(quantized)
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" not in ops
    expected = run_cpu(quantized, IDS)[0]
    surgery.dequantize(quantized)
    assert surgery.quantization_kind(quantized) == "float"
    onnx.checker.check_model(quantized)
    np.testing.assert_allclose(run_cpu(quantized, IDS)[0], expected, rtol=1e-5, atol=1e-5)


def test_dynamic_quantize_then_integer_transpose_then_dequantize(tmp_path):
    """x is quantized once for a MatMul; a Transpose of x then runs on the integers (Direct8BitOp)."""
    w = numpy_helper.from_array(RNG.normal(size=(16, 8)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Transpose", ["x"], ["xt"], perm=[1, 0])]
    model = graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8]),
                    helper.make_tensor_value_info("xt", TensorProto.FLOAT, [16, 4])], [w])
    x = RNG.normal(size=(4, 16)).astype(np.float32)
    reference = run_cpu(model, {"x": x})
    quantized = _quantize_dynamic(model, tmp_path, ["MatMul", "Transpose"])
    transpose = next(n for n in quantized.graph.node if n.op_type == "Transpose")
    assert surgery.producers(quantized.graph)[transpose.input[0]].op_type == "DynamicQuantizeLinear"
    surgery.dequantize(quantized)
    assert surgery.quantization_kind(quantized) == "float"
    y, xt = run_cpu(quantized, {"x": x})
    np.testing.assert_array_equal(xt, x.T)  # activations are no longer rounded
    assert np.max(np.abs(y - reference[0])) < 0.02 * np.max(np.abs(reference[0]))


def test_conv_integer_becomes_conv_on_float_weights(tmp_path):
    weight = numpy_helper.from_array(RNG.normal(size=(6, 3, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(RNG.normal(size=(6,)).astype(np.float32), "bias")
    model = graph([helper.make_node("Conv", ["x", "w", "bias"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])],
                   [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 12, 12])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 6, 6, 6])], [weight, bias])
    x = RNG.normal(size=(2, 3, 12, 12)).astype(np.float32)
    reference = run_cpu(model, {"x": x})[0]
    from onnxruntime.quantization import QuantType

    quantized = _quantize_dynamic(model, tmp_path, ["Conv"], weight_type=QuantType.QUInt8)
    assert "ConvInteger" in surgery.ops_in(quantized)
    assert surgery.dequantize(quantized) == 1
    assert "Conv" in surgery.ops_in(quantized) and surgery.quantization_kind(quantized) == "float"
    onnx.checker.check_model(quantized)
    conv = next(n for n in quantized.graph.node if n.op_type == "Conv")
    assert {a.name for a in conv.attribute} >= {"pads", "strides"}
    result = run_cpu(quantized, {"x": x})[0]
    assert np.max(np.abs(result - reference)) < 0.02 * np.max(np.abs(reference))


def test_per_channel_dequantize_after_gather_is_refused_by_name():
    table = numpy_helper.from_array(RNG.integers(-127, 127, size=(50, 16), dtype=np.int8), "table_q")
    scale = numpy_helper.from_array(np.full(16, 0.01, np.float32), "scale")
    nodes = [helper.make_node("Gather", ["table_q", "ids"], ["g"], name="embed"),
             helper.make_node("DequantizeLinear", ["g", "scale"], ["y"], axis=2)]
    model = graph(nodes, [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", "s", 16])], [table, scale])
    with pytest.raises(ValueError, match="per-channel dequantization after Gather 'embed'"):
        surgery.dequantize(model)


def test_dequantize_of_a_graph_input_names_where_the_integers_came_from():
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    model = graph([helper.make_node("DequantizeLinear", ["q", "scale"], ["y"])],
                   [helper.make_tensor_value_info("q", TensorProto.INT8, [4])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [scale])
    with pytest.raises(ValueError, match="'q': its integers come from a graph input"):
        surgery.dequantize(model)

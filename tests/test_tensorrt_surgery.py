"""runtimes.tensorrt.surgery: the ONNX fixes TensorRT needs (uint8 casts, integer unary ops, fp16
constants, quantized graphs), on the CPU; and on a real DeBERTa-v2 export (export extra)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtimes.tensorrt import surgery
from tests.deberta import deberta_feeds
from tests.onnx_graphs import graph, mlp, quantize, run_cpu


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
    return graph(nodes, [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", "s"]),
                          helper.make_tensor_value_info("mask", TensorProto.INT64, ["b", "s"])],
                  [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["b", "s"])], [one, fmin, zero])


def test_uint8_cast_feeding_a_cast_becomes_int32_and_keeps_the_output():
    model = _xsoftmax_uint8()
    feeds = {"scores": np.random.default_rng(0).normal(size=(2, 5)).astype(np.float32),
             "mask": np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=np.int64)}
    before = run_cpu(model, feeds)[0]
    report = surgery.fix_for_tensorrt(model)
    assert report["retype_uint8_casts"] == 1
    casts = [helper.get_attribute_value(n.attribute[0]) for n in model.graph.node if n.op_type == "Cast"]
    assert TensorProto.UINT8 not in casts and TensorProto.INT32 in casts
    np.testing.assert_allclose(run_cpu(model, feeds)[0], before, rtol=0, atol=0)


def test_uint8_cast_read_only_as_a_condition_becomes_bool():
    nodes = [helper.make_node("Cast", ["m"], ["m8"], to=TensorProto.UINT8),
             helper.make_node("Where", ["m8", "a", "b"], ["y"])]  # invalid ONNX, as such old exports were
    model = graph(nodes, [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2]) for n in ("m", "a", "b")],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    assert surgery.retype_uint8_casts(model) == 1
    assert helper.get_attribute_value(model.graph.node[0].attribute[0]) == TensorProto.BOOL


# ---- surgery: integer unary ops, fp16 constants ------------------------------------------------
def _relative_buckets() -> onnx.ModelProto:
    """DeBERTa's make_log_bucket_position uses sign() and abs() of int64 relative positions."""
    nodes = [helper.make_node("Sign", ["rel"], ["sign"]), helper.make_node("Abs", ["rel"], ["abs"]),
             helper.make_node("Mul", ["sign", "abs"], ["y"])]
    return graph(nodes, [helper.make_tensor_value_info("rel", TensorProto.INT64, ["s", "s"])],
                  [helper.make_tensor_value_info("y", TensorProto.INT64, ["s", "s"])])


def test_integer_sign_and_abs_run_in_float_with_identical_results():
    model = _relative_buckets()
    rel = (np.arange(7)[:, None] - np.arange(7)[None, :]).astype(np.int64) * 1000
    before = run_cpu(model, {"rel": rel})[0]
    assert surgery.fix_for_tensorrt(model)["float_integer_unary"] == 2
    by_op = {n.op_type: n for n in model.graph.node}
    producers = surgery.producers(model.graph)
    assert producers[by_op["Sign"].input[0]].op_type == "Cast"
    result = run_cpu(model, {"rel": rel})[0]
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, before)


def test_float_unary_ops_are_left_alone():
    model = graph([helper.make_node("Abs", ["x"], ["y"])],
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
    assert np.all(np.isfinite(run_cpu(model, feeds)[0]))


# ---- surgery: quantized graphs -------------------------------------------------------------------
@pytest.mark.parametrize("how,kind", [("dynamic", "dynamic"), ("qdq-uint8", "qdq-other"), ("qdq-int8", "qdq-int8")])
def test_quantization_kind(tmp_path, how, kind):
    assert surgery.quantization_kind(mlp()) == "float"
    assert surgery.quantization_kind(quantize(mlp(), tmp_path, how)) == kind


@pytest.mark.parametrize("how", ["dynamic", "qdq-uint8", "qdq-int8"])
def test_dequantize_gives_a_float_graph_close_to_the_original(tmp_path, how):
    x = np.random.default_rng(2).normal(size=(5, 16)).astype(np.float32)
    reference = run_cpu(mlp(), {"x": x})[0]
    quantized = quantize(mlp(), tmp_path, how)
    changed = surgery.dequantize(quantized)
    assert changed >= 2
    assert surgery.quantization_kind(quantized) == "float"
    onnx.checker.check_model(quantized)
    result = run_cpu(quantized, {"x": x})[0]
    # int8-rounded weights only (activations stay float): within 2% of the output scale
    assert np.max(np.abs(result - reference)) < 0.02 * np.max(np.abs(reference))


def test_dequantize_refuses_what_it_cannot_follow():
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("Identity", ["q"], ["y"])]
    model = graph(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                   [helper.make_tensor_value_info("y", TensorProto.UINT8, [2])])
    with pytest.raises(ValueError, match="could not dequantize"):
        surgery.dequantize(model)



@pytest.mark.export
def test_deberta_export_surgery_removes_integer_unary_ops_and_keeps_outputs(tiny_deberta_onnx):
    model = onnx.load(str(tiny_deberta_onnx))
    feeds = deberta_feeds()
    before = run_cpu(model, feeds)[0]
    report = surgery.fix_for_tensorrt(model)
    assert report["float_integer_unary"] >= 2  # sign() and abs() of the int64 relative positions
    types = surgery.elem_types(model)
    for node in model.graph.node:
        if node.op_type in surgery.INTEGER_UNARY:
            assert types.get(node.input[0]) not in surgery.INTEGER_TYPES, node.name
        if node.op_type == "Cast":
            assert helper.get_attribute_value(node.attribute[0]) != TensorProto.UINT8
    np.testing.assert_allclose(run_cpu(model, feeds)[0], before, atol=1e-5)

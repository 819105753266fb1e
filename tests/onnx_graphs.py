"""Small ONNX graphs built in code, run on onnxruntime's CPU provider, and quantized, for the graph tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper


def graph(nodes, inputs, outputs, initializers=(), opset=17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def run_cpu(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def mlp(seed: int = 0) -> onnx.ModelProto:
    """x [batch, 16] -> MatMul -> Relu -> MatMul -> y [batch, 8]: big enough for onnxruntime to quantize."""
    rng = np.random.default_rng(seed)
    w1 = numpy_helper.from_array(rng.normal(size=(16, 32)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(32, 8)).astype(np.float32), "w2")
    return graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "w2"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])], [w1, w2])


class Feeds:
    def __init__(self, batches):
        self._it = iter(batches)

    def get_next(self):
        return next(self._it, None)


def quantize(model: onnx.ModelProto, tmp_path: Path, how: str) -> onnx.ModelProto:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    src, dst = tmp_path / f"{how}-src.onnx", tmp_path / f"{how}.onnx"
    onnx.save(model, str(src))
    if how == "dynamic":
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    else:
        rng = np.random.default_rng(1)
        feeds = Feeds([{"x": rng.normal(size=(4, 16)).astype(np.float32)} for _ in range(4)])
        extra = {"ActivationSymmetric": True, "WeightSymmetric": True} if how == "qdq-int8" else {}
        quantize_static(str(src), str(dst), feeds, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8 if how == "qdq-int8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8, extra_options=extra)
    return onnx.load(str(dst))

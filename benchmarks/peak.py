"""This machine's measured arithmetic limits: the denominator of every roofline fraction.

fp32: a large numpy matrix product (the BLAS numpy ships with, all cores). int8: onnxruntime's
MatMulInteger (uint8 activations x int8 weights, the kernel a dynamically quantized model runs)
at a transformer-like shape. Each is the best of several timed runs: a peak, not a typical rate.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np


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

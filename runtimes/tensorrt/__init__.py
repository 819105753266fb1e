"""Build TensorRT plans for radedge model folders, on the GPU that will run them.

    python -m runtimes.tensorrt build MODEL [--precision fp16|int8] [--calib DIR] [--max-batch N]
                                            [--max-length N] [--cache-dir DIR] [--force]
    python -m runtimes.tensorrt prepare MODEL OUT.onnx [--precision ...]   # CPU only: the graph TensorRT gets
    radedge build-engine MODEL ...                                          # the same, from the radedge CLI

Python: `build_plan(model_dir, precision=...)` builds or finds the cached plan and returns a
BuildResult; `radedge.backends.tensorrt.engine_for(model_dir, manifest)` is what the runtime and the
benchmarks call (cache first, then this builder); `TensorRTBackend(plan, manifest)` runs a plan.

Modules: surgery (ONNX fixes TensorRT needs), profiles (shape ranges from the manifest), precision
(fp16 / int8 graphs, calibration and its accuracy gate), build (the TensorRT builder and cache).
Only build needs TensorRT; it is imported lazily, with a clear error when absent.
"""
from __future__ import annotations

from .build import BuildResult, build_plan, resolve_model, summary

__all__ = ["BuildResult", "build_plan", "resolve_model", "summary"]

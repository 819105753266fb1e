"""Inference backends behind one interface (`Backend`), chosen by name and device."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import BackendError
from ..manifest import Manifest
from .base import DEVICES, Backend

BACKENDS = ("onnxruntime", "tensorrt")


def open_backend(model_dir: str | os.PathLike, manifest: Manifest, backend: str = "onnxruntime",
                 device: str = "cpu", threads: int | None = None) -> Backend:
    """Open a verified model folder's graph on a backend and check its tensors against the manifest.

    `backend="onnxruntime"` with `device="cuda"` uses the CUDA execution provider; `backend="tensorrt"`
    loads this GPU's cached TensorRT plan (built beforehand by `radedge build-engine`).
    """
    model_path = Path(model_dir) / "model.onnx"
    if backend == "onnxruntime":
        from .onnxruntime import OnnxRuntimeBackend

        engine: Backend = OnnxRuntimeBackend(model_path, device=device, threads=threads)
    elif backend == "tensorrt":
        from .tensorrt import TensorRTBackend

        engine = TensorRTBackend.from_model_dir(model_dir, manifest, device=device)
    else:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    manifest.check_graph(engine.inputs, engine.outputs)
    return engine


__all__ = ["BACKENDS", "DEVICES", "Backend", "open_backend"]

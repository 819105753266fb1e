"""onnxruntime backend: CPU by default; CUDA and TensorRT execution providers on request."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import BackendError, DeviceUnavailableError
from ..manifest import TensorSpec

# onnxruntime type strings -> numpy dtype names used in manifests.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(bool)": "bool",
}
# What each radedge device asks of onnxruntime, in order of preference.
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else str(d) for d in node.shape)
    return TensorSpec(node.name, _ORT_TYPES.get(node.type, node.type), shape)


def providers_for(device: str, provider: str | None = None) -> list[str]:
    """Execution providers for a device; a missing requested one raises, only `auto` falls back."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "auto":
        for candidate in ("tensorrt", "cuda", "cpu"):
            if _PROVIDERS[candidate][0] in available:
                if candidate != "tensorrt" and "CUDAExecutionProvider" not in available:
                    warnings.warn("no GPU execution provider in onnxruntime; running on the CPU", stacklevel=3)
                return [p for p in _PROVIDERS[candidate] if p in available]
    key = provider or device
    if key not in _PROVIDERS:
        raise DeviceUnavailableError(f"unknown device {device!r}; choose one of cpu, cuda, auto")
    wanted = _PROVIDERS[key][0]
    if wanted not in available:
        raise DeviceUnavailableError(
            f"device {key!r} needs onnxruntime's {wanted}, which this install lacks "
            f"(available: {', '.join(available)}); install radedge[gpu] on a machine with an NVIDIA GPU"
        )
    return [p for p in _PROVIDERS[key] if p in available]


class OnnxRuntimeBackend:
    """One onnxruntime InferenceSession; `run` is thread-safe (onnxruntime allows concurrent Run calls)."""

    name = "onnxruntime"

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 provider: str | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        self.providers = providers_for(device, provider)
        self.device = "cpu" if self.providers[0] == "CPUExecutionProvider" else "cuda"
        try:
            self.session = ort.InferenceSession(str(Path(model_path)), sess_options=opts, providers=self.providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{model_path}: onnxruntime could not load the model ({exc})") from exc
        self.inputs = [_spec(i) for i in self.session.get_inputs()]
        self.outputs = [_spec(o) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self._output_names, dict(feeds))
        except Exception as exc:
            raise BackendError(f"onnxruntime inference failed: {exc}") from exc
        return dict(zip(self._output_names, values))

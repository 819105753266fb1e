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

    from .cuda import cuda_device_count

    # onnxruntime-gpu lists its GPU providers whether or not a GPU is present: check the device too.
    available = ort.get_available_providers()
    if device == "auto":
        if "CUDAExecutionProvider" not in available or cuda_device_count() == 0:
            warnings.warn("no GPU execution provider or no GPU visible; running on the CPU", stacklevel=3)
            return ["CPUExecutionProvider"]
        device = "cuda"  # auto prefers CUDA: the TensorRT provider builds engines for minutes on first use
    key = provider or device
    if key not in _PROVIDERS:
        raise DeviceUnavailableError(f"unknown device {device!r}; choose one of cpu, cuda, auto")
    wanted = _PROVIDERS[key][0]
    if wanted not in available:
        raise DeviceUnavailableError(
            f"device {key!r} needs onnxruntime's {wanted}, which this install lacks "
            f"(available: {', '.join(available)}); install radedge[gpu] on a machine with an NVIDIA GPU"
        )
    if key != "cpu" and cuda_device_count() == 0:
        raise DeviceUnavailableError(f"device {key!r}: onnxruntime has {wanted} but no CUDA GPU is visible")
    return [p for p in _PROVIDERS[key] if p in available]


def provider_options(providers: list[str]) -> list[dict[str, str]]:
    """Per-provider options: the TensorRT provider caches its engines and timings beside radedge's
    own plans (so only the first session on a GPU pays the build) and may use fp16."""
    from .plans import default_cache_dir

    trt_cache = str(default_cache_dir() / "onnxruntime-trt")
    trt = {"trt_engine_cache_enable": "True", "trt_engine_cache_path": trt_cache,
           "trt_timing_cache_enable": "True", "trt_timing_cache_path": trt_cache, "trt_fp16_enable": "True"}
    return [trt if p == "TensorrtExecutionProvider" else {} for p in providers]


class OnnxRuntimeBackend:
    """One onnxruntime InferenceSession; `run` is thread-safe (onnxruntime allows concurrent Run calls)."""

    name = "onnxruntime"

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu", threads: int | None = None,
                 provider: str | None = None, spin: bool | None = None) -> None:
        """`spin`: whether idle intra-op threads busy-wait for work (onnxruntime's default: yes). On a
        machine whose cores are busy with other processes, spinning threads burn the CPU time the
        working thread needs (`python -m benchmarks.peers threads` measures it); None keeps the default."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            opts.intra_op_num_threads = threads
        if spin is not None:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self.providers = providers_for(device, provider)
        try:
            self.session = ort.InferenceSession(str(Path(model_path)), sess_options=opts, providers=self.providers,
                                                provider_options=provider_options(self.providers))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise BackendError(f"{model_path}: onnxruntime could not load the model ({exc})") from exc
        active = self.session.get_providers()
        if active[0] != self.providers[0] and device == "auto":
            warnings.warn(f"onnxruntime could not start {self.providers[0]}; running on {active[0]}", stacklevel=2)
        elif active[0] != self.providers[0]:  # onnxruntime fell back (e.g. CUDA libraries missing)
            raise DeviceUnavailableError(f"{model_path}: onnxruntime could not start {self.providers[0]} "
                                         f"(running on {active[0]} instead); check the CUDA / TensorRT libraries")
        self.device = "cpu" if active[0] == "CPUExecutionProvider" else "cuda"
        self.inputs = [_spec(i) for i in self.session.get_inputs()]
        self.outputs = [_spec(o) for o in self.session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(self._output_names, dict(feeds))
        except Exception as exc:
            raise BackendError(f"onnxruntime inference failed: {exc}") from exc
        return dict(zip(self._output_names, values))

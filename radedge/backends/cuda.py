"""Is there a GPU to run on, and the GPU libraries, imported only when asked for.

`cuda_device_count()` asks the CUDA driver through ctypes (no package needed), so the CPU backend
can check for a GPU without TensorRT; `import_tensorrt()` / `import_cudart()` import the `gpu` extra
lazily and raise DeviceUnavailableError naming it. `import radedge` never imports TensorRT.
`DeviceInfo` is what a TensorRT plan is tied to (GPU model, compute capability, TensorRT version).
"""
from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass
from typing import Any

from ..errors import BackendError, DeviceUnavailableError

GPU_EXTRA_HINT = "install it with `pip install 'radedge[gpu]'` on a machine with an NVIDIA GPU"


def cuda_device_count() -> int:
    """Visible CUDA devices (honours CUDA_VISIBLE_DEVICES); 0 when there is no driver or no GPU."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
            return 0
        return count.value
    return 0


def import_tensorrt() -> Any:
    """The `tensorrt` module, or DeviceUnavailableError saying how to get it."""
    try:
        import tensorrt
    except ImportError as exc:  # also raised when libnvinfer is missing beside the bindings
        raise DeviceUnavailableError(f"TensorRT is not installed ({exc}); {GPU_EXTRA_HINT}") from exc
    return tensorrt


def import_cudart() -> Any:
    """cuda-python's runtime bindings (the module TensorRT's own samples use), new or old layout."""
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        try:
            from cuda import cudart  # older cuda-python 12.x
        except ImportError as exc:
            raise DeviceUnavailableError(f"cuda-python is not installed ({exc}); {GPU_EXTRA_HINT}") from exc
    return cudart


def cuda_call(result: Any) -> Any:
    """Unwrap a cuda-python `(error, value...)` tuple, raising BackendError on a CUDA error."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(getattr(err, "value", err)) != 0:  # cudaError_t is an enum; cudaSuccess == 0
        raise BackendError(f"CUDA call failed: {getattr(err, 'name', err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def require_gpu(device: str) -> None:
    """DeviceUnavailableError unless `device` asks for a GPU and one is visible."""
    if device == "cpu":
        raise DeviceUnavailableError("the tensorrt backend runs only on a GPU: use --device cuda, "
                                     "or --backend onnxruntime for the CPU")
    if device not in ("cuda", "auto"):
        raise DeviceUnavailableError(f"unknown device {device!r}; the tensorrt backend needs cuda")
    if cuda_device_count() == 0:
        raise DeviceUnavailableError("no CUDA GPU is visible (no NVIDIA driver, or CUDA_VISIBLE_DEVICES "
                                     "hides it); use --backend onnxruntime --device cpu")


@dataclass(frozen=True)
class DeviceInfo:
    """What a plan is tied to: the GPU model (name, compute capability) and TensorRT's version."""

    gpu_name: str
    compute_capability: tuple[int, int]
    tensorrt_version: str

    @property
    def slug(self) -> str:
        """File-name form, e.g. `nvidia-h100-80gb-hbm3.sm90.trt10-13-0-35`."""
        major, minor = self.compute_capability
        return f"{_slug(self.gpu_name)}.sm{major}{minor}.trt{_slug(self.tensorrt_version)}"


def current_device(index: int = 0) -> DeviceInfo:
    """The GPU at `index` and the installed TensorRT, read through cuda-python."""
    trt = import_tensorrt()
    cudart = import_cudart()
    props = cuda_call(cudart.cudaGetDeviceProperties(index))
    name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
    return DeviceInfo(name.strip("\x00 "), (int(props.major), int(props.minor)), str(trt.__version__))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "gpu"


__all__ = ["DeviceInfo", "GPU_EXTRA_HINT", "cuda_call", "cuda_device_count", "current_device", "import_cudart",
           "import_tensorrt", "require_gpu"]

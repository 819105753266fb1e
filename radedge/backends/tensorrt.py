"""TensorRT backend: a native plan built on this GPU, run behind the same numpy-in / numpy-out interface.

Three parts, each usable alone:

* **Presence** — `cuda_device_count()` (the CUDA driver through ctypes, no package needed) and
  `import_tensorrt()` / `import_cudart()` (lazy imports that raise DeviceUnavailableError naming the
  `gpu` extra). `import radedge` never imports TensorRT.
* **Plan cache** — a plan only runs on the GPU model and TensorRT version that built it, so the
  cache key is (model sha256, GPU name, compute capability, TensorRT version, precision). A new GPU
  or a TensorRT upgrade therefore *misses* the cache and rebuilds; a plan that fails to deserialise
  anyway (e.g. after a driver change) is rebuilt too. `PlanKey`, `plan_path`, `find_plan`.
* **Execution** — `TensorRTBackend`: TensorRT 10/11 tensor-name API (`set_input_shape`,
  `set_tensor_address`, `execute_async_v3`), one execution context, CUDA stream and set of device
  buffers per thread (thread-safe), buffers reused across calls and grown for a bigger batch; a batch
  above the plan's profile is split into chunks.

Building lives in `runtimes/tensorrt` (a checkout-level package that needs `onnx`); when it is not
importable, a missing plan is a BackendError that names the command to run.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import BackendError, DeviceUnavailableError
from ..manifest import Manifest, TensorSpec, sha256_file

ENGINE_DIR_VAR = "RADEDGE_ENGINE_DIR"
PRECISIONS = ("fp16", "int8")  # what the builder makes; fp32 plans are never worth shipping
GPU_EXTRA_HINT = "install it with `pip install 'radedge[gpu]'` on a machine with an NVIDIA GPU"
BUILD_HINT = ("build one with `radedge build-engine {model}` (or `python -m runtimes.tensorrt build {model}`) "
              "from a radedge checkout")


# ---- presence ------------------------------------------------------------------------------------
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


# ---- plan cache ----------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class PlanKey:
    """The cache key of one plan; `stem` is its file name without `.plan`."""

    model_sha256: str
    device: DeviceInfo
    precision: str

    @property
    def stem(self) -> str:
        return f"{self.model_sha256[:16]}.{self.device.slug}.{self.precision}"


def default_cache_dir() -> Path:
    """$RADEDGE_ENGINE_DIR, else $XDG_CACHE_HOME/radedge/engines, else ~/.cache/radedge/engines.

    Not the model folder: an installed model may be read-only, and one model folder may be shared
    by machines with different GPUs."""
    if os.environ.get(ENGINE_DIR_VAR):
        return Path(os.environ[ENGINE_DIR_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "radedge" / "engines"


def plan_path(cache_dir: str | os.PathLike, key: PlanKey) -> Path:
    return Path(cache_dir) / f"{key.stem}.plan"


def meta_path(plan: Path) -> Path:
    """The JSON sidecar of a plan: profile, precision actually built, int8 gate result, versions."""
    return plan.with_suffix(".json")


def read_meta(plan: Path) -> dict[str, Any]:
    try:
        return json.loads(meta_path(plan).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def find_plan(cache_dir: str | os.PathLike, model_sha256: str, device: DeviceInfo,
              precision: str | None = None) -> Path | None:
    """The cached plan for this model on this GPU and TensorRT; `precision=None` prefers int8
    (built only on request, and only when it passed its accuracy gate), then fp16."""
    for p in ([precision] if precision else ["int8", "fp16"]):
        path = plan_path(cache_dir, PlanKey(model_sha256, device, p))
        if path.is_file():
            return path
    return None


def model_sha256(model_dir: str | os.PathLike, manifest: Manifest) -> str:
    """The manifest's sha256 of model.onnx (verified at load); hashed afresh when absent."""
    return manifest.files.get("model.onnx") or sha256_file(Path(model_dir) / "model.onnx")


def engine_for(model_dir: str | os.PathLike, manifest: Manifest, precision: str | None = None,
               cache_dir: str | os.PathLike | None = None, build: bool = True) -> Path:
    """The plan for a model folder on this GPU: from the cache, else built by runtimes.tensorrt.

    This is the one function the CLI, the benchmarks and the backend use to get an engine.
    """
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    device = current_device()
    found = find_plan(cache, model_sha256(model_dir, manifest), device, precision)
    if found is not None:
        return found
    if not build:
        raise BackendError(f"no TensorRT plan for {model_dir} on {device.gpu_name} in {cache}; "
                           + BUILD_HINT.format(model=model_dir))
    builder = import_builder(model_dir)
    try:
        return builder.build_plan(model_dir, precision=precision or "fp16", cache_dir=cache).plan
    except (ValueError, OSError) as exc:  # e.g. int8 asked for a model with no Q/DQ and no calibration data
        raise BackendError(f"cannot build a {precision or 'fp16'} TensorRT plan for {model_dir}: {exc}") from exc


def import_builder(model_dir: str | os.PathLike | None = None) -> Any:
    """`runtimes.tensorrt` from the source checkout (the one holding this radedge when installed
    editable, else the current directory), or BackendError saying that it needs the checkout."""
    import importlib
    import sys

    for checkout in (Path(__file__).resolve().parents[2], Path.cwd()):  # editable install; run from the checkout
        if (checkout / "runtimes" / "tensorrt" / "__init__.py").is_file():
            if str(checkout) not in sys.path:
                sys.path.append(str(checkout))
            break
    try:
        builder = importlib.import_module("runtimes.tensorrt")
    except ImportError as exc:
        raise BackendError(f"the TensorRT engine builder (runtimes.tensorrt) is not importable ({exc}): it ships "
                           "in the radedge source checkout, not in the installed package; "
                           + BUILD_HINT.format(model=model_dir or "MODEL")) from exc
    return builder


# ---- execution -----------------------------------------------------------------------------------
class _DeviceBuffer:
    """One cudaMalloc'd block that only grows."""

    def __init__(self, cudart: Any) -> None:
        self.cudart, self.ptr, self.nbytes = cudart, 0, 0

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.nbytes:
            self.free()
            self.ptr = int(cuda_call(self.cudart.cudaMalloc(max(nbytes, 256))))
            self.nbytes = max(nbytes, 256)
        return self.ptr

    def free(self) -> None:
        if self.ptr:
            cuda_call(self.cudart.cudaFree(self.ptr))
            self.ptr, self.nbytes = 0, 0


class _ThreadState:
    """What one thread needs to run the engine: its own context, stream and buffers."""

    def __init__(self, engine: Any, cudart: Any) -> None:
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError("TensorRT could not create an execution context (out of GPU memory?)")
        self.stream = cuda_call(cudart.cudaStreamCreate())
        self.buffers: dict[str, _DeviceBuffer] = {}
        self.cudart = cudart

    def buffer(self, name: str) -> _DeviceBuffer:
        return self.buffers.setdefault(name, _DeviceBuffer(self.cudart))

    def close(self) -> None:
        for buf in self.buffers.values():
            buf.free()
        cuda_call(self.cudart.cudaStreamDestroy(self.stream))


def _declared_spec(engine_shape: tuple[int, ...], declared: TensorSpec | None, name: str,
                   dtype: str) -> TensorSpec:
    """The engine's tensor as a TensorSpec: dynamic (-1) axes take the manifest's symbolic names,
    and the dtype is the manifest's (run() converts to and from the engine's own type)."""
    if declared is None or len(declared.shape) != len(engine_shape):
        return TensorSpec(name, dtype, tuple(d if d >= 0 else "batch" for d in engine_shape))
    shape = tuple(d if d >= 0 else w for d, w in zip(engine_shape, declared.shape))
    return TensorSpec(name, declared.dtype, shape)


class TensorRTBackend:
    """A deserialised TensorRT plan; `run` is thread-safe (one context and stream per thread)."""

    name = "tensorrt"
    device = "cuda"

    def __init__(self, plan: str | os.PathLike, manifest: Manifest | None = None) -> None:
        self.trt = import_tensorrt()
        self.cudart = import_cudart()
        self.plan = Path(plan)
        self._logger = self.trt.Logger(self.trt.Logger.WARNING)
        self._runtime = self.trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.plan.read_bytes())
        if self.engine is None:
            raise BackendError(f"{self.plan}: TensorRT could not deserialise this plan "
                               "(built by another TensorRT, GPU or driver?)")
        declared = {t.name: t for t in (manifest.inputs + manifest.outputs)} if manifest else {}
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self._engine_dtypes: dict[str, np.dtype] = {}
        for i in range(self.engine.num_io_tensors):
            tname = self.engine.get_tensor_name(i)
            np_type = np.dtype(self.trt.nptype(self.engine.get_tensor_dtype(tname)))
            self._engine_dtypes[tname] = np_type
            spec = _declared_spec(tuple(self.engine.get_tensor_shape(tname)), declared.get(tname), tname,
                                  np_type.name)
            is_input = self.engine.get_tensor_mode(tname) == self.trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(spec)
        # The plan's single optimisation profile bounds each input's shape; batches above it are split.
        self._max_shapes = {t.name: tuple(self.engine.get_tensor_profile_shape(t.name, 0)[2]) for t in self.inputs}
        self._local = threading.local()
        self._states: list[_ThreadState] = []
        self._lock = threading.Lock()

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, manifest: Manifest, device: str = "cuda",
                       precision: str | None = None, cache_dir: str | os.PathLike | None = None) -> "TensorRTBackend":
        """Load this GPU's cached plan for the model (building it when the builder is importable)."""
        require_gpu(device)
        plan = engine_for(model_dir, manifest, precision=precision, cache_dir=cache_dir)
        try:
            return cls(plan, manifest)
        except BackendError:
            # A stale plan (same key, but e.g. a driver update): rebuild it once, as it was built.
            builder = import_builder(model_dir)
            args = read_meta(plan).get("build_args") or {"precision": precision or "fp16"}
            try:
                builder.build_plan(model_dir, cache_dir=plan.parent, force=True, **args)
            except (ValueError, OSError) as exc:
                raise BackendError(f"{plan}: stale TensorRT plan, and rebuilding it failed: {exc}") from exc
            return cls(plan, manifest)

    # ---- running ----
    def _state(self) -> _ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            cuda_call(self.cudart.cudaSetDevice(0))
            state = _ThreadState(self.engine, self.cudart)
            self._local.state = state
            with self._lock:
                self._states.append(state)
        return state

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [t.name for t in self.inputs if t.name not in feeds]
        if missing:
            raise BackendError(f"tensorrt: missing inputs {missing}")
        batch = int(np.shape(feeds[self.inputs[0].name])[0])
        limit = min((s[0] for s in self._max_shapes.values() if s), default=batch) or batch
        if batch <= limit:
            return self._run_once(feeds)
        parts = [self._run_once({k: np.asarray(v)[i:i + limit] for k, v in feeds.items()})
                 for i in range(0, batch, limit)]
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def _run_once(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        state = self._state()
        ctx, cudart = state.context, self.cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        staged = []  # keep host arrays alive until the stream has copied them
        for spec in self.inputs:
            host = np.ascontiguousarray(feeds[spec.name], dtype=self._engine_dtypes[spec.name])
            self._check_shape(spec.name, host.shape)
            if not ctx.set_input_shape(spec.name, host.shape):
                raise BackendError(f"tensorrt: input {spec.name!r} shape {host.shape} rejected by the plan")
            ptr = state.buffer(spec.name).ensure(host.nbytes)
            cuda_call(cudart.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, h2d, state.stream))
            ctx.set_tensor_address(spec.name, ptr)
            staged.append(host)
        results: dict[str, np.ndarray] = {}
        for spec in self.outputs:
            out = np.empty(tuple(ctx.get_tensor_shape(spec.name)), dtype=self._engine_dtypes[spec.name])
            ctx.set_tensor_address(spec.name, state.buffer(spec.name).ensure(out.nbytes))
            results[spec.name] = out
        if not ctx.execute_async_v3(state.stream):  # the cudaStream_t itself, as TensorRT's samples pass it
            raise BackendError("tensorrt: execute_async_v3 failed")
        for name, out in results.items():
            cuda_call(cudart.cudaMemcpyAsync(out.ctypes.data, state.buffers[name].ptr, out.nbytes, d2h,
                                             state.stream))
        cuda_call(cudart.cudaStreamSynchronize(state.stream))
        by_name = {t.name: t for t in self.outputs}
        return {name: out.astype(by_name[name].dtype, copy=False) for name, out in results.items()}

    def _check_shape(self, name: str, shape: tuple[int, ...]) -> None:
        top = self._max_shapes.get(name)
        if top and any(s > m for s, m in zip(shape[1:], top[1:])):
            raise BackendError(f"tensorrt: input {name!r} shape {shape} exceeds the plan's profile maximum "
                               f"{top}; rebuild with a larger --max-length / --max-batch")

    def close(self) -> None:
        """Free every thread's buffers and streams (also done when the backend is garbage-collected)."""
        with self._lock:
            states, self._states = self._states, []
        for state in states:
            state.close()

    def __del__(self) -> None:  # pragma: no cover - depends on interpreter shutdown order
        try:
            self.close()
        except Exception:
            pass


__all__ = ["DeviceInfo", "PlanKey", "TensorRTBackend", "cuda_device_count", "current_device", "default_cache_dir",
           "engine_for", "find_plan", "import_builder", "import_cudart", "import_tensorrt", "model_sha256",
           "plan_path", "read_meta", "require_gpu"]

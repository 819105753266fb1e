"""TensorRT backend: this GPU's cached plan, run behind the same numpy-in / numpy-out interface.

`TensorRTBackend`: TensorRT 10/11 tensor-name API (`set_input_shape`, `set_tensor_address`,
`execute_async_v3`), one execution context, CUDA stream and set of device buffers per thread
(thread-safe), buffers reused across calls and grown for a bigger batch; a batch above the plan's
profile is split into chunks. The backend only *loads* plans (`plans.engine_for`): a missing or stale
plan is a BackendError naming `radedge build-engine`, the command (runtimes/tensorrt) that builds one.
Device presence is in `cuda.py`, the plan cache in `plans.py`.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import BackendError
from ..manifest import Manifest, TensorSpec
from .cuda import cuda_call, import_cudart, import_tensorrt, require_gpu
from .plans import build_command_hint, engine_for


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
        """Load this GPU's cached plan for the model; BackendError naming the build command when there
        is none, or when the cached one no longer deserialises (e.g. after a driver update)."""
        require_gpu(device)
        plan = engine_for(model_dir, manifest, precision=precision, cache_dir=cache_dir)
        try:
            return cls(plan, manifest)
        except BackendError as exc:
            raise BackendError(f"{exc}; " + build_command_hint(model_dir, precision, force=True)) from exc

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


__all__ = ["TensorRTBackend"]

"""The TensorRT backend: its run logic on a fake CUDA + TensorRT (buffers, batch splitting, threads,
plan loading) on the CPU, and real plans from the tiny models on a GPU (markers `gpu`, `tensorrt`)."""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort
import pytest

from radedge.backends import open_backend
from radedge.backends import cuda, plans
from radedge.backends import tensorrt as trtb
from radedge.errors import BackendError, DeviceUnavailableError
from radedge.manifest import Manifest, TensorSpec
from tests.tiny_models import write_calibration_reports


def test_open_backend_tensorrt_on_cpu_is_a_device_error(tiny_report_model):
    with pytest.raises(DeviceUnavailableError):
        open_backend(tiny_report_model, Manifest.read(tiny_report_model), backend="tensorrt", device="cpu")


H100 = cuda.DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


# ---- the backend's run logic on a fake CUDA + TensorRT -----------------------------------------
class FakeCudart:
    """Host memory standing in for device memory, with cuda-python's (error, value) returns."""

    cudaMemcpyKind = SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)

    def __init__(self):
        self.blocks: dict[int, ctypes.Array] = {}
        self.mallocs = 0
        self.streams = 0

    def cudaMalloc(self, n):
        buf = ctypes.create_string_buffer(n)
        self.blocks[ctypes.addressof(buf)] = buf
        self.mallocs += 1
        return (0, ctypes.addressof(buf))

    def cudaFree(self, ptr):
        del self.blocks[ptr]
        return (0,)

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):
        ctypes.memmove(dst, src, n)
        return (0,)

    def cudaStreamCreate(self):
        self.streams += 1
        return (0, self.streams)

    def cudaStreamDestroy(self, s):
        return (0,)

    def cudaStreamSynchronize(self, s):
        return (0,)

    def cudaSetDevice(self, i):
        return (0,)


def _from(ptr: int, dtype, shape) -> np.ndarray:
    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_char * n).from_address(ptr), dtype=dtype).reshape(shape)


class FakeContext:
    """y[b] = sum(x[b, :]) as float32; x is int32 inside the 'engine'; profile max (4, 80)."""

    def __init__(self):
        self.shapes, self.addresses = {}, {}

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return shape[0] <= 4 and shape[1] <= 80

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr

    def get_tensor_shape(self, name):
        return (self.shapes["x"][0],)

    def execute_async_v3(self, stream):
        x = _from(self.addresses["x"], np.int32, self.shapes["x"])
        y = _from(self.addresses["y"], np.float32, (self.shapes["x"][0],))
        y[:] = x.sum(axis=1)
        return True


class FakeEngine:
    num_io_tensors = 2

    def __init__(self):
        self.contexts = 0

    def get_tensor_name(self, i):
        return ["x", "y"][i]

    def get_tensor_dtype(self, name):
        return np.int32 if name == "x" else np.float32

    def get_tensor_shape(self, name):
        return (-1, -1) if name == "x" else (-1,)

    def get_tensor_mode(self, name):
        return "in" if name == "x" else "out"

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 1), (2, 4), (4, 80)]

    def create_execution_context(self):
        self.contexts += 1
        return FakeContext()


def _fake_trt(engine):
    runtime = SimpleNamespace(deserialize_cuda_engine=lambda data: engine if data == b"plan" else None)
    return SimpleNamespace(Logger=type("Logger", (), {"WARNING": 0, "__init__": lambda self, level: None}),
                           Runtime=lambda logger: runtime, nptype=lambda t: t,
                           TensorIOMode=SimpleNamespace(INPUT="in", OUTPUT="out"), __version__="10.13.0.35")


FAKE_MANIFEST = SimpleNamespace(inputs=[TensorSpec("x", "int64", ("batch", "sequence"))],
                                outputs=[TensorSpec("y", "float32", ("batch",))])


@pytest.fixture
def fake_gpu(monkeypatch, tmp_path):
    engine, cudart = FakeEngine(), FakeCudart()
    monkeypatch.setattr(trtb, "import_tensorrt", lambda: _fake_trt(engine))
    monkeypatch.setattr(trtb, "import_cudart", lambda: cudart)
    plan = tmp_path / "fake.plan"
    plan.write_bytes(b"plan")
    return SimpleNamespace(engine=engine, cudart=cudart, plan=plan)


def test_backend_runs_reuses_and_grows_buffers(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    assert backend.inputs == [TensorSpec("x", "int64", ("batch", "sequence"))]
    assert backend.outputs == [TensorSpec("y", "float32", ("batch",))]
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    out = backend.run({"x": x})["y"]
    assert out.dtype == np.float32 and out.tolist() == [3.0, 12.0]
    allocated = fake_gpu.cudart.mallocs
    backend.run({"x": x + 1})
    assert fake_gpu.cudart.mallocs == allocated  # same shape: buffers reused
    big = np.ones((4, 80), dtype=np.int64)
    assert backend.run({"x": big})["y"].tolist() == [80.0] * 4
    assert fake_gpu.cudart.mallocs > allocated  # bigger batch: buffers grew
    backend.close()
    assert fake_gpu.cudart.blocks == {}


def test_backend_splits_batches_above_the_profile(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    x = np.arange(30, dtype=np.int64).reshape(10, 3)
    np.testing.assert_array_equal(backend.run({"x": x})["y"], x.sum(axis=1).astype(np.float32))


def test_backend_rejects_long_sequences_and_missing_inputs(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    with pytest.raises(BackendError, match="exceeds the plan's profile"):
        backend.run({"x": np.ones((1, 81), np.int64)})
    with pytest.raises(BackendError, match="missing inputs"):
        backend.run({})


def test_backend_keeps_one_context_per_thread(fake_gpu):
    backend = trtb.TensorRTBackend(fake_gpu.plan, FAKE_MANIFEST)
    results, errors = {}, []

    def work(k):
        try:
            x = np.full((3, 5), k, dtype=np.int64)
            for _ in range(20):
                results[k] = backend.run({"x": x})["y"].tolist()
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {k: [5.0 * k] * 3 for k in range(4)}
    assert fake_gpu.engine.contexts == 4


def test_backend_refuses_an_unreadable_plan(fake_gpu, tmp_path):
    bad = tmp_path / "bad.plan"
    bad.write_bytes(b"garbage")
    with pytest.raises(BackendError, match="could not deserialise"):
        trtb.TensorRTBackend(bad, FAKE_MANIFEST)


def FAKE_MANIFEST_FOR(m: Manifest) -> Manifest:
    """The tiny report manifest, its files kept, its tensors those of the fake engine."""
    fake = Manifest.from_dict(m.to_dict())
    fake.inputs, fake.outputs = FAKE_MANIFEST.inputs, FAKE_MANIFEST.outputs
    return fake


def test_from_model_dir_loads_the_cached_plan_and_never_builds(fake_gpu, tiny_report_model, tmp_path, monkeypatch):
    m = Manifest.read(tiny_report_model)
    monkeypatch.setattr(cuda, "cuda_device_count", lambda: 1)
    monkeypatch.setattr(plans, "current_device", lambda index=0: H100)
    cache = tmp_path / "engines"
    cache.mkdir()
    with pytest.raises(BackendError, match=r"no fp16/int8 TensorRT plan .* `radedge build-engine .*tiny-report` "):
        trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache)
    with pytest.raises(BackendError, match=r"no int8 TensorRT plan .*build-engine .* --precision int8`"):
        trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache,
                                            precision="int8")
    assert list(cache.iterdir()) == []  # nothing was built
    plan = plans.plan_path(cache, plans.PlanKey(m.files["model.onnx"], H100, "fp16"))
    plan.write_bytes(b"plan")  # what `radedge build-engine` leaves in the cache
    backend = trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache)
    assert backend.plan == plan
    plan.write_bytes(b"stale")  # e.g. after a driver change: the fake runtime cannot deserialise it
    with pytest.raises(BackendError, match=r"could not deserialise.*build-engine .*tiny-report --force`"):
        trtb.TensorRTBackend.from_model_dir(tiny_report_model, FAKE_MANIFEST_FOR(m), cache_dir=cache)


def test_from_model_dir_needs_a_gpu(tiny_report_model, monkeypatch):
    monkeypatch.setattr(cuda, "cuda_device_count", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        trtb.TensorRTBackend.from_model_dir(tiny_report_model, Manifest.read(tiny_report_model))


# ---- on a GPU with TensorRT ---------------------------------------------------------------------
def _cpu_outputs(model_dir: Path, feeds: dict) -> np.ndarray:
    m = Manifest.read(model_dir)
    return open_backend(model_dir, m).run(feeds)[m.outputs[0].name]


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.parametrize("precision_name", ["fp16", "int8"])
def test_tiny_report_plan_matches_onnxruntime_cpu(tiny_report_model, tmp_path, precision_name, monkeypatch):
    from runtimes.tensorrt import build_plan

    calib = write_calibration_reports(tmp_path) if precision_name == "int8" else None
    result = build_plan(tiny_report_model, precision=precision_name, calib=calib, max_batch=8,
                        cache_dir=tmp_path / "engines")
    assert not result.cached and result.plan.is_file()
    again = build_plan(tiny_report_model, precision=precision_name, calib=calib, max_batch=8,
                       cache_dir=tmp_path / "engines")
    assert again.cached and again.plan == result.plan
    m = Manifest.read(tiny_report_model)
    monkeypatch.setenv(plans.ENGINE_DIR_VAR, str(tmp_path / "engines"))
    backend = open_backend(tiny_report_model, m, backend="tensorrt", device="cuda")  # finds the cached plan
    assert isinstance(backend, trtb.TensorRTBackend) and backend.plan == result.plan
    rng = np.random.default_rng(0)
    for batch, length in [(1, 5), (8, 32), (13, 17)]:  # 13 > max batch: split into chunks
        ids = rng.integers(4, 60, size=(batch, length)).astype(np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        got, want = backend.run(feeds)["logits"], _cpu_outputs(tiny_report_model, feeds)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.95
        np.testing.assert_allclose(got, want, atol=0.1 * np.abs(want).max())


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tiny_image_plan_matches_onnxruntime_cpu_from_threads(tiny_image_model, tmp_path):
    from runtimes.tensorrt import build_plan

    result = build_plan(tiny_image_model, max_batch=4, cache_dir=tmp_path / "engines")
    m = Manifest.read(tiny_image_model)
    backend = trtb.TensorRTBackend(result.plan, m)
    x = np.random.default_rng(0).normal(size=(6, 3, 32, 32)).astype(np.float32)
    want = _cpu_outputs(tiny_image_model, {"pixels": x})
    outs = [None] * 4

    def work(k):
        outs[k] = backend.run({"pixels": x})["probs"]

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in outs:
        np.testing.assert_allclose(got, want, atol=5e-3)


@pytest.mark.gpu
def test_onnxruntime_cuda_provider_matches_cpu(tiny_image_model):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu (CUDAExecutionProvider) not installed")
    m = Manifest.read(tiny_image_model)
    gpu = open_backend(tiny_image_model, m, device="cuda")
    assert gpu.device == "cuda"
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(gpu.run({"pixels": x})["probs"], _cpu_outputs(tiny_image_model, {"pixels": x}),
                               atol=1e-4)

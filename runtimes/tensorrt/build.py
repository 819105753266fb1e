"""Build a TensorRT plan for a model folder on the GPU it will run on, and cache it.

The only part of runtimes/tensorrt that needs TensorRT and a GPU. Everything before the parser
(graph surgery, precision, calibration, profiles) is in precision.py / surgery.py / profiles.py and
is unit-tested on the CPU.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from radedge.backends.cuda import DeviceInfo, current_device, import_tensorrt, require_gpu
from radedge.backends.plans import PlanKey, default_cache_dir, meta_path, model_sha256, plan_path, read_meta
from radedge.backends.tensorrt import TensorRTBackend
from radedge.errors import BackendError
from radedge.manifest import Manifest

from . import precision as prec
from .profiles import DEFAULT_MAX_BATCH, ShapeRange, covers, profile_shapes

WORKSPACE_GIB = 4


@dataclass
class BuildResult:
    plan: Path
    meta: dict[str, Any]
    cached: bool  # True when an existing plan already covered the request


def strongly_typed_only(trt: Any) -> bool:
    """TensorRT 11 removed BuilderFlag.FP16/INT8: precision must then be in the graph itself."""
    return not hasattr(trt.BuilderFlag, "FP16")


def timing_cache_path(cache_dir: Path, device: DeviceInfo) -> Path:
    """One timing cache per GPU model and TensorRT version, shared by every model's builds."""
    return cache_dir / f"timing.{device.slug}.cache"


def build_plan(model_dir: str | os.PathLike, precision: str = "fp16", calib: str | os.PathLike | None = None,
               max_batch: int = DEFAULT_MAX_BATCH, opt_batch: int | None = None, max_length: int | None = None,
               opt_length: int | None = None, cache_dir: str | os.PathLike | None = None, force: bool = False,
               workspace_gib: float = WORKSPACE_GIB, calib_limit: int = 256) -> BuildResult:
    """Build (or find in the cache) this GPU's plan for a verified model folder.

    A cached plan is reused when its key matches (model sha256, GPU name, compute capability,
    TensorRT version, precision) and its profile covers the requested shapes; otherwise it is rebuilt.
    """
    trt = import_tensorrt()
    require_gpu("cuda")
    model_dir = Path(model_dir)
    manifest = Manifest.read(model_dir)
    manifest.verify_files(model_dir)
    shapes = profile_shapes(manifest, max_batch, opt_batch, max_length, opt_length)
    device = current_device()
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    sha = model_sha256(model_dir, manifest)
    requested = plan_path(cache, PlanKey(sha, device, precision))
    if requested.is_file() and not force and covers(read_meta(requested).get("profile", {}), shapes):
        return BuildResult(requested, read_meta(requested), cached=True)

    prepared = prec.prepare(model_dir, manifest, precision, calib, strongly_typed_only(trt), calib_limit)
    started = time.time()
    plan_bytes = _build_serialized(trt, prepared, shapes, timing_cache_path(cache, device), workspace_gib)
    # An int8 request that fell back to fp16 is stored under both names, so it is not recalibrated.
    target = plan_path(cache, PlanKey(sha, device, prepared.precision))
    meta = {
        "model": manifest.name, "model_dir": str(model_dir), "model_sha256": sha,
        "gpu": device.gpu_name, "compute_capability": list(device.compute_capability),
        "tensorrt": device.tensorrt_version, "precision": prepared.precision, "requested_precision": precision,
        "source_quantization": prepared.source_kind, "surgery": prepared.surgery, "gate": prepared.gate,
        "notes": prepared.notes, "profile": {k: v.to_dict() for k, v in shapes.items()},
        "strongly_typed": strongly_typed_only(trt), "build_seconds": round(time.time() - started, 1),
        # enough to rebuild the same plan when it stops deserialising (`radedge build-engine --force`)
        "build_args": {"precision": precision, "calib": str(calib) if calib else None, "max_batch": max_batch,
                       "opt_batch": opt_batch, "max_length": max_length, "opt_length": opt_length,
                       "calib_limit": calib_limit},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for path in {target, requested}:
        _write_atomic(path, plan_bytes)
        _write_atomic(meta_path(path), (json.dumps(meta, indent=2) + "\n").encode())
    return BuildResult(requested, meta, cached=False)


def backend_for(model_dir: str | os.PathLike, precision: str = "fp16",
                cache_dir: str | os.PathLike | None = None) -> TensorRTBackend:
    """A TensorRTBackend on this GPU's plan for a model folder, building the plan first when the cache
    has none (the runtime's backend only loads; this is for callers that may build, e.g. benchmarks)."""
    result = build_plan(model_dir, precision=precision, cache_dir=cache_dir)
    manifest = Manifest.read(model_dir)
    return TensorRTBackend(result.plan, manifest)


def _build_serialized(trt: Any, prepared: prec.Prepared, shapes: dict[str, ShapeRange], timing_path: Path,
                      workspace_gib: float) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed_only(trt) and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with tempfile.TemporaryDirectory() as tmp:  # parse from a file: external weights resolve beside it
        onnx_path = Path(tmp) / "model.onnx"
        onnx.save(prepared.model, str(onnx_path))
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendError(f"TensorRT could not parse the model: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not strongly_typed_only(trt):
        config.set_flag(trt.BuilderFlag.FP16)  # int8 plans run their non-quantized layers in fp16
        if prepared.precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # explicit (Q/DQ) quantization; no calibrator
    profile = builder.create_optimization_profile()
    names = [network.get_input(i).name for i in range(network.num_inputs)]
    for name in names:
        if name not in shapes:
            raise BackendError(f"network input {name!r} is not in the manifest's inputs {sorted(shapes)}")
        rng = shapes[name]
        profile.set_shape(name, rng.min, rng.opt, rng.max)
    config.add_optimization_profile(profile)
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=True)  # a cache from another GPU is ignored, not fatal
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError("TensorRT failed to build the plan (see the TensorRT messages above)")
    _write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))
    return bytes(serialized)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def resolve_model(name: str) -> Path:
    """A model folder from a path or a registry name (either task)."""
    from radedge import registry
    from radedge.errors import ModelNotFoundError

    last: ModelNotFoundError | None = None
    for task in registry.DEFAULTS:
        try:
            return registry.resolve(name, task)
        except ModelNotFoundError as exc:
            last = exc
    assert last is not None
    raise last


def summary(result: BuildResult) -> str:
    """One human line per fact about a build, for both command lines."""
    m = result.meta
    lines = [f"{'cached' if result.cached else 'built'} {m.get('precision')} plan: {result.plan}",
             f"  gpu {m.get('gpu')} (sm {'.'.join(map(str, m.get('compute_capability', [])))}), "
             f"TensorRT {m.get('tensorrt')}, model sha256 {str(m.get('model_sha256'))[:12]}…"]
    for name, rng in (m.get("profile") or {}).items():
        lines.append(f"  profile {name}: min {rng['min']} opt {rng['opt']} max {rng['max']}")
    lines += [f"  {note}" for note in m.get("notes", [])]
    return "\n".join(lines)

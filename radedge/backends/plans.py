"""The TensorRT plan cache: where this GPU's plan for a model is, or a clear error saying how to build it.

A plan only runs on the GPU model and TensorRT version that built it, so the cache key is (model
sha256, GPU name, compute capability, TensorRT version, precision). A new GPU or a TensorRT upgrade
therefore *misses* the cache instead of loading a wrong plan. The runtime only reads the cache:
plans are built by `radedge build-engine MODEL` (runtimes/tensorrt, which writes them here).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError
from ..manifest import Manifest, sha256_file
from .cuda import DeviceInfo, current_device

ENGINE_DIR_VAR = "RADEDGE_ENGINE_DIR"
PRECISIONS = ("fp16", "int8")  # what the builder makes; fp32 plans are never worth shipping
BUILD_HINT = "build one with `radedge build-engine {model}{options}` on this machine"


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


def build_command_hint(model: str | os.PathLike, precision: str | None = None, force: bool = False) -> str:
    """The `radedge build-engine` line that makes the plan a load asked for."""
    options = (f" --precision {precision}" if precision else "") + (" --force" if force else "")
    return BUILD_HINT.format(model=model, options=options)


def engine_for(model_dir: str | os.PathLike, manifest: Manifest, precision: str | None = None,
               cache_dir: str | os.PathLike | None = None) -> Path:
    """This GPU's cached plan for a model folder, or BackendError naming the command that builds it.

    The one lookup the backend, the CLI and the benchmarks share."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    device = current_device()
    found = find_plan(cache, model_sha256(model_dir, manifest), device, precision)
    if found is None:
        raise BackendError(f"no {precision or 'fp16/int8'} TensorRT plan for {model_dir} on {device.gpu_name} in "
                           f"{cache}; " + build_command_hint(model_dir, precision))
    return found


__all__ = ["BUILD_HINT", "ENGINE_DIR_VAR", "PRECISIONS", "PlanKey", "build_command_hint", "default_cache_dir",
           "engine_for", "find_plan", "meta_path", "model_sha256", "plan_path", "read_meta"]

"""Build TensorRT plans for radedge model folders, on the GPU that will run them.

    python -m runtimes.tensorrt build MODEL [--precision fp16|int8] [--calib DIR] [--max-batch N]
                                            [--max-length N] [--cache-dir DIR] [--force]
    python -m runtimes.tensorrt prepare MODEL OUT.onnx [--precision ...]   # CPU only: the graph TensorRT gets
    radedge build-engine MODEL ...                                          # the same, from the radedge CLI

Python: `build_plan(model_dir, precision=...)` builds or finds the cached plan and returns a
BuildResult; `backend_for(model_dir)` builds when needed and opens the plan. The runtime itself only
loads plans (`radedge.backends.plans.engine_for`, then `radedge.backends.tensorrt.TensorRTBackend`):
this package writes them into the cache it reads. runtimes imports radedge, never the reverse; the
`radedge build-engine` command (cli.py) reaches the radedge CLI through the `radedge.commands` entry
point group.

Modules: surgery (ONNX fixes TensorRT needs), profiles (shape ranges from the manifest), precision
(fp16 / int8 graphs, calibration and its accuracy gate), build (the TensorRT builder and cache), cli.
Only build needs TensorRT; it is imported lazily, with a clear error when absent.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from radedge.lazy import lazy_getattr

_BUILD = ("BuildResult", "backend_for", "build_plan", "resolve_model", "summary")

if TYPE_CHECKING:  # pragma: no cover
    from .build import BuildResult, backend_for, build_plan, resolve_model, summary

# build imports onnx (the gpu extra): loaded on first use, so `radedge build-engine --help` and
# `import runtimes.tensorrt` work with the runtime's dependencies alone.
__getattr__ = lazy_getattr(__name__, {name: f"{__name__}.build" for name in _BUILD})
__all__ = list(_BUILD)

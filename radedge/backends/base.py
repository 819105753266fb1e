"""The backend interface: numpy arrays in, numpy arrays out, whatever runs the graph."""
from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from ..manifest import TensorSpec

DEVICES = ("cpu", "cuda", "auto")


@runtime_checkable
class Backend(Protocol):
    """What the report and image pipelines need from an inference engine.

    Implementations must be safe to call from several threads at once (onnxruntime sessions are;
    the TensorRT backend keeps one execution context per thread).
    """

    name: str
    device: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; returns every output by name."""
        ...

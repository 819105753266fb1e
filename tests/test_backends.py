"""radedge.backends.open_backend: a requested device that is absent is an error, never a silent CPU run."""
from __future__ import annotations

from pathlib import Path

import pytest

from radedge.backends import open_backend
from radedge.errors import DeviceUnavailableError
from radedge.manifest import Manifest


def test_missing_device_is_an_error_not_a_fallback(tiny_image_model: Path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    m = Manifest.read(tiny_image_model)
    with pytest.raises(DeviceUnavailableError):
        open_backend(tiny_image_model, m, device="cuda")
    with pytest.warns(UserWarning):
        assert open_backend(tiny_image_model, m, device="auto").device == "cpu"

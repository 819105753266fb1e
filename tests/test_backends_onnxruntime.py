"""The onnxruntime backend's execution providers (CUDA / TensorRT providers need a GPU, not only the install)."""
from __future__ import annotations

import onnxruntime as ort
import pytest

from radedge.backends import cuda
from radedge.errors import DeviceUnavailableError


# ---- onnxruntime providers (the CUDA / TensorRT execution providers) ----------------------------
def test_providers_for_checks_the_gpu_not_only_the_install(monkeypatch):
    from radedge.backends import onnxruntime as ortb

    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(cuda, "cuda_device_count", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        ortb.providers_for("cuda")
    with pytest.warns(UserWarning, match="CPU"):
        assert ortb.providers_for("auto") == ["CPUExecutionProvider"]
    monkeypatch.setattr(cuda, "cuda_device_count", lambda: 1)
    assert ortb.providers_for("auto") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ortb.providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ortb.providers_for("cuda", provider="tensorrt")[0] == "TensorrtExecutionProvider"
    opts = ortb.provider_options(["TensorrtExecutionProvider", "CUDAExecutionProvider"])
    assert opts[0]["trt_engine_cache_enable"] == "True" and opts[1] == {}


def test_plain_onnxruntime_has_no_cuda_provider(monkeypatch):
    from radedge.backends import onnxruntime as ortb

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(DeviceUnavailableError, match="radedge\\[gpu\\]"):
        ortb.providers_for("cuda")

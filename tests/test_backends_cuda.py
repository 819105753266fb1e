"""radedge.backends.cuda, device presence: the CUDA driver count without any package, the GPU requirement."""
from __future__ import annotations

import ctypes

import pytest

from radedge.backends import cuda
from radedge.errors import DeviceUnavailableError


# ---- presence and error paths --------------------------------------------------------------------
def test_cuda_device_count_is_zero_without_a_driver(monkeypatch):
    def no_lib(name):
        raise OSError(name)

    monkeypatch.setattr(ctypes, "CDLL", no_lib)
    assert cuda.cuda_device_count() == 0


def test_require_gpu(monkeypatch):
    with pytest.raises(DeviceUnavailableError, match="only on a GPU"):
        cuda.require_gpu("cpu")
    monkeypatch.setattr(cuda, "cuda_device_count", lambda: 0)
    with pytest.raises(DeviceUnavailableError, match="no CUDA GPU"):
        cuda.require_gpu("cuda")
    monkeypatch.setattr(cuda, "cuda_device_count", lambda: 1)
    cuda.require_gpu("auto")

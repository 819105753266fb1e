"""radedge.backends.plans: keys (model, GPU, compute capability, TensorRT version, precision), lookup,
where the cache lives, and the error that names the build command."""
from __future__ import annotations

import pytest

from radedge.backends import plans
from radedge.backends.cuda import DeviceInfo
from radedge.errors import BackendError
from radedge.manifest import Manifest


# ---- plan cache keys ----------------------------------------------------------------------------
H100 = DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


def test_plan_key_changes_with_gpu_capability_tensorrt_model_and_precision():
    base = plans.PlanKey("ab" * 32, H100, "fp16")
    variants = [
        plans.PlanKey("cd" * 32, H100, "fp16"),
        plans.PlanKey("ab" * 32, DeviceInfo("NVIDIA A100-SXM4-40GB", (9, 0), "10.13.0.35"), "fp16"),
        plans.PlanKey("ab" * 32, DeviceInfo("NVIDIA H100 80GB HBM3", (8, 9), "10.13.0.35"), "fp16"),
        plans.PlanKey("ab" * 32, DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "11.4.0.106"), "fp16"),
        plans.PlanKey("ab" * 32, H100, "int8"),
    ]
    stems = {base.stem} | {v.stem for v in variants}
    assert len(stems) == 6
    assert base.stem == "abababababababab.nvidia-h100-80gb-hbm3.sm90.trt10-13-0-35.fp16"


def test_find_plan_prefers_int8_then_fp16(tmp_path):
    sha = "ef" * 32
    assert plans.find_plan(tmp_path, sha, H100) is None
    fp16 = plans.plan_path(tmp_path, plans.PlanKey(sha, H100, "fp16"))
    fp16.write_bytes(b"x")
    assert plans.find_plan(tmp_path, sha, H100) == fp16
    int8 = plans.plan_path(tmp_path, plans.PlanKey(sha, H100, "int8"))
    int8.write_bytes(b"x")
    assert plans.find_plan(tmp_path, sha, H100) == int8
    assert plans.find_plan(tmp_path, sha, H100, "fp16") == fp16
    other_gpu = DeviceInfo("NVIDIA L4", (8, 9), "10.13.0.35")
    assert plans.find_plan(tmp_path, sha, other_gpu) is None  # a new GPU misses: rebuild, never a wrong plan


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(plans.ENGINE_DIR_VAR, str(tmp_path / "engines"))
    assert plans.default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv(plans.ENGINE_DIR_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert plans.default_cache_dir() == tmp_path / "xdg" / "radedge" / "engines"


def test_engine_for_without_a_plan_names_the_build_command(tiny_report_model, tmp_path, monkeypatch):
    monkeypatch.setattr(plans, "current_device", lambda index=0: H100)
    manifest = Manifest.read(tiny_report_model)
    with pytest.raises(BackendError, match=rf"in {tmp_path}; build one with `radedge build-engine {tiny_report_model}` "):
        plans.engine_for(tiny_report_model, manifest, cache_dir=tmp_path)
    plan = plans.plan_path(tmp_path, plans.PlanKey(manifest.files["model.onnx"], H100, "fp16"))
    plan.write_bytes(b"x")
    assert plans.engine_for(tiny_report_model, manifest, cache_dir=tmp_path) == plan
    with pytest.raises(BackendError, match=r"--precision int8`"):
        plans.engine_for(tiny_report_model, manifest, precision="int8", cache_dir=tmp_path)

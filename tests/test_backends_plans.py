"""The TensorRT plan cache: keys (model, GPU, compute capability, TensorRT version, precision), lookup,
where the cache lives."""
from __future__ import annotations

from radedge.backends import tensorrt as trtb


# ---- plan cache keys ----------------------------------------------------------------------------
H100 = trtb.DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "10.13.0.35")


def test_plan_key_changes_with_gpu_capability_tensorrt_model_and_precision():
    base = trtb.PlanKey("ab" * 32, H100, "fp16")
    variants = [
        trtb.PlanKey("cd" * 32, H100, "fp16"),
        trtb.PlanKey("ab" * 32, trtb.DeviceInfo("NVIDIA A100-SXM4-40GB", (9, 0), "10.13.0.35"), "fp16"),
        trtb.PlanKey("ab" * 32, trtb.DeviceInfo("NVIDIA H100 80GB HBM3", (8, 9), "10.13.0.35"), "fp16"),
        trtb.PlanKey("ab" * 32, trtb.DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "11.4.0.106"), "fp16"),
        trtb.PlanKey("ab" * 32, H100, "int8"),
    ]
    stems = {base.stem} | {v.stem for v in variants}
    assert len(stems) == 6
    assert base.stem == "abababababababab.nvidia-h100-80gb-hbm3.sm90.trt10-13-0-35.fp16"


def test_find_plan_prefers_int8_then_fp16(tmp_path):
    sha = "ef" * 32
    assert trtb.find_plan(tmp_path, sha, H100) is None
    fp16 = trtb.plan_path(tmp_path, trtb.PlanKey(sha, H100, "fp16"))
    fp16.write_bytes(b"x")
    assert trtb.find_plan(tmp_path, sha, H100) == fp16
    int8 = trtb.plan_path(tmp_path, trtb.PlanKey(sha, H100, "int8"))
    int8.write_bytes(b"x")
    assert trtb.find_plan(tmp_path, sha, H100) == int8
    assert trtb.find_plan(tmp_path, sha, H100, "fp16") == fp16
    other_gpu = trtb.DeviceInfo("NVIDIA L4", (8, 9), "10.13.0.35")
    assert trtb.find_plan(tmp_path, sha, other_gpu) is None  # a new GPU misses: rebuild, never a wrong plan


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(trtb.ENGINE_DIR_VAR, str(tmp_path / "engines"))
    assert trtb.default_cache_dir() == tmp_path / "engines"
    monkeypatch.delenv(trtb.ENGINE_DIR_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert trtb.default_cache_dir() == tmp_path / "xdg" / "radedge" / "engines"

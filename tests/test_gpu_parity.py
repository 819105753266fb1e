"""GPU parity (marker `gpu`): the TensorRT and onnxruntime-CUDA paths label like the shipped CPU model.

* Report labels: the shipped report model on the Open-i hold-out reports, CPU (the shipped int8 graph,
  onnxruntime) against each GPU path: at least 99% of the 14 x reports labels identical.
* Image scores: the shipped image model on the NIH images, per-finding AUC (against the images'
  ChestX-ray14 labels mapped to CheXpert) within 0.01 of the CPU model's.

Every path skips with its reason when its part is missing (no GPU, no TensorRT, no onnxruntime-gpu,
no shipped model, no data). A TensorRT plan is built (or taken from the cache) on first use; an int8
plan is calibrated on the other Open-i dev reports / COVID-collection images, never on what it is scored
on (the bounds and the data: benchmarks/parity.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tests.paths import ROOT, need_data

from benchmarks import parity
from radedge.backends import plans

pytestmark = pytest.mark.gpu

REPORT_MODEL = ROOT / "models" / "report-student"
IMAGE_MODEL = ROOT / "models" / "image-vit"
# (backend, device, TensorRT precision or None)
GPU_PATHS = [("tensorrt", "cuda", "fp16"), ("tensorrt", "cuda", "int8"), ("onnxruntime", "cuda", None)]


def _need_model(folder: Path) -> Path:
    if not (folder / "manifest.json").is_file():
        pytest.skip(f"{folder} is not shipped in this checkout")
    return folder


def _need_path(backend: str) -> None:
    if backend == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError as exc:
            pytest.skip(f"TensorRT not importable ({exc})")
    else:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            pytest.skip("onnxruntime-gpu (CUDAExecutionProvider) is not installed")


def _build(model_dir: Path, precision: str, calib: Path | None, cache: Path) -> None:
    from runtimes.tensorrt import build_plan

    result = build_plan(model_dir, precision=precision, calib=calib, cache_dir=cache)
    if result.meta.get("precision") != precision:
        pytest.skip(f"{precision} plan not built: {'; '.join(result.meta.get('notes', []))}")


def _holdout_texts() -> list[str]:
    need_data("openi", "reports.jsonl")
    return [r["text"] for r in parity.openi_split(holdout=True)]


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory) -> Path:
    """Plans per precision under $RADEDGE_GPU_TEST_ENGINES when set (benchmarks/gpu.py builds them there
    first, so the tests reuse them instead of building again), else a fresh folder."""
    shared = os.environ.get(parity.ENGINES_VAR)
    return Path(shared) if shared else tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def cpu_report_classes() -> np.ndarray:
    from radedge.reports.labeler import ReportLabeler

    _need_model(REPORT_MODEL)
    labeler = ReportLabeler.load(str(REPORT_MODEL), backend="onnxruntime", device="cpu")
    return np.stack([r.classes for r in labeler(_holdout_texts())])


@pytest.mark.parametrize("backend,device,precision", GPU_PATHS)
def test_report_labels_agree_with_cpu_int8(backend, device, precision, cpu_report_classes, engine_cache,
                                           tmp_path, monkeypatch):
    from radedge.reports.labeler import ReportLabeler

    _need_path(backend)
    if backend == "tensorrt":
        calib = None
        if precision == "int8":
            need_data("openi", "reports.jsonl")
            calib = parity.report_calibration(tmp_path / "calib")
        _build(REPORT_MODEL, precision, calib, engine_cache / precision)
        monkeypatch.setenv(plans.ENGINE_DIR_VAR, str(engine_cache / precision))
    labeler = ReportLabeler.load(str(REPORT_MODEL), backend=backend, device=device)
    if backend == "tensorrt":
        assert labeler.backend.plan.name.endswith(f".{precision}.plan")  # the precision under test ran
    gpu = np.stack([r.classes for r in labeler(_holdout_texts())])
    agreement = parity.label_agreement(cpu_report_classes, gpu)
    print(f"{backend}/{device}/{precision}: label agreement {agreement:.4f} over {gpu.size} labels")
    assert agreement >= parity.LABEL_AGREEMENT


@pytest.fixture(scope="module")
def nih_cpu() -> tuple[list[Path], np.ndarray, np.ndarray]:
    from radedge.images.scorer import ImageScorer

    _need_model(IMAGE_MODEL)
    need_data("images", "nih", "labels.csv")
    paths, truth = parity.nih()
    scorer = ImageScorer.load(str(IMAGE_MODEL), backend="onnxruntime", device="cpu")
    return paths, truth, np.stack([r.probabilities for r in scorer([str(p) for p in paths])])


@pytest.mark.parametrize("backend,device,precision", GPU_PATHS)
def test_image_auc_within_tolerance_of_cpu_int8(backend, device, precision, nih_cpu, engine_cache, monkeypatch):
    from radedge.images.scorer import ImageScorer

    _need_path(backend)
    paths, truth, cpu = nih_cpu
    if backend == "tensorrt":
        # int8 calibrates on the adult COVID-collection images, never on the NIH images it is scored on
        _build(IMAGE_MODEL, precision, need_data("images", "covid-cases") if precision == "int8" else None,
               engine_cache / precision)
        monkeypatch.setenv(plans.ENGINE_DIR_VAR, str(engine_cache / precision))
    scorer = ImageScorer.load(str(IMAGE_MODEL), backend=backend, device=device, batch_size=16)
    gpu = np.stack([r.probabilities for r in scorer([str(p) for p in paths])])
    worst, findings = parity.worst_auc_gap(cpu, gpu, truth)
    print(f"{backend}/{device}/{precision}: largest per-finding AUC difference {worst:.4f} over {findings} findings")
    assert worst <= parity.AUC_TOLERANCE

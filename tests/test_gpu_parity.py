"""GPU parity (marker `gpu`): the TensorRT and onnxruntime-CUDA paths label like the shipped CPU model.

* Report labels: the shipped report model on the Open-i dev reports, CPU (the shipped int8 graph,
  onnxruntime) against each GPU path: at least 99% of the 14 x reports labels identical.
* Image scores: the shipped image model on the NIH images, per-finding AUC (against the images'
  ChestX-ray14 labels mapped to CheXpert) within 0.01 of the CPU model's.

Every path skips with its reason when its part is missing (no GPU, no TensorRT, no onnxruntime-gpu,
no shipped model, no data). A TensorRT plan is built (or taken from the cache) on first use; an int8
plan is calibrated on Open-i *train* reports / COVID-collection images, never on what it is scored on.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from tests.paths import ROOT, need_data

from radedge.backends import plans

pytestmark = pytest.mark.gpu

REPORT_MODEL = ROOT / "models" / "report-student"
IMAGE_MODEL = ROOT / "models" / "image-vit"
LABEL_AGREEMENT = 0.99
AUC_TOLERANCE = 0.01
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


def _openi(split_is_dev: bool) -> list[dict]:
    path = need_data("openi", "reports.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if (r.get("split") == "dev") == split_is_dev]


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def cpu_report_classes() -> np.ndarray:
    from radedge.reports.labeler import ReportLabeler

    _need_model(REPORT_MODEL)
    labeler = ReportLabeler.load(str(REPORT_MODEL), backend="onnxruntime", device="cpu")
    return np.stack([r.classes for r in labeler([r["text"] for r in _openi(True)])])


@pytest.mark.parametrize("backend,device,precision", GPU_PATHS)
def test_report_labels_agree_with_cpu_int8(backend, device, precision, cpu_report_classes, engine_cache,
                                           tmp_path, monkeypatch):
    from radedge.reports.labeler import ReportLabeler

    _need_path(backend)
    if backend == "tensorrt":
        calib = None
        if precision == "int8":
            calib = tmp_path / "calib"
            calib.mkdir()
            for i, row in enumerate(_openi(False)[:256]):
                (calib / f"{i}.txt").write_text(row["text"], encoding="utf-8")
        _build(REPORT_MODEL, precision, calib, engine_cache / precision)
        monkeypatch.setenv(plans.ENGINE_DIR_VAR, str(engine_cache / precision))
    labeler = ReportLabeler.load(str(REPORT_MODEL), backend=backend, device=device)
    if backend == "tensorrt":
        assert labeler.backend.plan.name.endswith(f".{precision}.plan")  # the precision under test ran
    gpu = np.stack([r.classes for r in labeler([r["text"] for r in _openi(True)])])
    agreement = float(np.mean(gpu == cpu_report_classes))
    print(f"{backend}/{device}/{precision}: label agreement {agreement:.4f} over {gpu.size} labels")
    assert agreement >= LABEL_AGREEMENT


def _nih() -> tuple[list[Path], np.ndarray]:
    """NIH image paths and CheXpert presence [n, 14] (-1 where the finding has no ChestX-ray14 source)."""
    from radedge.eval import CHESTXRAY14_TO_CHEXPERT, map_chestxray14
    from radedge.labels import FINDINGS

    folder = need_data("images", "nih")
    paths, truth = [], []
    with open(folder / "labels.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            present = set(row["finding_labels"].split("|"))
            mapped = map_chestxray14({name: name in present for name in CHESTXRAY14_TO_CHEXPERT})
            paths.append(folder / row["image"])
            truth.append([mapped.get(name, -1) for name in FINDINGS])
    return paths, np.array(truth)


def _aucs(probs: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    from sklearn.metrics import roc_auc_score

    out = {}
    for k in range(truth.shape[1]):
        y = truth[:, k]
        if y.min() >= 0 and 0 < y.sum() < len(y):
            out[k] = float(roc_auc_score(y, probs[:, k]))
    return out


@pytest.fixture(scope="module")
def nih_cpu() -> tuple[list[Path], np.ndarray, np.ndarray]:
    from radedge.images.scorer import ImageScorer

    _need_model(IMAGE_MODEL)
    paths, truth = _nih()
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
    cpu_auc, gpu_auc = _aucs(cpu, truth), _aucs(gpu, truth)
    assert cpu_auc, "no finding with both classes in the NIH labels"
    worst = max(abs(cpu_auc[k] - gpu_auc[k]) for k in cpu_auc)
    print(f"{backend}/{device}/{precision}: largest per-finding AUC difference {worst:.4f} "
          f"over {len(cpu_auc)} findings")
    assert worst <= AUC_TOLERANCE

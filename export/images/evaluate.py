"""Measure the shipped image model on the patient-level validation split (no torch needed).

    python -m export.images.evaluate [--model models/image-vit] [--baseline runs/image-vit/bce.onnx]
                                     [--json runs/image-vit/evaluate.json]

Prints, as tables and JSON: per-finding AUC per source (NIH, paediatric, covid-cases) for the shipped
model.onnx and for model.fp32.onnx with the int8-vs-fp32 AUC shift; pneumonia accuracy / AUC on the
held-out paediatric part; and GLS (shipped, fp32) vs the plain-BCE baseline that
`python -m export.images.default` trains on the same split and writes to runs/image-vit/bce.onnx.
Inputs go through `radedge.images.preprocess` with the manifest's spec, as at run time.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from radedge.labels import FINDINGS
from radedge.manifest import Manifest

from .data import DEFAULT_IMAGES, load_pixels, load_sources, split_by_patient
from .metrics import auc_shift, max_shift, per_source_metrics

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "image-vit"
DEFAULT_BASELINE = REPO / "runs" / "image-vit" / "bce.onnx"
FP32_NAME = "model.fp32.onnx"


def onnx_probs(path: Path, pixels: np.ndarray, batch: int = 32) -> np.ndarray:
    """`probs` of an image ONNX graph on the CPU, in batches (here, not in export.images.onnx, so that
    evaluation needs no torch)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(["probs"], {"pixels": pixels[i:i + batch]})[0]
                           for i in range(0, len(pixels), batch)])


def evaluate(model_dir: Path = DEFAULT_MODEL, images_root: Path | None = None,
             baseline: Path | None = DEFAULT_BASELINE) -> dict[str, Any]:
    """Metrics of model.onnx, model.fp32.onnx and the BCE baseline (each when present)."""
    manifest = Manifest.read(model_dir)
    manifest.verify_files(model_dir)
    images_root = images_root or DEFAULT_IMAGES
    sources = manifest.provenance.get("data", {}).get("sources", ["nih", "pediatric", "covid"])
    _, val = split_by_patient(load_sources(images_root, sources))
    pixels = np.stack([load_pixels(s, manifest.preprocess) for s in val])
    models = {f"shipped ({manifest.precision})": model_dir / "model.onnx"}
    if (model_dir / FP32_NAME).is_file():
        models["fp32"] = model_dir / FP32_NAME
    if baseline is not None and Path(baseline).is_file():
        models["bce baseline (fp32)"] = Path(baseline)
    report: dict[str, Any] = {"model": str(model_dir), "validation_images": len(val), "models": {}}
    for label, path in models.items():
        report["models"][label] = per_source_metrics(val, onnx_probs(path, pixels), manifest.thresholds)
    names = list(report["models"])
    if "fp32" in report["models"]:
        shift = auc_shift(report["models"][names[0]], report["models"]["fp32"])
        report["int8_vs_fp32_max_auc_shift"] = max_shift(shift)
        report["int8_vs_fp32_auc_shift"] = shift
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def table(report: dict[str, Any]) -> str:
    """Per source and finding, one AUC column per model (Markdown)."""
    models = report["models"]
    first = next(iter(models.values()))
    head = "| source | finding | " + " | ".join(models) + " |"
    lines = [head, "|---|---|" + "---|" * len(models)]
    for src, row in first.items():
        for f in FINDINGS:
            if row["auc"][f] is None:
                continue
            lines.append(f"| {src} | {f} | " + " | ".join(_fmt(m[src]["auc"][f]) for m in models.values()) + " |")
        lines.append(f"| {src} | **mean AUC** (n={row['n']}) | "
                     + " | ".join(_fmt(m[src]["mean_auc"]) for m in models.values()) + " |")
    for src, row in first.items():
        for key in ("pneumonia_accuracy@0.5", "pneumonia_accuracy@threshold"):
            if key in row:
                lines.append(f"| {src} | {key} | " + " | ".join(_fmt(m[src][key]) for m in models.values()) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--images", type=Path, default=None, help="default: shared/data/images beside the checkout")
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    report = evaluate(args.model, args.images, args.baseline)
    print(table(report))
    if "int8_vs_fp32_max_auc_shift" in report:
        print(f"\nmax |AUC int8 - AUC fp32| over reported findings: {report['int8_vs_fp32_max_auc_shift']:.4f}")
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())

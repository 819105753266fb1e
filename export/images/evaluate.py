"""Measure the shipped image model on the patient-level validation split, targets included (no torch).

    python -m export.images.evaluate [--model models/image-vit] [--runs runs/image-vit] [--json OUT.json]

The shipped model runs through the runtime's own `ImageScorer` stages (network, calibration,
thresholds, out-of-distribution score), on inputs preprocessed with the manifest's spec. Printed:
- per source and finding: AUC with its 95% bootstrap interval, whether the model reports the finding,
  the fp32 export's AUC (runs/image-vit/model.fp32.onnx, left by `python -m export.images.default`)
  and the plain-BCE baseline's (runs/image-vit/bce.onnx), each when present;
- the targets: NIH mean AUC, paediatric pneumonia AUC, positive findings per normal film (NIH "No
  Finding", paediatric NORMAL) and the paediatric Pneumonia ECE, each both *in sample* (the shipped
  calibration and thresholds, fitted on this same split) and *out of fold* (export/images/calibrate.py
  `crossfit`: every fold scored by a fit on the other folds; the honest figure), the int8-vs-fp32 AUC
  shift, the model folder's size, the share of validation films flagged out-of-distribution, and
  model-only speed (images/s at batch 16, 2 threads, median call; `radedge.bench.measure`, the load
  average printed beside it: the machine is shared).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort

from radedge.bench import measure
from radedge.images.scorer import ImageScorer
from radedge.labels import FINDING_INDEX, FINDINGS

from .data import DEFAULT_IMAGES, load_pixels, load_sources, split_by_patient, stack_labels
from .metrics import auc_shift, bootstrap_auc, ece, max_shift, mean_auc, per_source_metrics, positives_per_normal
from ..cli import command_parser, run_command

REPO = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO / "models" / "image-vit"
DEFAULT_RUNS = REPO / "runs" / "image-vit"
FP32_NAME = "model.fp32.onnx"
BASELINE_NAME = "bce.onnx"
# The targets (validation split): NIH mean AUC, paediatric AUC, positives per normal film, ECE.
TARGETS = {"nih_mean_auc": 0.75, "pediatric_auc": 0.97, "positives_per_normal_film": 0.5, "pneumonia_ece": 0.05,
           "int8_shift": 0.01, "folder_mb": 30.0, "images_per_s": 300.0}
SPEED_BATCH = 16


def onnx_outputs(path: Path, pixels: np.ndarray, batch: int = 32) -> dict[str, np.ndarray]:
    """Every output of an image ONNX graph on the CPU, in batches (here, not in export.images.onnx, so that
    evaluation needs no torch)."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    runs = [sess.run(names, {"pixels": pixels[i:i + batch]}) for i in range(0, len(pixels), batch)]
    return {name: np.concatenate([r[k] for r in runs]) for k, name in enumerate(names)}


def folder_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20, 2)


def evaluate(model_dir: Path = DEFAULT_MODEL, images_root: Path | None = None,
             runs: Path = DEFAULT_RUNS) -> dict[str, Any]:
    """Metrics and targets of the shipped model (and of the fp32 export and BCE baseline when present)."""
    from .calibrate import crossfit

    scorer = ImageScorer.load(model_dir, batch_size=SPEED_BATCH, threads=2)
    manifest = scorer.model.manifest
    images_root = images_root or DEFAULT_IMAGES
    sources = manifest.provenance.get("data", {}).get("sources", ["nih", "pediatric", "covid"])
    _, val = split_by_patient(load_sources(images_root, sources))
    pixels = np.stack([load_pixels(s, manifest.preprocess) for s in val])
    outputs = scorer.run_model(pixels)
    raw = outputs[scorer.output_name]
    cal = scorer.probabilities(raw)
    labels = scorer.threshold(cal)
    reported = manifest.trained_findings if manifest.trained_findings is not None else list(FINDINGS)
    oof_cal, oof_labels = crossfit(raw, val, reported)
    targets, mask, _ = stack_labels(val)
    sources_of = np.array([s.source for s in val])

    others = {"fp32": runs / FP32_NAME, "bce baseline": runs / BASELINE_NAME}
    models = {"shipped": per_source_metrics(val, raw)}
    models.update({k: per_source_metrics(val, onnx_outputs(p, pixels)["probs"]) for k, p in others.items() if p.is_file()})
    aucs: dict[str, dict[str, Any]] = {}
    for src, row in models["shipped"].items():
        aucs[src] = {}
        for f in FINDINGS:
            if row["auc"][f] is None:
                continue
            keep = (sources_of == src) & (mask[:, FINDING_INDEX[f]] > 0)
            lo, hi = bootstrap_auc(targets[keep, FINDING_INDEX[f]], raw[keep, FINDING_INDEX[f]])
            aucs[src][f] = {"auc": row["auc"][f], "ci95": [lo, hi], "reported": f in reported,
                            **{k: m[src]["auc"][f] for k, m in models.items() if k != "shipped"}}

    def per_src(fn) -> dict[str, Any]:
        return {src: fn(sources_of == src) for src in sorted(set(sources_of))}

    pneu = FINDING_INDEX["Pneumonia"]
    ped = (sources_of == "pediatric") & (mask[:, pneu] > 0)
    nih_reported = {f: v["auc"] for f, v in aucs.get("nih", {}).items() if v["reported"]}
    report: dict[str, Any] = {
        "model": str(model_dir), "validation_images": len(val), "reported_findings": reported, "auc": aucs,
        "mean_auc": {k: {src: m[src]["mean_auc"] for src in m} for k, m in models.items()},
        "targets": {
            "nih_mean_auc_all_labelled": models["shipped"].get("nih", {}).get("mean_auc"),
            "nih_mean_auc_reported": mean_auc(nih_reported),
            "pediatric_auc": aucs.get("pediatric", {}).get("Pneumonia", {}).get("auc"),
            "positives_per_normal_film_in_sample": per_src(lambda r: positives_per_normal(labels[r], targets[r], mask[r])),
            "positives_per_normal_film_out_of_fold": per_src(
                lambda r: positives_per_normal(oof_labels[r], targets[r], mask[r])),
            "pneumonia_ece_pediatric_in_sample": round(ece(cal[ped, pneu], targets[ped, pneu]), 4),
            "pneumonia_ece_pediatric_out_of_fold": round(ece(oof_cal[ped, pneu], targets[ped, pneu]), 4),
            "folder_mb": folder_mb(model_dir),
        },
    }
    if scorer.ood is not None:
        scores = scorer.ood.score(outputs[scorer.ood.embedding_output], pixels)
        report["targets"]["ood_false_flags_validation"] = per_src(lambda r: round(float(scorer.ood.flagged(scores[r]).mean()), 4))
    batch = {scorer.input_name: np.ascontiguousarray(pixels[:SPEED_BATCH])}
    speed = measure(lambda: scorer.model.backend.run(batch), items_per_call=SPEED_BATCH, warmup=3, iters=50,
                    max_seconds=10)
    report["targets"]["images_per_s_batch16"] = round(speed.throughput, 1)
    report["targets"]["load_average"] = round(os.getloadavg()[0], 1)
    if "fp32" in models:
        shift = auc_shift(models["shipped"], models["fp32"])
        report["int8_vs_fp32_auc_shift"] = shift
        report["targets"]["int8_vs_fp32_max_auc_shift"] = max_shift(shift)
    return report


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table(report: dict[str, Any]) -> str:
    """Per source and finding: AUC [95% CI], reported, and the other models' AUC (Markdown)."""
    extra = [k for k in ("fp32", "bce baseline") if k in report["mean_auc"]]
    lines = ["| source | finding | AUC shipped [95% CI] | reported | " + " | ".join(f"AUC {k}" for k in extra) + " |",
             "|---|---|---|---|" + "---|" * len(extra)]
    for src, rows in report["auc"].items():
        if not rows:  # no finding with enough images of both classes (covid-cases: nearly all pneumonia)
            continue
        for f, v in rows.items():
            lines.append(f"| {src} | {f} | {v['auc']:.3f} [{v['ci95'][0]:.3f}, {v['ci95'][1]:.3f}] | "
                         f"{'yes' if v['reported'] else 'no'} | " + " | ".join(_fmt(v.get(k)) for k in extra) + " |")
        lines.append(f"| {src} | **mean** | {_fmt(report['mean_auc']['shipped'][src])} | | "
                     + " | ".join(_fmt(report['mean_auc'][k][src]) for k in extra) + " |")
    return "\n".join(lines)


def targets_text(t: dict[str, Any]) -> str:
    """The issue's targets, measured, one per line with the bound."""
    def mark(ok: bool | None) -> str:
        return "n/a" if ok is None else ("MET" if ok else "NOT MET")

    pos_in, pos_oof = t["positives_per_normal_film_in_sample"], t["positives_per_normal_film_out_of_fold"]
    lines = [
        f"NIH mean AUC (all labelled findings)        {_fmt(t['nih_mean_auc_all_labelled'])}   target >= 0.75: "
        f"{mark(t['nih_mean_auc_all_labelled'] is not None and t['nih_mean_auc_all_labelled'] >= TARGETS['nih_mean_auc'])}",
        f"NIH mean AUC (reported findings only)       {_fmt(t['nih_mean_auc_reported'])}",
        f"paediatric pneumonia AUC                    {_fmt(t['pediatric_auc'])}   target >= 0.97: "
        f"{mark(t['pediatric_auc'] is not None and t['pediatric_auc'] >= TARGETS['pediatric_auc'])}",
    ]
    for src in ("nih", "pediatric"):
        if src in pos_oof and pos_oof[src] is not None:
            lines.append(f"positives per normal film, {src:<10} out of fold {_fmt(pos_oof[src])} (in sample "
                         f"{_fmt(pos_in[src])})   target <= 0.5: {mark(pos_oof[src] <= TARGETS['positives_per_normal_film'])}")
    lines.append(f"Pneumonia ECE, paediatric, out of fold     {_fmt(t['pneumonia_ece_pediatric_out_of_fold'])} (in sample "
                 f"{_fmt(t['pneumonia_ece_pediatric_in_sample'])})   target <= 0.05: "
                 f"{mark(t['pneumonia_ece_pediatric_out_of_fold'] <= TARGETS['pneumonia_ece'])}")
    if "int8_vs_fp32_max_auc_shift" in t:
        lines.append(f"max |AUC int8 - AUC fp32|                   {t['int8_vs_fp32_max_auc_shift']:.4f}   target <= 0.01: "
                     f"{mark(t['int8_vs_fp32_max_auc_shift'] <= TARGETS['int8_shift'])}")
    lines.append(f"model folder                                {t['folder_mb']:.1f} MiB   target <= 30: "
                 f"{mark(t['folder_mb'] <= TARGETS['folder_mb'])}")
    lines.append(f"model-only speed, batch 16, 2 threads       {t['images_per_s_batch16']:.0f} images/s (load average "
                 f"{t['load_average']})   target >= 300: {mark(t['images_per_s_batch16'] >= TARGETS['images_per_s'])}")
    if "ood_false_flags_validation" in t:
        lines.append("validation chest films flagged out-of-distribution: "
                     + ", ".join(f"{k} {v:.3f}" for k, v in t["ood_false_flags_validation"].items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = command_parser("export.images.evaluate", __doc__)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder to evaluate")
    ap.add_argument("--images", type=Path, default=None, help="default: shared/data/images beside the checkout")
    ap.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="where the fp32 export and BCE baseline are")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    report = evaluate(args.model, args.images, args.runs)
    print(table(report))
    print()
    print(targets_text(report["targets"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    run_command(main, "export.images.evaluate")

"""Accuracy in the same report as the speed: radedge.eval on the labels the end-to-end run produced.

Report models are scored on the Open-i hold-out of export/splits.py (never trained on); the rule
labeler, which learns nothing, also on every dev report. Gold: shared/data/openi/gold-dev.csv,
positive findings mapped to CheXpert (radedge.eval's Open-i rules). Image AUCs come from the image
helper's evaluation (export/images/evaluate.py) when it and the export extra are installed.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .data import OPENI, holdout_ids


def _rows(task: str, model: str, split: str, result: Any, source: str) -> list[dict[str, Any]]:
    """The macro F1 row (micro F1 and per-finding F1 kept as fields) and the ChestX-ray8 comparison row."""
    pos = result.scores.get("positive", {})
    rows = [{"task": task, "model": model, "split": split, "n": result.n_reports,
             "metric": f"macro F1 positive ({int(result.macro['positive']['findings'])} findings)",
             "value": round(result.macro_f1, 4), "micro_f1": round(result.micro["positive"]["f1"], 4),
             "per_finding": {f: round(s.f1, 4) for f, s in pos.items() if s.support}, "source": source}]
    six = result.chestxray8.get("mean") if result.chestxray8 else None
    if six:
        rows.append({"task": task, "model": model, "split": split, "n": result.n_reports,
                     "metric": f"ChestX-ray8 six-finding mean F1 (published {six['published']:.3f})",
                     "value": round(six["ours"], 4), "source": source})
    return rows


def report_accuracy(predictions: Mapping[str, np.ndarray], ids: Sequence[str], gold_name: str = "gold-dev.csv"
                    ) -> list[dict[str, Any]]:
    """Rows for each labeler's predictions ([n, 14] classes over `ids`, in order)."""
    from radedge import eval as rad_eval

    gold = rad_eval.read_gold(OPENI / gold_name)
    index = {gid: i for i, gid in enumerate(gold.ids)}
    held = holdout_ids(list(gold.ids))
    ids = [str(i) for i in ids]
    splits = {"held-out": [i for i in ids if i in held], "all dev": ids}
    rows: list[dict[str, Any]] = []
    source = "radedge.eval via benchmarks/accuracy.py"
    for label, pred in predictions.items():
        full = np.zeros(gold.classes.shape, dtype=np.int8)
        full[[index[i] for i in ids]] = pred
        for split, subset in splits.items():
            if split == "all dev" and label != "rules":
                continue  # models trained on the rest of dev: only the hold-out is an honest number
            if not subset:
                continue
            result = rad_eval.evaluate(gold, full, ids=subset)
            rows += _rows("report-labels", label, f"Open-i {split} ({gold_name})", result, source)
    return rows


def image_accuracy(model_dir) -> list[dict[str, Any]]:
    """Rows from export/images/evaluate.py: per source mean AUC (per-finding AUCs kept), pneumonia
    accuracy, and the int8-vs-fp32 AUC shift, for the shipped graph, its fp32 file and the BCE baseline."""
    from export.images.evaluate import evaluate

    report = evaluate(model_dir)
    source = "export/images/evaluate.py:evaluate"
    name = report["model"].rstrip("/").split("/")[-1]
    rows: list[dict[str, Any]] = []
    for label, by_source in report["models"].items():
        for src, m in by_source.items():
            aucs = {f: v for f, v in m["auc"].items() if v is not None}
            split = f"{src} validation (patient-level)"
            if m.get("mean_auc") is not None:
                rows.append({"task": "image-findings", "model": f"{name} {label}", "split": split, "n": m["n"],
                             "metric": f"mean AUC ({len(aucs)} findings)", "value": m["mean_auc"],
                             "per_finding": aucs, "source": source})
            key = next((k for k in ("pneumonia_accuracy@threshold", "pneumonia_accuracy@0.5") if k in m), None)
            if key and src == "pediatric":  # the held-out paediatric part is the pneumonia test
                rows.append({"task": "image-findings", "model": f"{name} {label}", "split": split, "n": m["n"],
                             "metric": key.replace("_", " "), "value": m[key], "source": source})
    if "int8_vs_fp32_max_auc_shift" in report:
        rows.append({"task": "image-findings", "model": name, "split": "all validation sources",
                     "n": report["validation_images"], "metric": "max |AUC int8 - AUC fp32|",
                     "value": report["int8_vs_fp32_max_auc_shift"], "source": source})
    return rows

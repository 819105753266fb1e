"""Texts in, labels out (and images in, scores out) through the public Python API, side by side.

Every report labeler (the shipped default, other report models and precisions, the rule labeler)
labels the same Open-i reports in the same run; the labels it produced are kept for the accuracy
section, so the reports are labelled once. Throughput is reported as a ratio against the shipped
default measured here, never against a remembered number.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radedge import registry
from radedge.bench import PeakRss, measure, timed

from .data import rel
from .latency import Variant

REPORT_TASK = "report-labels"
IMAGE_TASK = "image-findings"


def _labeler_for(variant: Variant | None, threads: int | None):
    """A ReportLabeler for the rule labeler (None) or a variant (its own graph file, when not shipped)."""
    from radedge.reports.labeler import ReportLabeler
    from radedge.reports.windows import ReportWindows

    if variant is None:
        return ReportLabeler.load("rules")
    if variant.through_registry:
        return ReportLabeler.load(variant.folder, backend=variant.backend, device=variant.device, threads=threads)
    backend, _ = variant.open(threads)
    return ReportLabeler(variant.model, variant.folder, windows=ReportWindows.from_model_dir(variant.folder),
                         backend=backend)


def token_stats(labeler: Any, texts: Sequence[str]) -> dict[str, float]:
    """Mean tokens and windows per report as the labeler feeds its model (special tokens included)."""
    windows = labeler.windows.encode(list(texts))
    lengths = np.array([len(w) for w in windows]) if windows else np.zeros(1)
    return {"mean_tokens": round(float(lengths.sum()) / max(len(texts), 1), 2),
            "mean_window_tokens": round(float(lengths.mean()), 2),
            "windows_per_report": round(len(windows) / max(len(texts), 1), 3),
            "max_window_tokens": int(lengths.max())}


def role_of(variant: Variant) -> str:
    """"default" for the shipped graph of the task's default model, else "alternative"."""
    return "default" if variant.shipped and variant.model == registry.DEFAULTS[variant.task] else "alternative"


def label_with(variant: Variant | None, texts: Sequence[str], repeats: int,
               threads: int | None) -> tuple[dict[str, Any], np.ndarray]:
    """(row, classes [n, 14]) of one labeler (None: the rule labeler) over `texts`, the whole corpus per
    timed call. Meant to run in a fresh process (benchmarks.run.fresh) so its RSS is its own."""
    import onnxruntime  # noqa: F401  (imported before the load is timed: an import is not a model load)

    with PeakRss() as rss:
        labeler, load_s = timed(lambda: _labeler_for(variant, threads))
        results: list = []

        def run() -> None:
            results[:] = labeler(texts)

        latency = measure(run, items_per_call=len(texts), warmup=0, iters=repeats, max_seconds=30, min_iters=1)
    row = {
        "task": REPORT_TASK, "name": variant.model if variant else "rules",
        "label": variant.label if variant else "rules (Python, 1 thread)",
        "role": role_of(variant) if variant else "peer",
        "engine": variant.engine if variant else "python", "precision": variant.precision if variant else "-",
        "shipped": bool(variant.shipped) if variant else True,
        "what": "ReportLabeler(texts): sections, tokenization, windows, batches of 32, model, labels",
        "items": len(texts), "batch": labeler.batch_size, "seconds": round(latency.median_s, 4),
        "calls": len(latency.samples_s), "throughput_per_s": round(latency.throughput, 2),
        "load_s": round(load_s, 4), "peak_rss_mb": round(rss.peak_mb, 1),
        "source": "benchmarks/end_to_end.py:label_with",
    }
    if variant is not None:
        row.update(token_stats(labeler, texts), onnx=rel(variant.onnx), device=variant.device)
    return row, np.stack([r.classes for r in results])


def score_with(variant: Variant, paths: Sequence[Path], repeats: int, threads: int | None) -> dict[str, Any]:
    """One image model on image files (read, preprocess, batch, infer, threshold); run in a fresh process."""
    import onnxruntime  # noqa: F401  (imported before the load is timed)

    from radedge.images.scorer import ImageScorer

    with PeakRss() as rss:
        if variant.through_registry:
            scorer, load_s = timed(lambda: ImageScorer.load(variant.folder, backend=variant.backend,
                                                            device=variant.device, threads=threads))
        else:
            scorer, load_s = timed(lambda: ImageScorer(_loaded_model(variant, threads)))
        latency = measure(lambda: scorer(list(map(str, paths))), items_per_call=len(paths), warmup=0,
                          iters=repeats, max_seconds=30, min_iters=1)
    return {
        "task": IMAGE_TASK, "name": variant.model, "label": variant.label, "role": role_of(variant),
        "engine": variant.engine, "precision": variant.precision, "shipped": variant.shipped,
        "device": variant.device,
        "what": f"ImageScorer(paths): PNG decode, preprocess, batches of {scorer.batch_size}, model, thresholds",
        "items": len(paths), "batch": scorer.batch_size, "seconds": round(latency.median_s, 4),
        "calls": len(latency.samples_s), "throughput_per_s": round(latency.throughput, 2),
        "load_s": round(load_s, 4), "peak_rss_mb": round(rss.peak_mb, 1), "onnx": rel(variant.onnx),
        "source": "benchmarks/end_to_end.py:score_with",
    }


def _loaded_model(variant: Variant, threads: int | None) -> registry.LoadedModel:
    """A LoadedModel around a variant's own graph (e.g. the fp32 file kept beside the int8 one)."""
    from radedge.manifest import Manifest

    backend, _ = variant.open(threads)
    return registry.LoadedModel(variant.folder, Manifest.read(variant.folder), backend)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """ratio_vs_default = throughput / that of the shipped default on the CPU measured by the same source
    (the same function, in the same run), in place; None when that source measured no default."""
    def group_of(r: dict[str, Any]) -> tuple[str, Any]:
        return r["task"], r.get("source_group", r.get("source"))

    for key in {group_of(r) for r in rows}:
        group = [r for r in rows if group_of(r) == key]
        base = next((r for r in group if r["role"] == "default" and r.get("shipped", True)
                     and r.get("device", "cpu") == "cpu"), None)
        for r in group:
            if r.get("ratio_vs_default") is None:
                r["ratio_vs_default"] = round(r["throughput_per_s"] / base["throughput_per_s"], 3) if base else None

"""The graph-only latency grid: every variant x batch size x sequence length (or image size)."""
from __future__ import annotations

from typing import Any, Sequence

from radedge.bench import PeakRss, bench_backend, tokenizer_vocab_size

from .data import rel
from .variants import Variant, shipped_manifest


def model_record(variant: Variant, load_s: float, rss: PeakRss) -> dict[str, Any]:
    manifest = shipped_manifest(variant)
    return {
        "model": variant.model, "task": variant.task, "precision": variant.precision, "engine": variant.engine,
        "backend": variant.backend, "device": variant.device, "onnx": rel(variant.onnx), "shipped": variant.shipped,
        "label": variant.label, "load_s": round(load_s, 4), "load_peak_rss_mb": round(rss.peak_mb, 1),
        "model_bytes": variant.onnx.stat().st_size, "max_length": manifest.max_length,
        "image_size": (manifest.preprocess or {}).get("size"),
    }


def run_variant(variant: Variant, batch_sizes: Sequence[int], seq_lens: Sequence[int], iters: int, warmup: int,
                max_seconds: float, threads: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load one variant (timed, with its RSS) and time its graph over the grid; meant to run in a fresh
    process (benchmarks.isolation), so the RSS is this model's and the load time a first load's."""
    import onnxruntime  # noqa: F401  (imported before the load is timed: an import is not a model load)

    manifest = shipped_manifest(variant)
    with PeakRss() as rss:
        backend, load_s = variant.open(threads)
    record = model_record(variant, load_s, rss)
    vocab = tokenizer_vocab_size(variant.folder, manifest.tokenizer) if manifest.tokenizer else 1000
    lens = [s for s in seq_lens if not manifest.max_length or s <= manifest.max_length] or [manifest.max_length]
    cases = bench_backend(backend, task=variant.task, model=variant.model, precision=variant.precision,
                          batch_sizes=batch_sizes, seq_lens=lens, vocab_size=vocab, warmup=warmup, iters=iters,
                          max_seconds=max_seconds)
    rows = []
    for case in cases:
        row = case.to_dict()
        row.update(engine=variant.engine, shipped=variant.shipped, label=variant.label)
        rows.append(row)
    del backend
    return record, rows

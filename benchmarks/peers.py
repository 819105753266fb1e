"""The peers measured by the model helpers' own benchmarks, folded into this run's rows.

benchmarks/image_speed.py times the shipped image graph, its fp32 file and the same ViT in PyTorch
fp32 on the same preprocessed batch; benchmarks/report_speed.py times the report student and a
CheXbert-sized BERT-base in PyTorch fp32 on the same reports, CSV to CSV. Their numbers are used as
they measured them, and each ratio is against the shipped default in the same call.
"""
from __future__ import annotations

import importlib
from typing import Any, Sequence

IMAGE_TASK = "image-findings"


def image_speed_rows(batch: int, threads: int, seconds: float) -> list[dict[str, Any]]:
    module = importlib.import_module("benchmarks.image_speed")
    result = module.run("default", batch=batch, threads=threads, seconds=seconds, with_torch=True)
    rows = []
    for case in result["cases"]:
        torch_case = case["runtime"].startswith("pytorch")
        shipped = case["file"] == "model.onnx"
        rows.append({
            "task": IMAGE_TASK, "name": "image-vit",
            "label": f"image-vit {case['precision']} {'PyTorch eager' if torch_case else 'ort-cpu'}"
                     + ("" if torch_case or shipped else f" ({case['file']})"),
            "role": "default" if shipped else "peer" if torch_case else "alternative",
            "engine": "pytorch" if torch_case else "ort-cpu", "precision": case["precision"], "shipped": shipped,
            "device": "cpu", "what": f"model only, batch {case['batch']}, preprocessed NIH images, {threads} threads",
            "items": int(case["batch"]), "seconds": round(case["p50_ms"] / 1e3, 5),
            "throughput_per_s": case["images_per_s"], "p50_ms": case["p50_ms"], "p99_ms": case["p99_ms"],
            "source": "benchmarks/image_speed.py:run"})
    return rows


def torch_image_latency(batch_sizes: Sequence[int], threads: int, seconds: float) -> list[dict[str, Any]]:
    """The PyTorch fp32 ViT (image_speed.bench_torch) over the grid's batch sizes, as latency rows."""
    module = importlib.import_module("benchmarks.image_speed")
    from radedge.manifest import Manifest
    from radedge.registry import resolve

    manifest = Manifest.read(resolve("default", IMAGE_TASK))
    from radedge.bench import PeakRss

    rows = []
    for batch in batch_sizes:
        pixels = module.input_batch(manifest, batch)
        with PeakRss() as rss:
            r = module.bench_torch(manifest, pixels, threads, seconds)
        rows.append({**{k: v for k, v in r.items() if k not in ("runtime", "file", "images_per_s", "threads")},
                     "task": IMAGE_TASK, "model": "image-vit", "backend": "pytorch", "device": "cpu",
                     "engine": "pytorch", "precision": "fp32", "batch": batch, "sequence": None,
                     "image_size": int(pixels.shape[-1]), "kind": "model", "shipped": False,
                     "label": "image-vit fp32 pytorch", **rss.to_dict()})
    return rows

"""The peers measured by the model helpers' own benchmarks, folded into this run's rows.

benchmarks/image_speed.py times the shipped image graph, its fp32 file and the same ViT in PyTorch
fp32 on the same preprocessed batch; benchmarks/report_speed.py times the report student and a
CheXbert-sized BERT-base in PyTorch fp32 on the same reports, CSV to CSV. Their numbers are used as
they measured them, and each ratio is against the shipped default in the same call.
"""
from __future__ import annotations

import importlib
from pathlib import Path
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


REPORT_TASK = "report-labels"


def report_speed_rows(n_reports: int, threads: int, repeats: int) -> list[dict[str, Any]]:
    """CSV -> CSV on the same first `n_reports` Open-i dev reports, with report_speed's functions:
    `radedge label-reports` with the shipped default and with the rule labeler (median of `repeats`
    runs each), and the CheXbert-sized BERT-base in PyTorch fp32 (one run: it is slow)."""
    import statistics
    import tempfile

    module = importlib.import_module("benchmarks.report_speed")
    from .data import openi_reports

    texts = [r["text"] for r in openi_reports(n_reports)]
    if not texts:
        raise FileNotFoundError("Open-i reports not found (shared/data/openi/reports.jsonl)")
    source = "benchmarks/report_speed.py"
    what = f"CSV -> CSV, first {len(texts)} Open-i dev reports, {threads} threads"
    rows = []
    with tempfile.TemporaryDirectory(prefix="radedge-bench-csv-") as tmp:
        src = module.write_reports_csv(texts, Path(tmp) / "reports.csv")
        for model, label, role in (("default", "report-student (radedge label-reports)", "default"),
                                   ("rules", "rules (radedge label-reports --model rules)", "peer")):
            runs = [module.student_csv(src, Path(tmp) / f"{model}.csv", model=model, threads=threads)
                    for _ in range(repeats)]
            seconds = statistics.median(r["seconds"] for r in runs)
            rows.append({"task": REPORT_TASK, "name": "report-student" if model == "default" else "rules",
                         "label": label, "role": role, "engine": "ort-cpu" if model == "default" else "python",
                         "precision": "shipped" if model == "default" else "-", "shipped": True, "device": "cpu",
                         "what": what + " (model load and sha256 check included)", "items": runs[0]["reports"],
                         "seconds": round(seconds, 3), "calls": len(runs),
                         "throughput_per_s": round(runs[0]["reports"] / seconds, 2),
                         "source": f"{source}:student_csv"})
        peer = module.ChexbertSized(threads=threads)
        big = module.chexbert_csv(src, Path(tmp) / "chexbert.csv", peer)
    rows.append({"task": REPORT_TASK, "name": "chexbert-sized", "label": "CheXbert-sized BERT-base (PyTorch fp32)",
                 "role": "peer", "engine": "pytorch", "precision": "fp32", "shipped": False, "device": "cpu",
                 "what": what + " (random init; same reader, sections, windows, writer)", "items": big["reports"],
                 "seconds": big["seconds"], "calls": 1, "throughput_per_s": big["reports_per_s"],
                 "source": f"{source}:chexbert_csv"})
    for row in rows:  # one group: ratios against the label-reports default of this same call
        row["source_group"] = source
    return rows


def _torch_rows(call_for, batch_sizes: Sequence[int], seq_lens: Sequence[int], warmup: int, iters: int,
                seconds: float, **fields: Any) -> list[dict[str, Any]]:
    """Latency rows of a PyTorch report model: `call_for(batch, seq)` returns the call to time."""
    from radedge.bench import PeakRss, measure

    rows = []
    for seq in seq_lens:
        for batch in batch_sizes:
            call = call_for(batch, seq)
            with PeakRss() as rss:
                latency = measure(call, items_per_call=batch, warmup=warmup, iters=iters, max_seconds=seconds)
            rows.append({**latency.to_dict(), **rss.to_dict(), "task": REPORT_TASK, "backend": "pytorch",
                         "device": "cpu", "engine": "pytorch", "precision": "fp32", "batch": batch, "sequence": seq,
                         "image_size": None, "kind": "model", "shipped": False, **fields})
    return rows


def torch_student_latency(student_dir, batch_sizes: Sequence[int], seq_lens: Sequence[int], threads: int,
                          warmup: int, iters: int, seconds: float) -> list[dict[str, Any]]:
    """The trained report student itself (export.student.load_student) in PyTorch fp32 eager."""
    import torch

    from export.student import load_student

    torch.set_num_threads(threads)
    model, info = load_student(student_dir)
    seq_lens = [s for s in seq_lens if s <= int(info["max_length"])] or [int(info["max_length"])]

    def call_for(batch: int, seq: int):
        ids = torch.randint(5, 1000, (batch, seq))
        mask = torch.ones_like(ids)

        def call() -> None:
            with torch.inference_mode():
                model(ids, mask)
        return call

    name = Path(student_dir).name
    return _torch_rows(call_for, batch_sizes, seq_lens, warmup, iters, seconds, model="report-student",
                       label=f"report-student fp32 pytorch ({name})")


def torch_bert_latency(batch_sizes: Sequence[int], seq_lens: Sequence[int], threads: int, warmup: int,
                       iters: int, seconds: float) -> list[dict[str, Any]]:
    """The CheXbert-sized BERT-base encoder + heads (report_speed.ChexbertSized) on synthetic token ids,
    as latency rows beside the ONNX variants (PyTorch fp32 eager, inference mode)."""
    module = importlib.import_module("benchmarks.report_speed")
    peer = module.ChexbertSized(threads=threads)
    torch = peer.torch

    def call_for(batch: int, seq: int):
        ids = torch.randint(1000, 30000, (batch, seq))
        mask = torch.ones_like(ids)

        def call() -> None:
            with torch.inference_mode():
                peer.heads(peer.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])
        return call

    return _torch_rows(call_for, batch_sizes, seq_lens, warmup, iters, seconds, model="chexbert-sized",
                       label="CheXbert-sized BERT-base fp32 pytorch")

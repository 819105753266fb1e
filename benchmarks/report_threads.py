"""Why `--threads 1` can beat `--threads 2`: the report student's throughput per intra-op thread count,
with onnxruntime's idle-thread spinning on and off, in one run on the same reports.

    python -m benchmarks.report_threads [--reports 1000] [--model default] [--repeats 3]

Each configuration labels the same Open-i dev reports through `ReportLabeler` (sections, sentences or
windows, tokenizer, onnxruntime, aggregation), best of `repeats`; the load average of the machine is
printed beside it, because the answer depends on what else runs: a spinning thread busy-waits for
work between operators, which on cores shared with other processes takes the time the working
thread needs.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Sequence

from radedge.backends.onnxruntime import OnnxRuntimeBackend
from radedge.reports.labeler import ReportLabeler

from .data import openi_reports


def reports_per_s(model: str, texts: Sequence[str], threads: int, spin: bool, repeats: int) -> dict[str, Any]:
    """Best-of-`repeats` reports/s of one (threads, spin) configuration (model loaded, one warm-up)."""
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report_threads", description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=1000)
    p.add_argument("--model", default="default")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    texts = [r["text"] for r in openi_reports(args.reports)]
    print(f"{len(texts)} Open-i reports, model {args.model}, {os.cpu_count()} CPUs")
    for threads in (1, 2):
        for spin in (True, False):
            r = reports_per_s(args.model, texts, threads, spin, args.repeats)
            print(f"  threads {threads}, spinning {'on ' if spin else 'off'}: {r['reports_per_s']:7.1f} reports/s "
                  f"(runs {r['runs']}, load {r['load_1min']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

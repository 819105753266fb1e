"""`python -m benchmarks [--quick] [--out DIR]`: every speed and accuracy figure the README quotes.

One command, one process, one machine: the shipped models and their alternatives are measured side
by side in the same run. Each section runs on its own; a section that cannot run here (no model yet,
no GPU, an optional helper missing) is recorded in `notes` / `errors` instead of stopping the rest.
Results: DIR/results.json (schema: benchmarks/report/schema.py), DIR/*.png, and the terminal tables.
`python -m benchmarks.report DIR/results.json` then regenerates the README's performance block.

Sections that load a model run in a fresh interpreter each (`fresh`): in one long process every model
loaded before (and torch, once imported) stays resident, so a later case's RSS would include them.
"""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from radedge import registry
from radedge.bench import describe_machine, machine_info

from . import dicom
from .accuracy import image_accuracy, report_accuracy, seen_holdout
from .data import DATA, ROOT, openi_reports
from .end_to_end import add_ratios, label_with, score_with
from .latency import discover, find_student, report_fp32_reference, run_variant
from .peers import (image_speed_rows, report_speed_rows, torch_bert_latency, torch_image_latency,
                    torch_student_latency)
from .report import schema
from .report.plots import write_plots
from .report.tables import print_tables
from .roofline import annotate, measure_peaks, peak_for
from export.cli import command_parser, run_command

REPORT_TASK, IMAGE_TASK = "report-labels", "image-findings"


@dataclass
class Settings:
    """What one run measures; --quick shrinks every axis for a smoke run."""

    quick: bool = False
    report_batches: tuple[int, ...] = (1, 8, 32)
    report_seqs: tuple[int, ...] = (64, 128, 256)
    image_batches: tuple[int, ...] = (1, 8, 16, 32)
    iters: int = 20
    warmup: int = 2
    max_seconds: float = 4.0
    e2e_reports: int | None = None  # None: every Open-i dev report
    e2e_repeats: int = 2
    e2e_images: int = 64
    csv_reports: int = 300  # CSV -> CSV comparison with the CheXbert-sized peer (about 10 reports/s)
    dicom_memory_files: tuple[int, ...] = (1000, 10000)
    threads: int | None = None
    gpu: bool = True
    models_dir: str | None = None  # only the model folders under this one (default: the registry's path)
    extra_models: list[str] = field(default_factory=list)  # reference folders added by the references section

    @classmethod
    def for_run(cls, quick: bool, **common: Any) -> "Settings":
        if not quick:
            return cls(**common)
        return cls(quick=True, report_batches=(1, 8), report_seqs=(64,), image_batches=(1, 8), iters=5, warmup=1,
                   max_seconds=1.0, e2e_reports=128, e2e_repeats=1, e2e_images=16, csv_reports=32,
                   dicom_memory_files=(200,), **common)

    def variants(self, task: str) -> list:
        return discover(task, include_gpu=self.gpu, root=Path(self.models_dir) if self.models_dir else None,
                        extra=[Path(p) for p in self.extra_models])


class Run:
    """The results being built, with per-section timing and error capture."""

    def __init__(self, settings: Settings, out: Path, argv: list[str]) -> None:
        self.settings, self.out, self.start = settings, out, time.perf_counter()
        self.results: dict[str, Any] = {
            "format": schema.FORMAT, "version": schema.VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": ["python", "-m", "benchmarks", *argv], "quick": settings.quick, "wall_s": 0.0,
            "git_commit": _git_commit(), "settings": asdict(settings), "machine": {}, "import_time": {},
            "peaks": {}, "models": [], "latency": [], "end_to_end": [], "accuracy": [], "dicom": {},
            "roofline": [], "notes": [], "errors": [], "sections_s": {},
        }
        self.predictions: dict[str, Any] = {}
        self.student_dir: Path | None = None  # the trained report student (PyTorch), when found
        self.report_ids: list[str] = []

    def note(self, text: str) -> None:
        self.results["notes"].append(text)
        log(f"note: {text}")

    def section(self, name: str, fn: Callable[["Run"], None]) -> None:
        log(f"== {name}")
        t0 = time.perf_counter()
        try:
            fn(self)
        except Exception as exc:  # one broken section must not lose the others' numbers
            self.results["errors"].append({"section": name, "error": f"{type(exc).__name__}: {exc}"})
            log(f"error in {name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
        self.results["sections_s"][name] = round(time.perf_counter() - t0, 2)
        if hasattr(os, "getloadavg"):  # how busy the machine was: other processes slow every timing
            self.results.setdefault("sections_load_1m", {})[name] = round(os.getloadavg()[0], 2)
        self.save()

    def save(self) -> Path:
        self.results["wall_s"] = round(time.perf_counter() - self.start, 2)
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "results.json"
        tmp = path.with_name("results.json.tmp")
        tmp.write_text(json.dumps(self.results, indent=1, default=_json_default) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def fresh(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs) in a new interpreter (spawned: no inherited threads or memory), so its peak RSS
    and load time are that model's alone; its exceptions are re-raised here."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def import_time_s(module: str = "radedge", repeats: int = 5) -> dict[str, Any]:
    """Seconds to `import module` in a fresh interpreter (median of `repeats` subprocesses), measured
    inside the child around the import statement only, so interpreter start-up is excluded."""
    code = f"import time; t = time.perf_counter(); import {module}; print(repr(time.perf_counter() - t))"
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                   .stdout.strip().splitlines()[-1]) for _ in range(repeats)]
    return {"module": module, "median_s": round(statistics.median(times), 4), "repeats": repeats,
            "samples_s": [round(t, 4) for t in times]}


# ---- sections -----------------------------------------------------------------------------
def machine_section(run: Run) -> None:
    run.results["machine"] = machine_info()
    run.results["import_time"] = import_time_s("radedge", repeats=3 if run.settings.quick else 7)
    log(f"machine: {describe_machine(run.results['machine'])}")
    load = run.results["machine"].get("load_average_1m")
    if load is not None and load > 0.5 * (run.results["machine"].get("usable_cpus") or 1):
        run.note(f"the CPU was busy when the run started (1-minute load average {load} on "
                 f"{run.results['machine'].get('usable_cpus')} CPUs): timings may be pessimistic")


def peaks_section(run: Run) -> None:
    run.results["peaks"] = measure_peaks(quick=run.settings.quick)
    log(f"peaks: {run.results['peaks']}")


def _variants(run: Run, task: str):
    found = run.settings.variants(task)
    if not found:
        run.note(f"no {task} model on the search path ({', '.join(map(str, registry.search_path()))}): not measured")
    names = {v.model for v in found}
    for name in sorted(names):
        if not any(v.model in (name, f"{name}-fp32") and v.precision == "fp32" for v in found):
            run.note(f"{name}: only its {next(v.precision for v in found if v.model == name)} graph is in its "
                      "folder, so no fp32 ONNX row for it")
    return found


def references_section(run: Run) -> None:
    """The shipped report student's fp32 ONNX and PyTorch model, from its training folder in runs/."""
    if not _has_torch() or not _has_default(REPORT_TASK, run):
        run.note("report fp32 / PyTorch references skipped: " + ("torch is not installed (export extra)"
                                                               if not _has_torch() else "no shipped report model"))
        return
    model_dir = registry.resolve("default", REPORT_TASK)
    student = find_student(model_dir)
    if student is None:
        run.note(f"{model_dir.name} ships int8 only and its trained student was not found in runs/: "
                 "no fp32 ONNX or PyTorch rows for it")
        return
    run.student_dir = student
    reference = report_fp32_reference(model_dir, student)
    run.settings.extra_models.append(str(reference))
    run.results["settings"]["extra_models"] = list(run.settings.extra_models)
    log(f"fp32 reference of {model_dir.name}: {reference} (from {student})")


def latency_section(task: str) -> Callable[[Run], None]:
    def section(run: Run) -> None:
        s = run.settings
        for variant in _variants(run, task):
            log(f"-- {variant.label}")
            batches = s.report_batches if task == REPORT_TASK else s.image_batches
            try:
                record, rows = fresh(run_variant, variant, batches, s.report_seqs, s.iters, s.warmup,
                                     s.max_seconds, s.threads)
            except Exception as exc:  # e.g. a GPU engine that cannot build here: keep the other variants
                run.results["errors"].append({"section": f"latency {variant.label}",
                                              "error": f"{type(exc).__name__}: {exc}"})
                log(f"error: {variant.label}: {exc}")
                continue
            for row in rows:
                annotate(row, str(variant.onnx), row.get("sequence"), row["throughput_per_s"], variant.precision,
                         variant.device, run.results["peaks"], batch=row["batch"])
            run.results["models"].append(record)
            run.results["latency"] += rows
    return section


def reports_end_to_end_section(run: Run) -> None:
    reports = openi_reports(run.settings.e2e_reports)
    if not reports:
        run.note("Open-i reports not found: report end-to-end and accuracy not measured")
        return
    run.report_ids = [r["id"] for r in reports]
    texts = [r["text"] for r in reports]
    for variant in [None, *run.settings.variants(REPORT_TASK)]:  # None: the rule labeler
        row, classes = fresh(label_with, variant, texts, run.settings.e2e_repeats, run.settings.threads)
        run.results["end_to_end"].append(row)
        run.predictions[row["label"] if variant else "rules"] = classes


def images_end_to_end_section(run: Run) -> None:
    folder = DATA / "images" / "nih"
    paths = sorted(folder.rglob("*.png"))[: run.settings.e2e_images]
    variants = run.settings.variants(IMAGE_TASK)
    if not paths or not variants:
        run.note("no NIH PNGs or no image model: image end-to-end not measured")
        return
    for variant in variants:
        run.results["end_to_end"].append(fresh(score_with, variant, paths, run.settings.e2e_repeats,
                                               run.settings.threads))


def roofline_section(run: Run) -> None:
    """One row per model variant: its end-to-end throughput at the measured mean tokens per window.

    The peaks are measured again here and the better of the two measurements is the limit: a peak taken
    while other processes were busy would understate it (and overstate every fraction)."""
    first, again = run.results["peaks"], measure_peaks(quick=run.settings.quick)
    peaks = {k: max(first.get(k) or 0, v) if isinstance(v, float) else v for k, v in again.items()}
    peaks["measurements"] = [first, again]
    run.results["peaks"] = peaks
    for row in run.results["latency"]:  # every graph row against the final limit
        if row.get("achieved_gops") is not None:
            row["peak_gops"] = peak_for(row["precision"], row["device"], peaks)
            row["fraction_of_peak"] = round(row["achieved_gops"] / row["peak_gops"], 3) if row["peak_gops"] else None
    for row in run.results["end_to_end"]:
        if not row.get("onnx"):
            continue
        sequence = round(row["mean_window_tokens"]) if row["task"] == REPORT_TASK else None
        # FLOPs per report = per window x windows per report; per image = one forward pass.
        per_item_scale = row.get("windows_per_report", 1.0)
        r = {"model": row["name"], "precision": row["precision"], "engine": row["engine"], "task": row["task"],
             "what": f"end to end, {row['items']} items, batches of {row.get('batch', 1)}"
                     + (f", mean window {sequence} tokens" if sequence else "")}
        annotate(r, row["onnx"], sequence, row["throughput_per_s"] * per_item_scale, row["precision"],
                 row.get("device", "cpu"), peaks, batch=row.get("batch", 1))
        r["flops_per_item"] = int(r["flops_per_item"] * per_item_scale)
        r["throughput_per_s"] = row["throughput_per_s"]
        run.results["roofline"].append(r)
    # Graph only: each variant's best batch at the grid's sequence length nearest the reports' mean window.
    mean_window = next((r["mean_window_tokens"] for r in run.results["end_to_end"] if r.get("mean_window_tokens")), 128)
    best: dict[str, dict[str, Any]] = {}
    for label in {r["label"] for r in run.results["latency"] if r.get("fraction_of_peak") is not None}:
        rows = [r for r in run.results["latency"] if r["label"] == label]
        seqs = {r["sequence"] for r in rows if r.get("sequence")}
        seq = min(seqs, key=lambda q: abs(q - mean_window)) if seqs else None
        best[label] = max((r for r in rows if r.get("sequence") == seq), key=lambda r: r["throughput_per_s"])
    for row in best.values():
        run.results["roofline"].append({
            "model": row["model"], "precision": row["precision"], "engine": row["engine"], "task": row["task"],
            "what": f"graph only, best batch {row['batch']}" + (f", {row['sequence']} tokens" if row.get("sequence") else ""),
            "flops_per_item": row["flops_per_item"], "throughput_per_s": row["throughput_per_s"],
            "achieved_gops": row["achieved_gops"], "peak_gops": row["peak_gops"],
            "fraction_of_peak": row["fraction_of_peak"]})


def report_accuracy_section(run: Run) -> None:
    if not run.predictions:
        run.note("no report labels from the end-to-end section: report accuracy not measured")
        return
    run.results["accuracy"] += report_accuracy(run.predictions, run.report_ids)
    seen = seen_holdout(registry.resolve("default", REPORT_TASK), run.report_ids)
    if seen:
        run.note(seen)


def dicom_section(run: Run) -> None:
    result = dicom.throughput(run.settings.quick, run.settings.threads)
    run.results["dicom"] = result
    if "stand-in" in str(result.get("model")):
        run.note("DICOM throughput used the image model's stand-in (same architecture, random weights): "
                 "no image model is shipped yet")
    run.results["dicom"]["memory"] = [dicom.memory(n) for n in run.settings.dicom_memory_files]


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _has_default(task: str, run: Run | None = None) -> bool:
    """Whether the task's shipped default resolves (never under --models, which measures other folders)."""
    from radedge.errors import ModelNotFoundError

    if run is not None and run.settings.models_dir:
        return False
    try:
        registry.resolve("default", task)
        return True
    except ModelNotFoundError:
        return False


def torch_images_section(run: Run) -> None:
    """The same ViT in PyTorch fp32 over the grid's batch sizes (needs the export extra)."""
    if not _has_torch() or not _has_default(IMAGE_TASK, run):
        run.note("PyTorch ViT rows skipped: " + ("torch is not installed (export extra)" if not _has_torch()
                                                 else "no shipped image model"))
        return
    threads = run.settings.threads or (os.cpu_count() or 1)
    s = run.settings
    run.results["latency"] += fresh(torch_image_latency, s.image_batches, threads, s.warmup, s.iters, s.max_seconds)


def torch_reports_section(run: Run) -> None:
    """The CheXbert-sized BERT-base in PyTorch fp32 on the small end of the grid (it is slow)."""
    if not _has_torch():
        run.note("PyTorch BERT-base rows skipped: torch is not installed (export extra)")
        return
    s = run.settings
    # PyTorch is slow on a CPU: one sequence length (128 when measured), BERT-base at the small batches only.
    seq = [128] if 128 in s.report_seqs else [min(s.report_seqs)]
    threads = s.threads or (os.cpu_count() or 1)
    bert_batches = [b for b in s.report_batches if b <= 8] or [1]
    run.results["latency"] += fresh(torch_bert_latency, bert_batches, seq, threads, 1, min(s.iters, 5),
                                    s.max_seconds)
    if run.student_dir is not None:
        run.results["latency"] += fresh(torch_student_latency, run.student_dir, s.report_batches, seq, threads,
                                        s.warmup, s.iters, s.max_seconds)


def report_peers_section(run: Run) -> None:
    if not _has_default(REPORT_TASK, run):
        run.note("no shipped report model: CSV -> CSV comparison with the CheXbert-sized peer not measured")
        return
    s = run.settings
    threads = s.threads or (os.cpu_count() or 1)
    run.results["end_to_end"] += report_speed_rows(s.csv_reports, threads, s.e2e_repeats)


def image_peers_section(run: Run) -> None:
    if not _has_default(IMAGE_TASK, run):
        run.note("no shipped image model: image peers not measured")
        return
    threads = run.settings.threads or (os.cpu_count() or 1)
    run.results["end_to_end"] += image_speed_rows(16, threads, 3.0 if run.settings.quick else 10.0)


def image_accuracy_section(run: Run) -> None:
    if not _has_default(IMAGE_TASK, run):
        run.note("no shipped image model: image AUCs not measured")
        return
    run.results["accuracy"] += image_accuracy(registry.resolve("default", IMAGE_TASK))


def ratios_section(run: Run) -> None:
    add_ratios(run.results["end_to_end"])


SECTIONS: list[tuple[str, Callable[[Run], None]]] = [
    ("machine", machine_section),
    ("peaks", peaks_section),
    ("references", references_section),
    ("latency-reports", latency_section(REPORT_TASK)),
    ("latency-reports-pytorch", torch_reports_section),
    ("latency-images", latency_section(IMAGE_TASK)),
    ("latency-images-pytorch", torch_images_section),
    ("end-to-end-reports", reports_end_to_end_section),
    ("end-to-end-images", images_end_to_end_section),
    ("peers-reports", report_peers_section),
    ("peers-images", image_peers_section),
    ("accuracy-reports", report_accuracy_section),
    ("accuracy-images", image_accuracy_section),
    ("dicom", dicom_section),
    ("ratios", ratios_section),
    ("roofline", roofline_section),
]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks", __doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: small grids, few iterations, few reports")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="results folder")
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--no-gpu", action="store_true", help="skip GPU rows even when a GPU is present")
    parser.add_argument("--models", default=None, help="measure only the model folders under this folder")
    parser.add_argument("--only", default=None, help="comma-separated section names (default: all)")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else argv
    settings = Settings.for_run(args.quick, threads=args.threads, gpu=not args.no_gpu, models_dir=args.models)
    run = Run(settings, args.out, list(argv))
    only = set(args.only.split(",")) if args.only else None
    for name, fn in SECTIONS:
        if only is None or name in only or name in ("machine",):
            run.section(name, fn)
    run.results["plots"] = [str(p.name) for p in write_plots(run.results, args.out)]
    path = run.save()
    problems = schema.validate(run.results)
    print_tables(run.results)
    for p in problems:
        log(f"schema problem: {p}")
    print(f"\nresults: {path}\nwall time: {run.results['wall_s']:.1f} s "
          f"({run.results['wall_s'] / 60:.1f} min){' [quick]' if settings.quick else ''}")
    return 1 if problems else 0

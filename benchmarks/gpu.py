"""`python -m benchmarks.gpu [--out DIR]`: the whole GPU check of the shipped models, in one run.

For one short session on a machine with an NVIDIA GPU (meant to take minutes; not yet timed on a GPU):

1. check  - a GPU visible (nvidia-smi), TensorRT, cuda-python and onnxruntime's CUDA provider
            importable, models/ and the evaluation data present. Anything missing: exit 2 with one
            line per problem, before any time is spent (`--check` stops here).
2. build  - fp16 and int8 plans of every model folder in models/ (`python -m runtimes.tensorrt build`,
            batch 1..MAX_BATCH), int8 calibrated as benchmarks/parity.py says. An int8 request that
            falls back to fp16 (its accuracy gate failed) is a failed build.
3. tests  - `pytest -m "gpu or tensorrt"`, reusing the plans of step 2.
4. bench  - the harness's own sections (benchmarks/run.py: latency grid and end to end through
            ReportLabeler / ImageScorer) on a GPU grid, onnxruntime CPU, onnxruntime CUDA EP and the
            TensorRT fp16 / int8 plans side by side; plus the host-only rates (tokenization, image
            decoding and preprocessing) that bound the end-to-end figures.
5. parity - for every GPU path: label agreement with the CPU int8 model on the Open-i hold-out and the
            largest per-finding AUC change on the NIH images (bounds: benchmarks/parity.py).
6. report - DIR/gpu.json (every figure, the issue's targets and whether each was met) and the README's
            `gpu-results` block (benchmarks/report/gpu.py); `--readme-from DIR/gpu.json` regenerates that
            block from a saved run.

Exit: 0 every step ran and every parity bound held; 1 a step failed or a bound was missed (gpu.json
and the last lines printed say which); 2 this machine cannot run the check.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .data import DATA, ROOT, rel
from .report.gpu import IMAGE_TASK, REPORT_SEQUENCE, REPORT_TASK, SECTION, render, summarize, write_readme

MAX_BATCH = 256
BUILD_TIMEOUT_S = 300
TESTS_TIMEOUT_S = 300


@dataclass(frozen=True)
class Grid:
    """What the bench step measures (a benchmarks.run.Settings subset)."""

    report_batches: tuple[int, ...] = (1, 8, 32, 128, 256)
    image_batches: tuple[int, ...] = (1, 8, 32, 128, 256)
    iters: int = 30
    warmup: int = 3
    max_seconds: float = 2.0
    e2e_reports: int | None = None  # every Open-i dev report
    e2e_images: int = 10**6         # every NIH PNG
    e2e_repeats: int = 2

    @classmethod
    def quick(cls) -> "Grid":
        return cls(report_batches=(1, 32), image_batches=(1, 32), iters=5, warmup=1, max_seconds=0.5,
                   e2e_reports=256, e2e_images=64, e2e_repeats=1)


class StepFailed(Exception):
    """A step that cannot give what the next steps need; its message is the one line printed."""


def log(text: str) -> None:
    print(f"[gpu] {text}", file=sys.stderr, flush=True)


def shipped_models(root: Path = ROOT) -> list[Path]:
    return sorted(p.parent for p in (root / "models").glob("*/manifest.json"))


# ---- 1. check ----------------------------------------------------------------------------------
def check(root: Path = ROOT) -> tuple[dict[str, Any], list[str]]:
    """(what was found, one line per reason this machine cannot run the GPU check)."""
    from radedge.bench import gpus

    found: dict[str, Any] = {"gpus": gpus(), "python": sys.version.split()[0]}
    problems = []
    if not found["gpus"]:
        problems.append("no NVIDIA GPU: nvidia-smi is missing or lists no GPU")
    try:
        import tensorrt

        found["tensorrt"] = tensorrt.__version__
    except ImportError as exc:
        problems.append(f"TensorRT is not importable ({exc}): pip install 'radedge[gpu]' "
                        "(tensorrt-cu12 or -cu13, matching the driver's CUDA)")
    try:
        from radedge.backends.cuda import import_cudart

        import_cudart()
    except Exception as exc:  # DeviceUnavailableError names the extra to install
        problems.append(f"cuda-python is not importable: {exc}")
    import onnxruntime as ort

    found["onnxruntime"] = ort.__version__
    found["onnxruntime_providers"] = ort.get_available_providers()
    if "CUDAExecutionProvider" not in found["onnxruntime_providers"]:
        problems.append(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider: "
                        "pip uninstall -y onnxruntime && pip install onnxruntime-gpu")
    found["models"] = [p.name for p in shipped_models(root)]
    if not found["models"]:
        problems.append(f"no model folder (with a manifest.json) in {root / 'models'}")
    for need in (DATA / "openi" / "reports.jsonl", DATA / "images" / "nih" / "labels.csv",
                 DATA / "images" / "covid-cases"):
        if not need.exists():
            problems.append(f"{need} not found (shared/data beside the checkout, or set RADEDGE_SHARED)")
    return found, problems


# ---- 2. build ----------------------------------------------------------------------------------
def build_command(folder: Path, precision: str, cache: Path, calib: Path | None) -> list[str]:
    command = [sys.executable, "-m", "runtimes.tensorrt", "build", str(folder), "--precision", precision,
               "--max-batch", str(MAX_BATCH), "--cache-dir", str(cache), "--json"]
    return command + (["--calib", str(calib)] if calib else [])


def build_plans(models: Sequence[Path], engines: Path, calib: dict[str, Path]) -> list[dict[str, Any]]:
    """fp16 and int8 plans of each model into engines/<precision>/ (the GPU tests' layout) and all of
    them into engines/all/ (the benchmark's RADEDGE_ENGINE_DIR, where precision is asked for by name)."""
    from radedge.manifest import Manifest

    rows = []
    for folder in models:
        task = Manifest.read(folder).task
        for precision in ("fp16", "int8"):
            cache = engines / precision
            start = time.perf_counter()
            command = build_command(folder, precision, cache, calib[task] if precision == "int8" else None)
            done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=ROOT)
            row = {"model": folder.name, "requested": precision, "seconds": round(time.perf_counter() - start, 1)}
            if done.returncode != 0:
                row.update(ok=False, error=(done.stderr.strip().splitlines() or ["(no message)"])[-1])
            else:
                meta = json.loads(done.stdout)
                row.update(ok=meta.get("precision") == precision, precision=meta.get("precision"),
                           plan=meta.get("plan"), gate=meta.get("gate"), notes=meta.get("notes", []))
                if not row["ok"]:
                    row["error"] = f"asked for {precision}, built {meta.get('precision')}: " + "; ".join(row["notes"])
            log(f"build {folder.name} {precision}: {'ok' if row['ok'] else row['error']} ({row['seconds']} s)")
            rows.append(row)
    link_plans(engines)
    return rows


def link_plans(engines: Path) -> Path:
    """engines/all/ holding every plan (and sidecar) of engines/fp16/ and engines/int8/, as hard links."""
    everything = engines / "all"
    everything.mkdir(parents=True, exist_ok=True)
    for precision in ("fp16", "int8"):
        for path in sorted((engines / precision).glob("*")):
            target = everything / path.name
            if path.is_file() and not target.exists():
                os.link(path, target)
    return everything


# ---- 3. tests ----------------------------------------------------------------------------------
def run_tests(engines: Path) -> dict[str, Any]:
    """`pytest -m "gpu or tensorrt"` with the plans of step 2; its summary line and the figures it printed."""
    from .parity import ENGINES_VAR

    env = dict(os.environ, **{ENGINES_VAR: str(engines)})
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-m", "gpu or tensorrt", "tests"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=TESTS_TIMEOUT_S, cwd=ROOT, env=env)
    lines = done.stdout.strip().splitlines()
    return {"command": " ".join(["python", *command[1:]]), "ok": done.returncode == 0, "exit": done.returncode,
            "seconds": round(time.perf_counter() - start, 1), "summary": lines[-1] if lines else done.stderr.strip(),
            "figures": [line.strip() for line in lines if "agreement" in line or "AUC difference" in line]}


# ---- 4. bench ----------------------------------------------------------------------------------
def bench(out: Path, grid: Grid, argv: Sequence[str]) -> Any:
    """The harness's latency and end-to-end sections on `grid`; returns the benchmarks.run.Run."""
    from . import run as harness

    class Settings(harness.Settings):
        def variants(self, task: str) -> list:
            # the shipped graph on each engine; the onnxruntime TensorRT EP builds its own engines (minutes)
            return [v for v in super().variants(task) if v.shipped and v.engine != "ort-trt"]

    settings = Settings(report_batches=grid.report_batches, report_seqs=(REPORT_SEQUENCE,),
                        image_batches=grid.image_batches, iters=grid.iters, warmup=grid.warmup,
                        max_seconds=grid.max_seconds, e2e_reports=grid.e2e_reports, e2e_repeats=grid.e2e_repeats,
                        e2e_images=grid.e2e_images, quick=grid == Grid.quick())
    run = harness.Run(settings, out / "bench", ["(benchmarks.gpu)", *argv])
    for name, section in [("machine", harness.machine_section),
                          ("latency-reports", harness.latency_section(REPORT_TASK)),
                          ("latency-images", harness.latency_section(IMAGE_TASK)),
                          ("end-to-end-reports", harness.reports_end_to_end_section),
                          ("end-to-end-images", harness.images_end_to_end_section)]:
        run.section(name, section)
    run.results["host"] = host_rates(grid)
    run.save()
    return run


def host_rates(grid: Grid) -> list[dict[str, Any]]:
    """Items per second of the host-side work alone: report tokenization into windows, image decoding
    and preprocessing (one process, as ReportLabeler and ImageScorer do it)."""
    from radedge import registry
    from radedge.bench import measure
    from radedge.images.preprocess import check_spec
    from radedge.images.scorer import prepare_input
    from radedge.manifest import Manifest
    from radedge.reports.windows import ReportWindows

    from .data import openi_reports

    rows = []
    for folder in shipped_models():
        manifest = Manifest.read(folder)
        if manifest.task == REPORT_TASK:
            windows = ReportWindows.from_model_dir(folder, manifest)
            texts = [r["text"] for r in openi_reports(grid.e2e_reports)]
            latency = measure(lambda: windows.encode(texts), items_per_call=len(texts), warmup=1, iters=3)
            what = "tokenization into windows (ReportWindows.encode)"
        else:
            spec = check_spec(manifest.preprocess or {})
            paths = sorted((DATA / "images" / "nih").rglob("*.png"))[: grid.e2e_images]
            latency = measure(lambda: [prepare_input(p, spec) for p in paths], items_per_call=len(paths),
                              warmup=0, iters=2)
            what = "PNG decoding and preprocessing (prepare_input)"
        rows.append({"model": folder.name, "task": manifest.task, "what": what, "items": latency.items_per_call,
                     "throughput_per_s": round(latency.throughput, 1),
                     "default": registry.DEFAULTS.get(manifest.task) == folder.name})
    return rows


# ---- 5. parity ---------------------------------------------------------------------------------
def report_parity(predictions: dict[str, Any], report_ids: Sequence[str],
                  rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each GPU labeler's labels against its model's CPU int8 labels, on the Open-i hold-out reports."""
    import numpy as np

    from . import parity
    from .data import holdout_ids

    held = holdout_ids(list(report_ids))
    keep = np.array([i in held for i in report_ids])
    out = []
    for model in sorted({r["name"] for r in rows if r.get("device") == "cpu" and r.get("shipped")}):
        cpu = next(r["label"] for r in rows if r["name"] == model and r.get("device") == "cpu" and r.get("shipped"))
        for r in rows:
            if r["name"] == model and r.get("device") == "cuda" and r["label"] in predictions:
                agreement = parity.label_agreement(predictions[cpu][keep], predictions[r["label"]][keep])
                out.append({"task": REPORT_TASK, "model": model, "label": r["label"], "engine": r["engine"],
                            "precision": r["precision"], "reference": cpu, "items": int(keep.sum()),
                            "label_agreement": round(agreement, 5), "bound": parity.LABEL_AGREEMENT,
                            "ok": agreement >= parity.LABEL_AGREEMENT})
    return out


def image_parity(variants: Sequence[Any]) -> list[dict[str, Any]]:
    """Each GPU path of each image model against its CPU int8 graph: largest per-finding AUC change on NIH."""
    import numpy as np

    from radedge.images.preprocess import check_spec
    from radedge.images.scorer import ImageScorer, prepare_input
    from radedge.manifest import Manifest
    from radedge.registry import LoadedModel

    from . import parity

    paths, truth = parity.nih()
    out = []
    for folder in sorted({v.folder for v in variants}):
        manifest = Manifest.read(folder)
        prepared = [prepare_input(p, check_spec(manifest.preprocess or {})) for p in paths]
        keep = [k for k, p in enumerate(prepared) if p.status == "scored"]
        pixels = np.stack([prepared[k].pixels for k in keep])

        def probs(variant: Any) -> np.ndarray:
            backend, _ = variant.open()
            return ImageScorer(LoadedModel(folder, manifest, backend), batch_size=32).infer(pixels)

        mine = [v for v in variants if v.folder == folder]
        cpu = next(v for v in mine if v.device == "cpu")
        reference = probs(cpu)
        for variant in (v for v in mine if v.device == "cuda"):
            worst, findings = parity.worst_auc_gap(reference, probs(variant), truth[keep])
            out.append({"task": IMAGE_TASK, "model": folder.name, "label": variant.label, "engine": variant.engine,
                        "precision": variant.precision, "reference": cpu.label, "items": len(keep),
                        "findings": findings, "worst_auc_change": round(worst, 5), "bound": parity.AUC_TOLERANCE,
                        "ok": worst <= parity.AUC_TOLERANCE})
    return out


# ---- the run -----------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "gpu-results", help="results folder (gpu.json, bench/, engines/)")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="README whose gpu-results block is rewritten")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    parser.add_argument("--check", action="store_true", help="step 1 only: can this machine run the GPU check?")
    parser.add_argument("--quick", action="store_true", help="smoke run: small grid, 256 reports, 64 images")
    parser.add_argument("--skip-tests", action="store_true", help="leave out step 3 (the pytest run)")
    parser.add_argument("--readme-from", type=Path, metavar="GPU_JSON", help="only rewrite the README block from a saved gpu.json")
    return parser.parse_args(argv)


def _timed(steps: dict[str, Any], name: str, fn: Callable[[], Any]) -> Any:
    log(f"== {name}")
    start = time.perf_counter()
    try:
        return fn()
    finally:
        steps[name] = {"seconds": round(time.perf_counter() - start, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    if args.readme_from:
        write_readme(json.loads(args.readme_from.read_text(encoding="utf-8")), args.readme_from, args.readme)
        log(f"rewrote the {SECTION} block of {args.readme}")
        return 0
    steps: dict[str, Any] = {}
    found, problems = _timed(steps, "check", check)
    for problem in problems:
        print(f"benchmarks.gpu: cannot run here: {problem}", file=sys.stderr)
    if problems or args.check:
        if not problems:
            log(f"ready: {found['gpus'][0]['name']}, TensorRT {found['tensorrt']}, models {', '.join(found['models'])}")
        return 2 if problems else 0
    from . import parity

    out = args.out.resolve()
    engines = out / "engines"
    grid = Grid.quick() if args.quick else Grid()
    try:
        calib = {REPORT_TASK: parity.report_calibration(out / "calib-reports"), IMAGE_TASK: parity.IMAGE_CALIBRATION}
        builds = _timed(steps, "build", lambda: build_plans(shipped_models(), engines, calib))
        if not any(b["ok"] for b in builds):
            raise StepFailed("no plan was built: " + "; ".join(b.get("error", "") for b in builds))
        tests = None if args.skip_tests else _timed(steps, "tests", lambda: run_tests(engines))
        os.environ["RADEDGE_ENGINE_DIR"] = str(engines / "all")  # the benchmark's plans (children inherit it)
        run = _timed(steps, "bench", lambda: bench(out, grid, argv))

        def check_parity() -> list[dict[str, Any]]:
            rows = report_parity(run.predictions, run.report_ids,
                                 [r for r in run.results["end_to_end"] if r["task"] == REPORT_TASK])
            images = [v for v in run.settings.variants(IMAGE_TASK)]
            return rows + (image_parity(images) if images else [])

        parity_rows = _timed(steps, "parity", check_parity)
    except (StepFailed, OSError, subprocess.TimeoutExpired) as exc:
        print(f"benchmarks.gpu: stopped: {exc}", file=sys.stderr)
        return 1
    summary = summarize(found, builds, tests, run.results, parity_rows, steps, argv)
    json_path = out / "gpu.json"
    json_path.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    if not args.no_readme:
        write_readme(summary, json_path, args.readme)
        log(f"rewrote the {SECTION} block of {args.readme}")
    print(render(summary, json_path, Path.cwd()))
    log(f"results: {rel(json_path)}; {'all passed' if summary['ok'] else 'NOT all passed'}; steps: "
        + ", ".join(f"{k} {v['seconds']} s" for k, v in steps.items()))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

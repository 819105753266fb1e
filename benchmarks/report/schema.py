"""The results file of `python -m benchmarks` (results.json): its version and a validator.

Top level (format "radedge-benchmarks", version 1):
- `format`, `version`, `created` (UTC ISO time), `command` (argv), `quick` (bool), `wall_s` (float),
  `git_commit`, `settings` (batch sizes, sequence lengths, iterations used);
- `machine`: radedge.bench.machine_info() (CPU model and flags, CPUs, memory, versions, providers, GPUs);
- `import_time`: {module, median_s, repeats, samples_s} for `import radedge` in a fresh interpreter;
- `peaks`: {fp32_gflops (numpy), ort_fp32_gflops, int8_gops (onnxruntime MatMulInteger), method};
- `models`: one record per measured variant: model, task, precision, engine, onnx, shipped, load_s,
  load_peak_rss_mb, model_bytes, mean_tokens (reports), flops_per_item {sequence or image_size: FLOPs};
- `latency`: rows of the graph-only grid (radedge.bench.bench_backend: task, model, backend, device,
  precision, batch, sequence, image_size, kind, p50_ms, p95_ms, p99_ms, mean_ms, min_ms, calls, warmup,
  items_per_call, throughput_per_s, samples_ms, rss_before_mb, peak_rss_mb) plus engine, shipped,
  flops_per_item, achieved_gops and fraction_of_peak where a CPU peak applies;
- `end_to_end`: rows {task, name, role ("default" | "alternative" | "peer"), engine, precision, what,
  items, seconds, throughput_per_s, ratio_vs_default, source}: texts/pixels in, labels out;
- `accuracy`: rows {task, model, split, n, metric, value, per_finding, source};
- `dicom`: what benchmarks/dicom.py's throughput() and memory() returned ({} if absent);
- `roofline`: rows {model, precision, engine, what, flops_per_item, throughput_per_s, achieved_gops,
  peak_gops, fraction_of_peak};
- `notes`: strings (what was not measured and why); `errors`: [{section, error}]; `sections_s`: seconds
  per section.
"""
from __future__ import annotations

from typing import Any

FORMAT = "radedge-benchmarks"
VERSION = 1

TOP_LEVEL = {
    "format": str, "version": int, "created": str, "command": list, "quick": bool, "wall_s": (int, float),
    "settings": dict, "machine": dict, "import_time": dict, "peaks": dict, "models": list, "latency": list,
    "end_to_end": list, "accuracy": list, "dicom": dict, "roofline": list, "notes": list, "errors": list,
    "sections_s": dict,
}
LATENCY_ROW = {"task": str, "model": str, "engine": str, "precision": str, "batch": int,
               "p50_ms": (int, float), "p95_ms": (int, float), "p99_ms": (int, float),
               "throughput_per_s": (int, float), "peak_rss_mb": (int, float), "samples_ms": list}
END_TO_END_ROW = {"task": str, "name": str, "role": str, "items": int, "seconds": (int, float),
                  "throughput_per_s": (int, float)}
ACCURACY_ROW = {"task": str, "model": str, "split": str, "metric": str, "value": (int, float)}
MACHINE = {"cpu_model": str, "cpu_flags": list, "usable_cpus": int, "gpus": list}


def _check(obj: dict[str, Any], spec: dict[str, Any], where: str) -> list[str]:
    problems = []
    for key, kind in spec.items():
        if key not in obj:
            problems.append(f"{where}: missing {key!r}")
        elif not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
            problems.append(f"{where}: {key!r} is {type(obj[key]).__name__}, expected {kind}")
    return problems


def validate(results: dict[str, Any]) -> list[str]:
    """Every way `results` departs from the schema above (empty list: valid)."""
    problems = _check(results, TOP_LEVEL, "results")
    if problems:
        return problems
    if results["format"] != FORMAT or results["version"] != VERSION:
        problems.append(f"results: format/version {results['format']}/{results['version']}, expected {FORMAT}/{VERSION}")
    problems += _check(results["machine"], MACHINE, "machine")
    for i, row in enumerate(results["latency"]):
        problems += _check(row, LATENCY_ROW, f"latency[{i}]")
    for i, row in enumerate(results["end_to_end"]):
        problems += _check(row, END_TO_END_ROW, f"end_to_end[{i}]")
    for i, row in enumerate(results["accuracy"]):
        problems += _check(row, ACCURACY_ROW, f"accuracy[{i}]")
    return problems

"""The DICOM figures, from the DICOM helper's own benchmarks (benchmarks/dicom_throughput.py,
benchmarks/dicom_memory.py), summarised into rows for the tables and the README."""
from __future__ import annotations

import importlib
import statistics
from typing import Any


def throughput(quick: bool, threads: int | None = None) -> dict[str, Any]:
    """dicom_throughput.run() plus one summary row per transfer-syntax group."""
    module = importlib.import_module("benchmarks.dicom_throughput")
    raw = module.run("default", repeats=1 if quick else 3, copies=1 if quick else 4, workers=2, threads=threads)
    infer = raw["inference"][-1]
    rows = []
    for group, stages in raw["stages"].items():
        prepare = statistics.mean(s["prepare_s"] for s in stages)
        decode = statistics.mean(s["decode_s"] for s in stages)
        pipe = raw["pipeline"].get(group, {})
        rows.append({
            "group": group, "files": len(stages),
            "decode_ms": round(decode * 1e3, 1), "prepare_ms": round(prepare * 1e3, 1),
            "inference_ms": round(infer["infer_s_per_image"] * 1e3, 1),
            "inference_share": round(infer["infer_s_per_image"] / (prepare + infer["infer_s_per_image"]), 3),
            "pipeline_images_per_s": round(pipe.get("images_per_s", 0.0), 2),
            "pipeline_workers": pipe.get("workers"),
        })
    from .data import ROOT

    return {"model": str(raw["model"]).replace(str(ROOT) + "/", ""), "rows": rows, "throughput_raw": raw,
            "source": "benchmarks/dicom_throughput.py:run"}


def memory(files: int, workers: int = 2) -> dict[str, Any]:
    """Peak RSS of `radedge score-dicoms` over a folder of `files` small DICOM files
    (dicom_memory.make_folder / run_cli: a subprocess sampled with psutil)."""
    import tempfile
    from pathlib import Path

    module = importlib.import_module("benchmarks.dicom_memory")
    throughput_module = importlib.import_module("benchmarks.dicom_throughput")
    model, _ = throughput_module.model_path("default")
    folder = module.make_folder(files)
    with tempfile.TemporaryDirectory(prefix="radedge-bench-mem-") as tmp:
        r = module.run_cli(folder, Path(tmp) / "out.csv", model, workers)
    return {"files": files, "workers": workers, "seconds": round(r["seconds"], 1),
            "files_per_s": round(files / r["seconds"], 1), "peak_main_mb": round(r["peak_main_mb"], 1),
            "peak_tree_mb": round(r["peak_tree_mb"], 1), "tree_mb_first_half_max": round(r["tree_mb_first_half_max"], 1),
            "tree_mb_second_half_max": round(r["tree_mb_second_half_max"], 1), "returncode": r["returncode"],
            "summary": r["summary"], "source": "benchmarks/dicom_memory.py:run_cli"}

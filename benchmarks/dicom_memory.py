"""Peak memory of `radedge score-dicoms` against folder size: it must not grow with the folder.

    python -m benchmarks.dicom_memory [--sizes 1000,10000] [--model default|standin|PATH] [--workers 2]

Builds folders of N small distinct DICOM files (64 x 64 DX, each its own SOP Instance UID, 100 per
sub-folder) under a temporary directory (kept in /tmp/radedge-dicom-mem/ for re-runs), runs the CLI
on each in a subprocess and samples with psutil every 20 ms the resident memory of the main process
and of the whole process tree (main + decoding workers). What legitimately grows with N is the
resume index (the set of paths and SOP UIDs already recorded: about 200 bytes per file).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

CACHE = Path(tempfile.gettempdir()) / "radedge-dicom-mem"


def make_folder(n: int, root: Path | None = None) -> Path:
    """A folder of `n` small distinct DX chest files (reused when already complete)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    root = root or CACHE / f"n{n}"
    marker = root / ".complete"
    if marker.exists():
        return root
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "DX", "CHEST", "PA"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    rng = np.random.default_rng(0)
    ds.set_pixel_data(rng.integers(0, 4096, size=(64, 64), dtype=np.uint16), "MONOCHROME2", 12)
    for i in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        path = root / f"S{i // 100:04d}" / f"IM{i:06d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    marker.touch()  # a dot-file: the walk sees it and records it as "not a DICOM file"
    return root


def run_cli(folder: Path, out: Path, model: Path, workers: int, interval_s: float = 0.02) -> dict[str, Any]:
    """Run score-dicoms in a subprocess; peak RSS (MiB) of the main process and of its tree."""
    import psutil

    cmd = [sys.executable, "-m", "radedge.cli", "score-dicoms", str(folder), "-o", str(out), "--model", str(model),
           "--workers", str(workers), "--quiet", "--overwrite"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    main = psutil.Process(proc.pid)
    peak_main = peak_tree = 0.0
    samples: list[tuple[float, float]] = []
    while proc.poll() is None:
        try:
            rss_main = main.memory_info().rss
            rss_tree = rss_main + sum(c.memory_info().rss for c in main.children(recursive=True))
        except psutil.Error:
            continue
        peak_main, peak_tree = max(peak_main, rss_main), max(peak_tree, rss_tree)
        samples.append((time.perf_counter() - t0, rss_tree / 2**20))
        time.sleep(interval_s)
    stderr = proc.stderr.read() if proc.stderr else ""
    seconds = time.perf_counter() - t0
    # RSS in the second half of the run vs the first: flat memory means no drift while files stream by
    half = [m for t, m in samples if t > seconds / 2] or [0.0]
    first = [m for t, m in samples if t <= seconds / 2] or [0.0]
    return {"returncode": proc.returncode, "seconds": seconds, "peak_main_mb": peak_main / 2**20,
            "peak_tree_mb": peak_tree / 2**20, "tree_mb_first_half_max": max(first),
            "tree_mb_second_half_max": max(half), "summary": stderr.strip().splitlines()[-1] if stderr else ""}


def main(argv: Sequence[str] | None = None) -> None:
    from .dicom_throughput import model_path

    ap = argparse.ArgumentParser(prog="python -m benchmarks.dicom_memory", description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000,10000", help="folder sizes, comma-separated")
    ap.add_argument("--model", default="default", help="default | standin | model name or folder")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)
    model, label = model_path(args.model)
    print(f"model: {label}\nworkers: {args.workers}, cpus: {os.cpu_count()}")
    print(f"{'files':>7s} {'seconds':>8s} {'files/s':>8s} {'peak main MiB':>14s} {'peak tree MiB':>14s} "
          f"{'tree 1st half':>14s} {'tree 2nd half':>14s}  summary")
    with tempfile.TemporaryDirectory(prefix="radedge-mem-out-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            folder = make_folder(n)
            r = run_cli(folder, Path(tmp) / f"out{n}.csv", model, args.workers)
            print(f"{n:7d} {r['seconds']:8.1f} {n / r['seconds']:8.1f} {r['peak_main_mb']:14.1f} "
                  f"{r['peak_tree_mb']:14.1f} {r['tree_mb_first_half_max']:14.1f} "
                  f"{r['tree_mb_second_half_max']:14.1f}  rc={r['returncode']} {r['summary']}", flush=True)


if __name__ == "__main__":
    main()

"""DICOM scoring: where the time goes, how memory behaves, and whether every corpus file is handled right.

    python -m benchmarks.dicom throughput [--model default|standin|PATH] [--repeats 3] [--json OUT.json]
    python -m benchmarks.dicom memory [--sizes 1000,10000] [--model default|standin|PATH] [--workers 2]
    python -m benchmarks.dicom corpus [--model default|standin|PATH] [--workers 2]

throughput: the full-size chest radiographs of shared/data/dicom, JPEG 2000 (lossless and lossy,
2840 x 2972, and WG04 RG1 1955 x 1841) and uncompressed (the same 2840 x 2972 image written back as
Explicit VR LE here, the 2373 x 2373 8-bit DX, and WG04 RG1_UNCR). Each stage is timed separately
(`time_stages`, `time_inference`), then the whole pipeline (`time_pipeline`: what `radedge score-dicoms`
runs, with worker processes) over a folder of copies (each with its own SOP Instance UID), to show
where the time goes and that inference is not the bottleneck.

memory: peak memory of `radedge score-dicoms` against folder size (it must not grow with the folder).
Folders of N small distinct DICOM files (64 x 64 DX, each its own SOP Instance UID, 100 per sub-folder)
are built under a temporary directory (kept in /tmp/radedge-dicom-mem/ for re-runs); the CLI runs on
each in a subprocess sampled with psutil every 20 ms (main process and the whole process tree). What
legitimately grows with N is the resume index (paths and SOP UIDs already recorded: about 200 bytes
per file).

corpus: every file of shared/data/dicom scored as `radedge score-dicoms` does, printed next to the
handling its MANIFEST.csv expects (score / skip: reason / error: reason), then the count of matches.
A skip matches when the status is "skipped" and the manifest's reason (up to its first parenthesis or
semicolon, e.g. "body part EXTREMITY") appears in the recorded reason. Files that are not in the
manifest (its README.md and MANIFEST.csv) must be skipped as "not a DICOM file".

Model: `default` is the shipped models/image-vit; until it exists (or with `--model standin`) a
stand-in with the same architecture and random weights is exported with torch into
runs/bench_models/ (fp32; timing only, never for scores).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from radedge.images.dicom import check_scorable, decode_pixels, grey_intensity, read_dataset
from radedge.images.preprocess import preprocess
from radedge.images.scorer import ImageScorer

from .data import DATA as SHARED_DATA
from .data import ROOT

DATA = SHARED_DATA / "dicom"
STANDIN_DIR = ROOT / "runs" / "bench_models" / "image-vit-standin"
J2K_FILES = ["pacs_export/STUDY05/SERIES01/IM0001.dcm", "pacs_export/STUDY05/SERIES02/IM0001.dcm",
             "wg04/RG1_J2KR.dcm", "wg04/RG1_J2KI.dcm"]
UNCOMPRESSED_FILES = ["pacs_export/STUDY06/SERIES01/IM0001.dcm", "wg04/RG1_UNCR.dcm"]
MEMORY_CACHE = Path(tempfile.gettempdir()) / "radedge-dicom-mem"
STATUS_OF = {"score": "scored", "skip": "skipped", "error": "error"}


# ---- the model ---------------------------------------------------------------------------------------
def standin_model(folder: Path = STANDIN_DIR) -> Path:
    """The image model's architecture (export.images.model, default ViTSpec) with random weights,
    exported to ONNX once and cached; needs torch (the export extra)."""
    if (folder / "manifest.json").is_file():
        return folder
    import torch

    from export.images.onnx import export_onnx
    from export.images.model import ViTSpec, build_model
    from export.images.train import preprocess_spec
    from radedge.labels import FINDINGS
    from radedge.manifest import Manifest, TensorSpec, file_hashes

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    spec = ViTSpec()
    model, _ = build_model(spec, pretrained=False)
    export_onnx(model, folder / "model.onnx")
    Manifest(name=folder.name, task="image-findings", files=file_hashes(folder, ["model.onnx"]),
             inputs=[TensorSpec("pixels", "float32", ("batch", 3, spec.size, spec.size))],
             outputs=[TensorSpec("probs", "float32", ("batch", 14))],
             preprocess=preprocess_spec(spec), thresholds={f: 0.5 for f in FINDINGS},
             provenance={"made_by": "benchmarks/dicom.py (random weights, timing only)",
                         "spec": spec.to_dict()}).write(folder)
    return folder


def model_path(model: str = "default") -> tuple[Path, str]:
    """(folder, label) for `model`; "default" falls back to the stand-in when no image model is shipped."""
    from radedge import registry
    from radedge.errors import ModelNotFoundError

    if model != "standin":
        try:
            path = registry.resolve(model, "image-findings")
            return path, str(path)
        except ModelNotFoundError:
            if model != "default":
                raise
    path = standin_model()
    return path, f"{path} (stand-in, random weights)"


def load_scorer(model: str = "default", threads: int | None = None, batch_size: int = 8) -> tuple[ImageScorer, str]:
    """The scorer for `model` (see model_path) and its label."""
    path, label = model_path(model)
    return ImageScorer.load(str(path), threads=threads, batch_size=batch_size), label


# ---- stage timings --------------------------------------------------------------------------------------
def _best(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """Result and the fastest wall seconds of `repeats` calls (best-of: the machine is shared, and
    other processes only ever add time)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, min(times)


def time_stages(path: Path, spec: dict[str, Any], repeats: int = 3) -> dict[str, Any]:
    """Seconds per stage for one file: read (header + pixel bytes), decode, LUTs, preprocess."""
    ds, read_s = _best(lambda: read_dataset(path), repeats)
    check_scorable(ds, None)
    stored, decode_s = _best(lambda: decode_pixels(read_dataset(path)), repeats)
    (image, _), lut_s = _best(lambda: grey_intensity(ds, stored, bool(spec.get("voi"))), repeats)
    _, pre_s = _best(lambda: preprocess(image, spec), repeats)
    return {"file": str(path), "transfer_syntax": ds.file_meta.TransferSyntaxUID.name,
            "shape": list(stored.shape), "read_s": read_s, "decode_s": max(decode_s - read_s, 0.0),
            "lut_s": lut_s, "preprocess_s": pre_s, "prepare_s": max(decode_s, read_s) + lut_s + pre_s}


def time_inference(scorer: ImageScorer, batch_size: int = 8, repeats: int = 5) -> dict[str, Any]:
    """Seconds per image of the model alone at `batch_size` (synthetic preprocessed pixels)."""
    size, channels = scorer.spec["size"], scorer.spec["channels"]
    pixels = np.random.default_rng(0).standard_normal((batch_size, channels, size, size)).astype(np.float32)
    scorer.infer(pixels)  # warm-up
    _, seconds = _best(lambda: scorer.infer(pixels), repeats)
    return {"batch_size": batch_size, "infer_s_per_image": seconds / batch_size, "images_per_s": batch_size / seconds}


def time_pipeline(scorer: ImageScorer, files: Sequence[Path], copies: int, workers: int) -> dict[str, Any]:
    """End to end (score_folder, CSV output) over a temporary folder holding `copies` copies of each
    file, each with its own SOP Instance UID (pixel data untouched) so that every copy is scored."""
    import pydicom
    from pydicom.uid import generate_uid

    from radedge.pipelines.dicoms import CSV_COLUMNS, score_into
    from radedge.io.records import RecordWriter

    with tempfile.TemporaryDirectory(prefix="radedge-bench-") as tmp:
        root = Path(tmp) / "export"
        for j, f in enumerate(files):
            ds = pydicom.dcmread(f)
            for i in range(copies):
                ds.SOPInstanceUID = generate_uid()
                target = root / f"c{i:03d}" / f"f{j}.dcm"
                target.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(target, enforce_file_format=True)
        ticks: list[float] = []  # when each file's result reached the main process
        with RecordWriter(Path(tmp) / "out.csv", CSV_COLUMNS, resume=False) as writer:
            t0 = time.perf_counter()
            summary = score_into(scorer, root, writer, workers=workers,
                                 progress=lambda _: ticks.append(time.perf_counter()))
            seconds = time.perf_counter() - t0
    n = copies * len(files)
    # steady state: from the first file's arrival (worker start-up and first decode excluded) to the end
    steady = (n - 1) / max(t0 + seconds - ticks[0], 1e-9) if n > 1 else n / seconds
    return {"files": n, "scored": summary.scored, "workers": workers, "seconds": seconds, "images_per_s": n / seconds,
            "first_result_s": ticks[0] - t0, "steady_images_per_s": steady}


def decompressed_copy(src: Path, dst: Path) -> Path:
    """The same image written back uncompressed (Explicit VR LE): same pixels, no codec."""
    import pydicom

    ds = pydicom.dcmread(src)
    ds.decompress()
    ds.save_as(dst, enforce_file_format=True)
    return dst


# ---- throughput report ------------------------------------------------------------------------------
def stage_report(model: str = "default", repeats: int = 3, copies: int = 6, workers: int = 2,
                 threads: int | None = None) -> dict[str, Any]:
    """Stage timings per file, inference alone, and the whole pipeline, per transfer-syntax group."""
    scorer, model_label = load_scorer(model, threads=threads)
    spec = scorer.spec
    out: dict[str, Any] = {"model": model_label, "preprocess": spec, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="radedge-bench-") as tmp:
        big_uncompressed = decompressed_copy(DATA / J2K_FILES[0], Path(tmp) / "STUDY05_uncompressed.dcm")
        groups = {"jpeg2000": [DATA / f for f in J2K_FILES],
                  "uncompressed": [big_uncompressed] + [DATA / f for f in UNCOMPRESSED_FILES]}
        out["stages"] = {g: [time_stages(p, spec, repeats) for p in files] for g, files in groups.items()}
        out["inference"] = [time_inference(scorer, b) for b in (1, 8)]
        out["pipeline"] = {g: time_pipeline(scorer, files, copies, workers) for g, files in groups.items()}
    return out


def format_report(r: dict[str, Any]) -> str:
    lines = [f"model: {r['model']}", f"preprocess: {r['preprocess']}", f"cpus: {r['cpus']}", "",
             f"{'group':13s} {'file':45s} {'shape':>11s} {'read':>7s} {'decode':>7s} {'LUTs':>7s} "
             f"{'preproc':>7s} {'prepare':>8s}  (ms per image)"]
    for group, rows in r["stages"].items():
        for s in rows:
            name = Path(s["file"]).name if "uncompressed" in s["file"] else "/".join(Path(s["file"]).parts[-3:])
            shape = "x".join(str(v) for v in s["shape"])
            lines.append(f"{group:13s} {name[:45]:45s} {shape:>11s} " + " ".join(
                f"{s[k] * 1e3:7.1f}" for k in ("read_s", "decode_s", "lut_s", "preprocess_s")) +
                f" {s['prepare_s'] * 1e3:8.1f}")
    lines.append("")
    for inf in r["inference"]:
        lines.append(f"inference alone, batch {inf['batch_size']}: {inf['infer_s_per_image'] * 1e3:.1f} ms/image "
                     f"({inf['images_per_s']:.1f} images/s)")
    for group, rows in r["stages"].items():
        prep = statistics.mean(s["prepare_s"] for s in rows)
        infer = r["inference"][-1]["infer_s_per_image"]
        lines.append(f"{group}: prepare (read+decode+LUTs+preprocess) {prep * 1e3:.1f} ms/image vs inference "
                     f"{infer * 1e3:.1f} ms/image -> inference is {infer / (prep + infer):.0%} of the serial time")
    lines.append("")
    for group, p in r["pipeline"].items():
        lines.append(f"pipeline {group}: {p['files']} files, {p['workers']} workers: {p['seconds']:.1f} s, "
                     f"{p['images_per_s']:.2f} images/s end to end (score_folder); after the first result "
                     f"({p['first_result_s']:.1f} s: worker start-up + first decode): "
                     f"{p['steady_images_per_s']:.2f} images/s")
    return "\n".join(lines)


# ---- memory against folder size ---------------------------------------------------------------------
def make_folder(n: int, root: Path | None = None) -> Path:
    """A folder of `n` small distinct DX chest files (reused when already complete)."""
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

    root = root or MEMORY_CACHE / f"n{n}"
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


def score_dicoms_memory(folder: Path, out: Path, model: Path, workers: int, interval_s: float = 0.02) -> dict[str, Any]:
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


# ---- the corpus, file by file -----------------------------------------------------------------------
def read_manifest(root: Path = DATA) -> dict[str, dict[str, str]]:
    with open(root / "MANIFEST.csv", newline="") as fh:
        return {row["path"]: row for row in csv.DictReader(fh)}


def expected_matches(expected: str, status: str, reason: str) -> bool:
    """Does a record (status, reason) satisfy the manifest's `expected` cell?"""
    kind = expected.split(":")[0].strip()
    if STATUS_OF.get(kind) != status:
        return False
    if kind == "skip":
        key = expected.split(":", 1)[1].split("(")[0].split(";")[0].strip()
        return key.lower() in reason.lower()
    return True


def mismatches(records: Iterable[Mapping[str, Any]], manifest: Mapping[str, Mapping[str, str]]) -> list[str]:
    """One line per file handled otherwise than expected (empty: all good)."""
    by_path = {str(r["path"]): r for r in records}
    bad = [f"{p}: no record" for p in manifest if p not in by_path]
    for path, rec in by_path.items():
        expected = manifest[path]["expected"] if path in manifest else "skip: not a DICOM file"
        if not expected_matches(expected, str(rec["status"]), str(rec.get("reason", ""))):
            bad.append(f"{path}: expected {expected!r}, got {rec['status']} {rec.get('reason', '')!r}")
    return bad


def corpus(model: str = "default", workers: int = 2) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """(records of every corpus file, MANIFEST.csv rows by path)."""
    from radedge.pipelines.dicoms import CSV_COLUMNS, score_into
    from radedge.io.records import RecordWriter

    scorer, label = load_scorer(model)
    print(f"model: {label}")
    with tempfile.TemporaryDirectory(prefix="radedge-corpus-") as tmp:
        out = Path(tmp) / "corpus.csv"
        with RecordWriter(out, CSV_COLUMNS, resume=False) as writer:
            summary = score_into(scorer, DATA, writer, workers=workers)
        with open(out, newline="") as fh:
            records = list(csv.DictReader(fh))
    print(f"score_folder: {summary.line()}")
    return records, read_manifest()


# ---- summaries for the harness (python -m benchmarks) -------------------------------------------------
def throughput(quick: bool, threads: int | None = None) -> dict[str, Any]:
    """stage_report() plus one summary row per transfer-syntax group."""
    raw = stage_report("default", repeats=1 if quick else 3, copies=1 if quick else 4, workers=2, threads=threads)
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
    return {"model": str(raw["model"]).replace(str(ROOT) + "/", ""), "rows": rows, "throughput_raw": raw,
            "source": "benchmarks/dicom.py:stage_report"}


def memory(files: int, workers: int = 2) -> dict[str, Any]:
    """Peak RSS of `radedge score-dicoms` over a folder of `files` small DICOM files
    (make_folder / score_dicoms_memory: a subprocess sampled with psutil)."""
    model, _ = model_path("default")
    folder = make_folder(files)
    with tempfile.TemporaryDirectory(prefix="radedge-bench-mem-") as tmp:
        r = score_dicoms_memory(folder, Path(tmp) / "out.csv", model, workers)
    return {"files": files, "workers": workers, "seconds": round(r["seconds"], 1),
            "files_per_s": round(files / r["seconds"], 1), "peak_main_mb": round(r["peak_main_mb"], 1),
            "peak_tree_mb": round(r["peak_tree_mb"], 1), "tree_mb_first_half_max": round(r["tree_mb_first_half_max"], 1),
            "tree_mb_second_half_max": round(r["tree_mb_second_half_max"], 1), "returncode": r["returncode"],
            "summary": r["summary"], "source": "benchmarks/dicom.py:score_dicoms_memory"}


# ---- command line -------------------------------------------------------------------------------------
def throughput_main(args: argparse.Namespace) -> int:
    result = stage_report(args.model, args.repeats, args.copies, args.workers, args.threads)
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def memory_main(args: argparse.Namespace) -> int:
    model, label = model_path(args.model)
    print(f"model: {label}\nworkers: {args.workers}, cpus: {os.cpu_count()}")
    print(f"{'files':>7s} {'seconds':>8s} {'files/s':>8s} {'peak main MiB':>14s} {'peak tree MiB':>14s} "
          f"{'tree 1st half':>14s} {'tree 2nd half':>14s}  summary")
    with tempfile.TemporaryDirectory(prefix="radedge-mem-out-") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            folder = make_folder(n)
            r = score_dicoms_memory(folder, Path(tmp) / f"out{n}.csv", model, args.workers)
            print(f"{n:7d} {r['seconds']:8.1f} {n / r['seconds']:8.1f} {r['peak_main_mb']:14.1f} "
                  f"{r['peak_tree_mb']:14.1f} {r['tree_mb_first_half_max']:14.1f} "
                  f"{r['tree_mb_second_half_max']:14.1f}  rc={r['returncode']} {r['summary']}", flush=True)
    return 0


def corpus_main(args: argparse.Namespace) -> int:
    records, manifest = corpus(args.model, args.workers)
    for rec in records:
        expected = manifest.get(rec["path"], {}).get("expected", "skip: not a DICOM file (not in MANIFEST)")
        ok = "ok  " if expected_matches(expected, rec["status"], rec["reason"]) else "FAIL"
        print(f"{ok} {rec['path'][:52]:52s} expected {expected[:38]:38s} got {rec['status']:7s} {rec['reason'][:60]}")
    bad = mismatches(records, manifest)
    print(f"{len(records) - len(bad)}/{len(records)} files handled as expected "
          f"({len(manifest)} in MANIFEST.csv + {len(records) - len(manifest)} not listed)")
    return 1 if bad else 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.dicom", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="per-stage and pipeline timings on the full-size radiographs")
    p.add_argument("--model", default="default", help="default | standin | model name or folder")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--copies", type=int, default=6, help="copies of each file in the pipeline run")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    p.set_defaults(run=throughput_main)
    p = sub.add_parser("memory", help="score-dicoms peak memory against folder size")
    p.add_argument("--sizes", default="1000,10000", help="folder sizes, comma-separated")
    p.add_argument("--model", default="default", help="default | standin | model name or folder")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(run=memory_main)
    p = sub.add_parser("corpus", help="every corpus file handled as its MANIFEST.csv expects")
    p.add_argument("--model", default="default", help="default | standin | model name or folder")
    p.add_argument("--workers", type=int, default=2)
    p.set_defaults(run=corpus_main)
    args = ap.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())

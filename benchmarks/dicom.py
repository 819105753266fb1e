"""DICOM scoring: where the time goes, full versus reduced decoding, how memory behaves, and whether
every corpus file is handled right.

    python -m benchmarks.dicom throughput [--model default|standin|PATH] [--repeats 3] [--json OUT.json]
    python -m benchmarks.dicom score-dicoms [--copies 8] [--repeats 3] [--baseline CHECKOUT] [--modes ...]
    python -m benchmarks.dicom parity [--margin 1]
    python -m benchmarks.dicom memory [--sizes 1000,10000] [--model default|standin|PATH] [--workers 2]
    python -m benchmarks.dicom corpus [--model default|standin|PATH] [--workers 2]

Inputs: the full-size folder (`fullsize_folder`, built once under /tmp/radedge-dicom-fullsize/ from
shared/data): the four largest chest radiographs of shared/data (images/full-res: 4280 x 3520,
3465 x 3433, 3670 x 3308, baseline JPEG originals; dicom STUDY05: 2972 x 2840), each as JPEG 2000
lossless and lossy (12-bit; STUDY05's are the corpus files themselves), baseline JPEG (8-bit,
quality 90) and uncompressed (12-bit) DX files; plus the corpus's other transfer syntaxes (RLE,
JPEG-LS, JPEG lossless, WG04 RG1 JPEG 2000).

throughput: each stage timed separately (`time_stages`: read, decode, LUTs, preprocess; median of
`--repeats`) per transfer syntax, decoded in full and at reduced size (`decode_frame`), then the
model alone (`time_inference`), then the whole pipeline (`time_pipeline`: what `radedge score-dicoms`
runs, with worker processes) over copies of the full-size files in both modes.

score-dicoms: images/s of the `radedge score-dicoms` command itself (a subprocess, `--quiet`) on
folders of `--copies` copies of the full-size files per group (JPEG 2000, baseline JPEG,
uncompressed; each copy its own SOP Instance UID), reduced (the default) against
`--full-resolution`, and against another checkout's code with `--baseline` (e.g. `git archive` of the
commit before reduced decoding). Runs are interleaved, `--repeats` each; medians, rates net of
start-up (a run of the same command on one file per worker process, so that every worker starts
there too, before each timed run), and the CPU time of the command and its workers per image
(net of the start-up run just before, then the median over the repeats; what
cores / CPU time per image allows on an idle machine, since a shared one's wall clock says as much
about the other jobs) are printed with the A/B ratios.

parity: scores of every file scored (corpus and full-size folder, every transfer syntax) decoded in
full with the LUTs at full size (`--full-resolution`) and as `radedge score-dicoms` does by default
(JPEG 2000 and baseline JPEG reduced by the codec, other grey frames decoded in full then shrunk to
block means before the LUTs), with the shipped model at batch 1: the largest score difference per
file and the labels that differ, with how far the full-decoding score was from its threshold.

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

from radedge.images.dicom import check_scorable, decode_frame, grey_intensity, read_dataset, read_dicom
from radedge.images.preprocess import check_spec, preprocess, resized_shape
from radedge.images.scorer import ImageScorer

from .data import DATA as SHARED_DATA
from .data import ROOT
from export.cli import command_parser, run_command

DATA = SHARED_DATA / "dicom"
STANDIN_DIR = ROOT / "runs" / "bench_models" / "image-vit-standin"
FULL_RES = SHARED_DATA / "images" / "full-res"
STUDY05 = {"j2k-lossless": "pacs_export/STUDY05/SERIES01/IM0001.dcm", "j2k-lossy": "pacs_export/STUDY05/SERIES02/IM0001.dcm"}
# corpus files of the syntaxes the full-size folder lacks, timed in full and reduced (where the codec allows)
CORPUS_FILES = ["wg04/RG1_J2KR.dcm", "wg04/RG1_J2KI.dcm", "real/siim_acr_cr_chest_pa_jpeg.dcm",
                "pacs_export/STUDY03/SERIES01/IM0001.dcm", "pacs_export/STUDY02/SERIES02/IM0002",
                "pacs_export/STUDY03/SERIES02/IM0001.dcm", "pacs_export/STUDY04/SERIES01/IM0001.dcm",
                "wg04/RG1_JLSN.dcm", "pacs_export/STUDY06/SERIES01/IM0001.dcm"]
KINDS = ("j2k-lossless", "j2k-lossy", "jpeg", "uncompressed")
GROUPS = {"jpeg2000": ("j2k-lossless", "j2k-lossy"), "jpeg": ("jpeg",), "uncompressed": ("uncompressed",)}
FULLSIZE_CACHE = Path(tempfile.gettempdir()) / "radedge-dicom-fullsize"
MEMORY_CACHE = Path(tempfile.gettempdir()) / "radedge-dicom-mem"
STATUS_OF = {"score": "scored", "skip": "skipped", "error": "error"}
STARTUP_FILES = 2  # files of the start-up run of score-dicoms: one per worker process (its default 2)


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
             outputs=[TensorSpec("probs", "float32", ("batch", 14)),
                      TensorSpec("embedding", "float32", ("batch", spec.dim))],
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


# ---- the full-size folder --------------------------------------------------------------------------
def _fullsize_dataset(pixels: np.ndarray, bits: int, name: str) -> Any:
    """A DX chest PA dataset around `pixels` (Explicit VR LE until compressed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition, ds.SeriesDescription = "DX", "CHEST", "PA", name
    ds.set_pixel_data(pixels, "MONOCHROME2", bits)
    return ds


def as_baseline_jpeg(ds: Any, pixels: np.ndarray, quality: int = 90, photometric: str | None = None) -> Any:
    """`ds` with `pixels` (8-bit grey, or RGB stored as YCbCr) as one baseline JPEG frame encoded by
    Pillow (libjpeg-turbo), the way a PACS sends it: pydicom has no JPEG encoder."""
    from io import BytesIO

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    buf = BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    if photometric:
        ds.PhotometricInterpretation = photometric
    return ds


def _write_kind(pixels12: np.ndarray, kind: str, path: Path) -> None:
    """One full-size file of `kind` (KINDS) from 12-bit pixels."""
    from pydicom.uid import JPEG2000, JPEG2000Lossless

    if kind == "jpeg":
        pixels8 = (pixels12 >> 4).astype(np.uint8)
        ds = as_baseline_jpeg(_fullsize_dataset(pixels8, 8, path.stem), pixels8)
    else:
        ds = _fullsize_dataset(pixels12, 12, path.stem)
        if kind == "j2k-lossless":
            ds.compress(JPEG2000Lossless)
        elif kind == "j2k-lossy":
            ds.WindowCenter, ds.WindowWidth = 2048, 4096
            ds.compress(JPEG2000, j2k_cr=[20])
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def twelve_bit(jpg: Path) -> np.ndarray:
    """A full-res JPEG original as 12-bit grey pixels (8-bit values spread over 0..4095)."""
    from PIL import Image

    pixels8 = np.asarray(Image.open(jpg).convert("L"))
    return ((pixels8.astype(np.uint32) * 4095 + 127) // 255).astype(np.uint16)


def fullsize_folder(root: Path = FULLSIZE_CACHE) -> dict[str, list[Path]]:
    """kind -> the full-size files of that kind (see the module docstring); built once, then reused."""
    import pydicom

    sources = {p.stem: p for p in sorted(FULL_RES.glob("*.jpg"))}
    out: dict[str, list[Path]] = {k: [] for k in KINDS}
    study05 = None
    for kind in KINDS:
        if kind in STUDY05:
            out[kind].append(DATA / STUDY05[kind])
        else:
            path = root / kind / "STUDY05.dcm"
            if not path.is_file():
                study05 = pydicom.dcmread(DATA / STUDY05["j2k-lossless"]).pixel_array if study05 is None else study05
                _write_kind(study05, kind, path)
            out[kind].append(path)
        for stem, src in sources.items():
            path = root / kind / f"{stem}.dcm"
            if not path.is_file():
                _write_kind(twelve_bit(src), kind, path)
            out[kind].append(path)
    return out


# ---- stage timings --------------------------------------------------------------------------------------
def _median(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """Result and the median wall seconds of `repeats` calls (the machine is shared: a median is
    what a run on it gives)."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times)


def time_stages(path: Path, spec: dict[str, Any], repeats: int = 3, reduced: bool = True) -> dict[str, Any]:
    """Median seconds per stage for one file: read (header + pixel bytes), decode (`decode_frame`,
    at reduced size when `reduced` and the codec allows), LUTs, preprocess."""
    ds, read_s = _median(lambda: read_dataset(path), repeats)
    check_scorable(ds, None)
    shape = (int(ds.Rows), int(ds.Columns))
    s = check_spec(spec)
    need = resized_shape(shape, s["size"], s["resize"]) if reduced else None
    frame, decode_s = _median(lambda: decode_frame(read_dataset(path), need), repeats)
    (image, _), lut_s = _median(lambda: grey_intensity(ds, frame.stored, bool(spec.get("voi")), frame.extremes), repeats)
    _, pre_s = _median(lambda: preprocess(image, spec, shape, frame.origin, frame.kernel), repeats)
    return {"file": str(path), "transfer_syntax": ds.file_meta.TransferSyntaxUID.name, "decoded": frame.how,
            "shape": list(shape), "decoded_shape": list(frame.stored.shape), "read_s": read_s,
            "decode_s": max(decode_s - read_s, 0.0), "lut_s": lut_s, "preprocess_s": pre_s,
            "prepare_s": max(decode_s, read_s) + lut_s + pre_s}


def time_inference(scorer: ImageScorer, batch_size: int = 8, repeats: int = 5) -> dict[str, Any]:
    """Seconds per image of the model alone at `batch_size` (synthetic preprocessed pixels)."""
    size, channels = scorer.spec["size"], scorer.spec["channels"]
    pixels = np.random.default_rng(0).standard_normal((batch_size, channels, size, size)).astype(np.float32)
    scorer.infer(pixels)  # warm-up
    _, seconds = _median(lambda: scorer.infer(pixels), repeats)
    return {"batch_size": batch_size, "infer_s_per_image": seconds / batch_size, "images_per_s": batch_size / seconds}


def copies_folder(files: Sequence[Path], copies: int, root: Path) -> Path:
    """`copies` copies of each file under `root`, each with its own SOP Instance UID (pixel data
    untouched) so that every copy is scored."""
    import pydicom
    from pydicom.uid import generate_uid

    for j, f in enumerate(files):
        ds = pydicom.dcmread(f)
        for i in range(copies):
            ds.SOPInstanceUID = generate_uid()
            target = root / f"c{i:03d}" / f"f{j}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(target, enforce_file_format=True)
    return root


def time_pipeline(scorer: ImageScorer, files: Sequence[Path], copies: int, workers: int) -> dict[str, Any]:
    """End to end (score_into, CSV output) over `copies` copies of each file (`copies_folder`)."""
    from radedge.io.records import RecordWriter
    from radedge.pipelines.dicoms import CSV_COLUMNS, score_into

    with tempfile.TemporaryDirectory(prefix="radedge-bench-") as tmp:
        root = copies_folder(files, copies, Path(tmp) / "export")
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


# ---- throughput report ------------------------------------------------------------------------------
def stage_report(model: str = "default", repeats: int = 3, copies: int = 4, workers: int = 2,
                 threads: int | None = None) -> dict[str, Any]:
    """Stage timings per file in both modes, inference alone, and the pipeline per group in both modes."""
    from radedge.pipelines.workers import inference_threads

    path, model_label = model_path(model)
    threads = inference_threads(workers) if threads is None and workers else threads  # as score-dicoms
    scorers = {mode: ImageScorer.load(str(path), threads=threads, reduced=mode == "reduced")
               for mode in ("full", "reduced")}
    spec = scorers["full"].spec
    out: dict[str, Any] = {"model": model_label, "preprocess": spec, "cpus": os.cpu_count(), "threads": threads}
    files = fullsize_folder()
    paths = [p for kind in KINDS for p in files[kind]] + [DATA / f for f in CORPUS_FILES]
    out["stages"] = [dict(time_stages(p, spec, repeats, mode == "reduced"), mode=mode)
                     for p in paths for mode in ("full", "reduced")]
    out["inference"] = [time_inference(scorers["full"], b) for b in (1, 8)]
    out["pipeline"] = {f"{group} {mode}": time_pipeline(scorers[mode], [p for k in kinds for p in files[k]],
                                                         copies, workers)
                       for group, kinds in GROUPS.items() for mode in ("full", "reduced")}
    return out


def short_decoded(how: str) -> str:
    """`DicomImage.decoded` without the reason for full decoding: "jpeg2000 1/8", "full", "full, block means 1/2"."""
    return how.split(" (")[0] + (", block means" + how.rsplit("block means", 1)[1] if "block means" in how else "")


def stage_rows(stages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean ms per stage, per (transfer syntax, mode), in first-seen order."""
    keys: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for s in stages:
        keys.setdefault((s["transfer_syntax"], s["mode"]), []).append(s)
    rows = []
    for (ts, mode), group in keys.items():
        row = {"transfer_syntax": ts, "mode": mode, "files": len(group),
               "decoded": sorted({short_decoded(g["decoded"]) for g in group})}
        for k in ("read_s", "decode_s", "lut_s", "preprocess_s", "prepare_s"):
            row[k.replace("_s", "_ms")] = round(statistics.mean(g[k] for g in group) * 1e3, 1)
        rows.append(row)
    return rows


def format_report(r: dict[str, Any]) -> str:
    lines = [f"model: {r['model']}", f"preprocess: {r['preprocess']}",
             f"cpus: {r['cpus']}, inference threads: {r.get('threads') or 'onnxruntime default'}", "",
             f"{'transfer syntax':45s} {'mode':8s} {'files':>5s} {'read':>7s} {'decode':>7s} {'LUTs':>7s} "
             f"{'preproc':>7s} {'prepare':>8s}  decoded (ms per image, mean over the files of medians)"]
    for row in stage_rows(r["stages"]):
        lines.append(f"{row['transfer_syntax'][:45]:45s} {row['mode']:8s} {row['files']:5d} " + " ".join(
            f"{row[k]:7.1f}" for k in ("read_ms", "decode_ms", "lut_ms", "preprocess_ms")) +
            f" {row['prepare_ms']:8.1f}  {'; '.join(row['decoded'])}")
    lines.append("")
    for inf in r["inference"]:
        lines.append(f"inference alone, batch {inf['batch_size']}: {inf['infer_s_per_image'] * 1e3:.1f} ms/image "
                     f"({inf['images_per_s']:.1f} images/s)")
    lines.append("")
    for group, p in r["pipeline"].items():
        lines.append(f"pipeline {group}: {p['files']} files, {p['workers']} workers: {p['seconds']:.1f} s, "
                     f"{p['images_per_s']:.2f} images/s end to end (score_into); after the first result "
                     f"({p['first_result_s']:.1f} s: worker start-up + first decode): "
                     f"{p['steady_images_per_s']:.2f} images/s")
    return "\n".join(lines)


# ---- radedge score-dicoms itself, A/B ------------------------------------------------------------------
def run_score_dicoms(folder: Path, out: Path, extra: Sequence[str] = (), pythonpath: Path = ROOT
                     ) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its workers) of `radedge score-dicoms FOLDER -o OUT
    --quiet --overwrite EXTRA` in a subprocess running the code of `pythonpath` (this checkout by
    default). CPU seconds do not depend on what else the machine runs; wall seconds do."""
    import resource

    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    cmd = [sys.executable, "-m", "radedge.cli", "score-dicoms", str(folder), "-o", str(out), "--quiet", "--overwrite",
           *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=pythonpath)  # -m puts cwd first
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-500:]}")
    return seconds, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def score_dicoms_ab(copies: int = 8, repeats: int = 3, baseline: Path | None = None,
                    modes_run: Sequence[str] = ("reduced", "full-resolution", "baseline")) -> dict[str, Any]:
    """Median wall seconds and images/s of score-dicoms per group and mode (see the module docstring)."""
    files = fullsize_folder()
    modes: dict[str, tuple[list[str], Path]] = {"reduced": ([], ROOT), "full-resolution": (["--full-resolution"], ROOT)}
    if baseline is not None:
        modes["baseline"] = ([], baseline)
    modes = {m: v for m, v in modes.items() if m in modes_run or m == "reduced"}
    out: dict[str, Any] = {"cpus": os.cpu_count(), "copies": copies, "repeats": repeats,
                           "baseline": str(baseline) if baseline else None, "groups": {}}
    with tempfile.TemporaryDirectory(prefix="radedge-bench-ab-") as tmp:
        for group, kinds in GROUPS.items():
            group_files = [p for k in kinds for p in files[k]]
            big = copies_folder(group_files, copies, Path(tmp) / group / "many")
            # one file per worker: the pool starts a process per file submitted while none is idle
            few = copies_folder(group_files[:STARTUP_FILES], 1, Path(tmp) / group / "few")
            runs: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            starts: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
            for _ in range(repeats):  # interleaved, so load changes hit every mode alike
                for m, (extra, code) in modes.items():
                    starts[m].append(run_score_dicoms(few, Path(tmp) / "few.csv", extra, code))
                    runs[m].append(run_score_dicoms(big, Path(tmp) / "many.csv", extra, code))
            n, net = len(group_files) * copies, len(group_files) * copies - STARTUP_FILES
            out["groups"][group] = {}
            for m in modes:
                wall, start = (statistics.median(w for w, _ in r) for r in (runs[m], starts[m]))
                # CPU net of start-up per repeat (the two runs back to back), then the median
                cpu = statistics.median(c - c0 for (_, c), (_, c0) in zip(runs[m], starts[m]))
                out["groups"][group][m] = {
                    "files": n, "walls_s": [w for w, _ in runs[m]], "median_s": wall, "images_per_s": n / wall,
                    "startup_s": start, "net_images_per_s": net / max(wall - start, 1e-9),
                    "cpu_s_per_image": cpu / max(net, 1),
                    # what the CPU time allows on an idle machine with this many cores (start-up excluded)
                    "cpu_bound_images_per_s": (os.cpu_count() or 1) * max(net, 1) / max(cpu, 1e-9)}
    return out


def format_ab(r: dict[str, Any]) -> str:
    lines = [f"radedge score-dicoms, {r['cpus']} cpus, {r['copies']} copies per file, median of {r['repeats']} "
             f"interleaved runs" + (f"; baseline: {r['baseline']}" if r["baseline"] else ""),
             f"{'group':13s} {'mode':16s} {'files':>5s} {'median s':>9s} {'images/s':>9s} {'start-up s':>10s} "
             f"{'net images/s':>12s} {'CPU ms/image':>12s} {'CPU-bound images/s':>18s}  runs (s)"]
    for group, modes in r["groups"].items():
        for m, v in modes.items():
            lines.append(f"{group:13s} {m:16s} {v['files']:5d} {v['median_s']:9.2f} {v['images_per_s']:9.2f} "
                         f"{v['startup_s']:10.2f} {v['net_images_per_s']:12.2f} {v['cpu_s_per_image'] * 1e3:12.1f} "
                         f"{v['cpu_bound_images_per_s']:18.2f}  " + " ".join(f"{w:.2f}" for w in v["walls_s"]))
    lines.append("")
    for key, what in (("images_per_s", "wall"), ("cpu_bound_images_per_s", "CPU-bound")):
        uncompressed = r["groups"]["uncompressed"]["reduced"][key]
        for group, modes in r["groups"].items():
            red = modes["reduced"][key]
            ratios = [f"reduced / {m} {red / v[key]:.2f}x" for m, v in modes.items() if m != "reduced"]
            lines.append(f"{what} {group}: {red:.2f} images/s; {', '.join(ratios)}; vs uncompressed "
                         f"{red / uncompressed:.2f}x")
    return "\n".join(lines)


# ---- parity: scores, full against reduced ---------------------------------------------------------------
def parity(model: str = "default", margin: int | None = None) -> list[dict[str, Any]]:
    """Per file scored (corpus and full-size folder, every transfer syntax: JPEG 2000 and baseline JPEG
    decoded reduced, the others decoded in full then shrunk to block means before the LUTs): the
    largest score difference against full decoding with the LUTs at full size (`--full-resolution`),
    and each label that differs with its full-decoding score and threshold (shipped model, batch 1).
    `margin` replaces `radedge.images.codecs.jpeg2000.MARGIN` for the run (1: reduce down to the
    model's input size itself); `margins` shows how the differences grow as it shrinks."""
    import csv as _csv

    from radedge.images.codecs import jpeg2000
    from radedge.labels import FINDINGS

    if margin is not None:
        jpeg2000.MARGIN = margin

    path, _ = model_path(model)
    full = ImageScorer.load(str(path), batch_size=1, reduced=False)
    reduced = ImageScorer.load(str(path), batch_size=1)
    with open(DATA / "MANIFEST.csv", newline="") as fh:
        corpus = [DATA / r["path"] for r in _csv.DictReader(fh) if r["expected"] == "score"]
    files = fullsize_folder()
    rows = []
    for p in corpus + [p for k in KINDS for p in files[k] if p not in corpus]:
        a, b = full([p])[0], reduced([p])[0]
        d = read_dicom(p, voi=reduced.spec["voi"], decode_for=reduced.spec)
        trained = np.isfinite(a.probabilities)  # findings the model was not trained on are NaN
        flips = [{"finding": FINDINGS[i], "full": float(a.probabilities[i]), "reduced": float(b.probabilities[i]),
                  "threshold": float(reduced.thresholds[i])} for i in np.flatnonzero(trained & (a.labels != b.labels))]
        # the network's own outputs too: isotonic calibration is a step function that may amplify a small change
        raw_a, raw_b = (s.infer(s.prepare(p).pixels[None])[0] for s in (full, reduced))
        rows.append({"file": str(p), "transfer_syntax": d.transfer_syntax, "decoded": d.decoded,
                     "max_diff": float(np.abs(a.probabilities - b.probabilities)[trained].max()),
                     "max_raw_diff": float(np.abs(raw_a - raw_b)[trained].max()), "flips": flips})
    return rows


def format_parity(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'file':48s} {'decoded':24s} {'network':>8s} {'calibr.':>8s}  (max |score diff|) "
             "labels that differ (full / reduced / threshold)"]
    for r in rows:
        name = "/".join(Path(r["file"]).parts[-2:])
        flips = "; ".join(f"{f['finding']} {f['full']:.4f} / {f['reduced']:.4f} / {f['threshold']:.4f}"
                          for f in r["flips"])
        decoded = short_decoded(r["decoded"])
        lines.append(f"{name[-48:]:48s} {decoded[:24]:24s} {r['max_raw_diff']:8.4f} {r['max_diff']:8.4f}  {flips}")
    lines.append(f"largest score difference over {len(rows)} files: network {max(r['max_raw_diff'] for r in rows):.4f}, "
                 f"calibrated {max(r['max_diff'] for r in rows):.4f}; {sum(bool(r['flips']) for r in rows)} files "
                 "with a label that differs")
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
    """stage_report() plus one summary row per (transfer syntax, mode)."""
    raw = stage_report("default", repeats=1 if quick else 3, copies=1 if quick else 4, workers=2, threads=threads)
    infer = raw["inference"][-1]["infer_s_per_image"]
    rows = [dict(row, inference_ms=round(infer * 1e3, 1),
                 inference_share=round(infer / (row["prepare_ms"] / 1e3 + infer), 3))
            for row in stage_rows(raw["stages"])]
    pipeline = [{"group": key.split()[0], "mode": key.split()[1], "files": p["files"], "workers": p["workers"],
                 "images_per_s": round(p["images_per_s"], 2), "steady_images_per_s": round(p["steady_images_per_s"], 2)}
                for key, p in raw["pipeline"].items()]
    return {"model": str(raw["model"]).replace(str(ROOT) + "/", ""), "rows": rows, "pipeline": pipeline,
            "throughput_raw": raw, "source": "benchmarks/dicom.py:stage_report"}


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


def score_dicoms_main(args: argparse.Namespace) -> int:
    result = score_dicoms_ab(args.copies, args.repeats, args.baseline, args.modes.split(","))
    print(format_ab(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def parity_main(args: argparse.Namespace) -> int:
    rows = parity(args.model, args.margin)
    print(format_parity(rows))
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
    ap = command_parser("benchmarks.dicom", __doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("throughput", help="per-stage and pipeline timings on the full-size radiographs")
    p.add_argument("--model", default="default", help="default | standin | model name or folder")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    p.add_argument("--copies", type=int, default=4, help="copies of each full-size file in the pipeline run")
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.add_argument("--threads", type=int, default=None,
                   help="onnxruntime threads (default: as score-dicoms, the cores the workers leave)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    p.set_defaults(run=throughput_main)
    p = sub.add_parser("score-dicoms", help="radedge score-dicoms images/s, reduced vs full resolution (A/B)")
    p.add_argument("--copies", type=int, default=8, help="copies of each full-size file per group")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats (the median is reported)")
    p.add_argument("--baseline", type=Path, default=None, help="another checkout to run as a third mode")
    p.add_argument("--modes", default="reduced,full-resolution,baseline", help="which modes to run (reduced always)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    p.set_defaults(run=score_dicoms_main)
    p = sub.add_parser("parity", help="scores of JPEG 2000 / JPEG files, full against reduced decoding")
    p.add_argument("--model", default="default", help="default | model name or folder")
    p.add_argument("--margin", type=float, default=None,
                   help="reduce JPEG 2000 frames to MARGIN x the resized size (default: the codec's MARGIN)")
    p.set_defaults(run=parity_main)
    p = sub.add_parser("memory", help="score-dicoms peak memory against folder size")
    p.add_argument("--sizes", default="1000,10000", help="folder sizes, comma-separated")
    p.add_argument("--model", default="default", help="default | standin | model name or folder")
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.set_defaults(run=memory_main)
    p = sub.add_parser("corpus", help="every corpus file handled as its MANIFEST.csv expects")
    p.add_argument("--model", default="default", help="default | standin | model name or folder")
    p.add_argument("--workers", type=int, default=2, help="decoding processes")
    p.set_defaults(run=corpus_main)
    args = ap.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    run_command(main, "benchmarks.dicom")

"""Score every chest radiograph in a folder (a PACS export) into a record sink, resuming.

    >>> from radedge.pipelines import score_folder
    >>> summary = score_folder("/data/pacs_export", "scores.csv")
    >>> summary.scored, summary.skipped, summary.failed

This is what `radedge score-dicoms` runs (and, with kind="images", `radedge score-images` on a
folder of PNG / JPEG files: same records with empty UIDs, same resume). The folder is walked as a stream (sorted per directory);
worker processes read, decode and preprocess files (`workers.prepared_stream`) while this process
runs batched inference (`ImageScorer.stream`) and appends one record per file: scored images with
Study / Series / SOP Instance UIDs, 14 probabilities and thresholded labels, and a separate record
for every skipped or failed file (status, reason, error type). At most ``batch_size + 4 * workers``
files are in flight, so memory does not grow with the folder.

Resume: records are appended and flushed one by one (`RecordWriter`); what made the output (the
folder, the model's name and sha256, the options) is kept in `OUTPUT.meta.json`, and a resume with
anything different is refused. Re-running on the same output
skips every path already recorded and every SOP Instance UID already scored, so a run killed at
any moment and started again ends with each file recorded exactly once. A second copy of an
already-scored SOP instance under another path is recorded as skipped (duplicate).

`score_files` is the per-batch step (paths in, output records out) a distributed engine can map.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..images.dicom import DEFAULT_MAX_PIXELS
from ..images.scorer import OOD, ImageResult, ImageScorer, PreparedImage
from ..images.walk import walk_files
from ..io.files import display_name
from ..io.records import RecordWriter, output_format
from ..labels import FINDINGS
from .meta import run_meta
from .workers import Job, inference_threads, prepare_file, prepared_stream

ID_COLUMNS = ["path", "status", "study_uid", "series_uid", "sop_uid"]
LABEL_PREFIX = "label:"
TAIL_COLUMNS = ["ood_score", "reason", "error_type"]
CSV_COLUMNS = ID_COLUMNS + list(FINDINGS) + [LABEL_PREFIX + f for f in FINDINGS] + TAIL_COLUMNS
DEFAULT_VIEWS = "PA,AP"


def default_workers() -> int:
    """Decoding processes when not told: two at most (the model's own threads need the rest)."""
    return min(2, os.cpu_count() or 1)


def to_record(result: ImageResult, flat: bool) -> dict[str, Any]:
    """One output record: flat columns for CSV (probabilities under the finding names, labels under
    'label:<finding>'), nested 'probabilities' / 'labels' objects for JSONL. A finding the model
    does not report is an empty cell in CSV and null in JSONL, never a number; `ood_score` is the
    out-of-distribution score of every input the model saw (empty / null otherwise)."""
    record: dict[str, Any] = {"path": result.source, "status": result.status, "study_uid": result.study_uid,
                              "series_uid": result.series_uid, "sop_uid": result.sop_uid}
    if result.probabilities is not None and result.labels is not None:
        probs = {f: None if np.isnan(p) else float(p) for f, p in zip(FINDINGS, result.probabilities)}
        labels = {f: None if np.isnan(v) else int(v) for f, v in zip(FINDINGS, result.labels)}
        if flat:
            record.update({f: "" if p is None else f"{p:.6f}" for f, p in probs.items()})
            record.update({LABEL_PREFIX + f: "" if v is None else v for f, v in labels.items()})
        else:
            record["probabilities"] = {f: None if p is None else round(p, 6) for f, p in probs.items()}
            record["labels"] = labels
    score = result.ood_score
    record["ood_score"] = ("" if flat else None) if score is None else (f"{score:.3f}" if flat else round(score, 3))
    record["reason"], record["error_type"] = result.reason, result.error_type
    return record


def score_files(scorer: ImageScorer, paths: Sequence[str | os.PathLike], names: Sequence[str] | None = None,
                flat: bool = False, kind: str = "dicom") -> list[dict[str, Any]]:
    """One batch: file paths in, one output record each out, in order (`names` are the recorded
    paths; default the paths as given). `kind` as in a folder scan: "dicom" skips pictures,
    "images" reads PNG / JPEG files and skips the rest."""
    names = [str(p) for p in paths] if names is None else list(names)
    prepared = (prepare_file(str(path), scorer.spec, scorer.views, name, kind, scorer.max_pixels, scorer.reduced)
                for path, name in zip(paths, names))
    return [to_record(result, flat) for result in scorer.stream(prepared)]


@dataclass
class Summary:
    scored: int = 0
    out_of_distribution: int = 0  # read, but unlike the model's training films: no findings
    skipped: int = 0
    failed: int = 0
    resumed: int = 0  # records already in the output when the run started

    def count(self, status: str) -> None:
        if status == "scored":
            self.scored += 1
        elif status == OOD:
            self.out_of_distribution += 1
        elif status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1

    @property
    def total(self) -> int:
        return self.scored + self.out_of_distribution + self.skipped + self.failed

    def line(self) -> str:
        ood = f"out-of-distribution {self.out_of_distribution}, " if self.out_of_distribution else ""
        return (f"scored {self.scored}, {ood}skipped {self.skipped}, failed {self.failed}"
                + (f" (including {self.resumed} records from an earlier run)" if self.resumed else ""))


def _deduplicated(prepared: Iterable[PreparedImage], scored_sops: dict[str, str]) -> Iterator[PreparedImage]:
    """A ready image whose SOP Instance UID another path already scored becomes a 'duplicate' skip."""
    for item in prepared:
        if item.status == "scored" and item.sop_uid:
            first = scored_sops.setdefault(item.sop_uid, item.source)
            if first != item.source:
                item = replace(item, status="skipped", pixels=None, error_type="SkippedInput",
                               reason=f"duplicate SOP Instance UID (already scored as {first})")
        yield item


def _counted(items: Iterable[PreparedImage], progress: Callable[[int], None] | None) -> Iterator[PreparedImage]:
    for item in items:
        yield item
        if progress is not None:
            progress(1)


def score_into(scorer: ImageScorer, root: Path, writer: RecordWriter, workers: int = 0,
               progress: Callable[[int], None] | None = None,
               on_error: Callable[[ImageResult], None] | None = None, kind: str = "dicom") -> Summary:
    """Score every file under `root` into `writer`, skipping what the writer already holds; `kind`
    "dicom" reads DICOM files, "images" PNG / JPEG files (workers.KINDS)."""
    flat = writer.format == ".csv"
    summary = Summary()
    done_paths: set[str] = set()
    scored_sops: dict[str, str] = {}  # SOP Instance UID -> path that scored it
    for rec in writer.existing:
        done_paths.add(str(rec.get("path", "")))
        summary.count(str(rec.get("status", "")))
        if rec.get("status") == "scored" and rec.get("sop_uid"):
            scored_sops[str(rec["sop_uid"])] = str(rec.get("path", ""))
    summary.resumed = len(writer.existing)

    def jobs() -> Iterator[Job]:
        # Every entry but folders: a FIFO, a device, a dangling link or an unlistable folder is
        # opened by the worker and becomes its own error record. Names not in UTF-8 are escaped.
        for path in walk_files(root):
            name = display_name(path.relative_to(root).as_posix())
            if name not in done_paths:
                yield name, str(path), scorer.spec, scorer.views, scorer.max_pixels, scorer.reduced, kind

    prepared = prepared_stream(jobs(), workers, in_flight=scorer.batch_size + 4 * max(workers, 1))
    # ordered=False: a skipped or failed file is recorded at once, not held behind a batch.
    for result in scorer.stream(_counted(_deduplicated(prepared, scored_sops), progress), ordered=False):
        writer.write(to_record(result, flat))
        summary.count(result.status)
        if result.status == "error" and on_error is not None:
            on_error(result)
    return summary


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def score_folder(folder: str | os.PathLike, output: str | os.PathLike,
                 model: str | os.PathLike | ImageScorer = "default", *, backend: str = "onnxruntime",
                 device: str = "cpu", threads: int | None = None, batch_size: int = 8,
                 views: str | Iterable[str] | None = DEFAULT_VIEWS, workers: int | None = None,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, reduced: bool = True,
                 overwrite: bool = False, progress: Callable[[int], None] | None = None,
                 on_error: Callable[[ImageResult], None] | None = None, kind: str = "dicom") -> Summary:
    """Score the chest radiographs under `folder` (recursively) into `output` (.csv or .jsonl),
    exactly as `radedge score-dicoms` does; an existing output is resumed unless `overwrite`.

    `model` is a name, "default", a folder, or a loaded ImageScorer (then backend, device, threads,
    batch_size, views, max_pixels and reduced are its own). `threads`: inference threads (default:
    the cores the decoding workers leave, `workers.inference_threads`). `views`: allowed ViewPosition values
    ("PA,AP", "all"). `workers`: decoding processes (default: min(2, CPUs); 0 = in this process).
    `max_pixels`: largest Rows x Columns x frames decoded (None: no cap); `reduced=False` decodes
    every frame at full resolution (see `radedge.images.dicom.decode_frame`). Problems with the
    run as a whole (an output inside the folder, a missing model) raise before anything is written.
    `kind="images"` scores the PNG / JPEG files instead (what `radedge score-images` runs): the same
    records (empty UIDs), resume and summary; other files are recorded as skipped.
    """
    folder, output = Path(folder), Path(output)
    output_format(output)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if _inside(output, folder):
        raise ValueError(f"{output}: the output must not be inside the scanned folder {folder}")
    workers = default_workers() if workers is None else workers
    if threads is None and workers > 0:
        threads = inference_threads(workers)
    scorer = model if isinstance(model, ImageScorer) else ImageScorer.load(
        model, backend=backend, device=device, threads=threads, batch_size=batch_size, views=views,
        max_pixels=max_pixels, reduced=reduced)
    meta = run_meta(f"score-{'images' if kind == 'images' else 'dicoms'}", folder, scorer.identity, {
        "views": "all" if scorer.views is None else sorted(scorer.views), "batch_size": scorer.batch_size,
        "max_pixels": scorer.max_pixels, "reduced": scorer.reduced, "kind": kind,
        "backend": getattr(scorer.model.backend, "name", None), "device": getattr(scorer.model.backend, "device", None)})
    with RecordWriter(output, CSV_COLUMNS, resume=not overwrite, meta=meta) as writer:
        return score_into(scorer, folder, writer, workers=workers, progress=progress, on_error=on_error, kind=kind)


__all__ = ["CSV_COLUMNS", "Summary", "default_workers", "score_files", "score_folder", "score_into", "to_record"]

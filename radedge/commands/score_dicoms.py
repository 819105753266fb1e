"""`radedge score-dicoms DIR -o OUT.csv|OUT.jsonl`: score every chest radiograph in a PACS export.

The folder is walked as a stream (sorted per directory); worker processes read, decode and
preprocess files while the main process runs batched inference and appends one record per file:
scored images with Study / Series / SOP Instance UIDs, 14 probabilities and thresholded labels, and
a separate record for every skipped or failed file (status, reason, error type). At most
``batch_size + 4 * workers`` files are in flight, so memory does not grow with the folder.

Resume: records are appended and flushed one by one (`RecordWriter`); re-running on the same output
skips every path already recorded and every SOP Instance UID already scored, so a run killed at
any moment and started again ends with each file recorded exactly once. A second copy of an
already-scored SOP instance under another path is recorded as skipped (duplicate).
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import click

from ..cli import EXIT_NOTHING_DONE, EXIT_OK, EXIT_PARTIAL, fail, guarded, model_options
from ..images.scorer import ImageResult, ImageScorer, PreparedImage, prepare_input
from ..images.walk import walk_files
from ..io.records import RecordWriter, output_format
from ..labels import FINDINGS

ID_COLUMNS = ["path", "status", "study_uid", "series_uid", "sop_uid"]
LABEL_PREFIX = "label:"
TAIL_COLUMNS = ["reason", "error_type"]
CSV_COLUMNS = ID_COLUMNS + list(FINDINGS) + [LABEL_PREFIX + f for f in FINDINGS] + TAIL_COLUMNS

Job = tuple[str, str, Mapping[str, Any], "frozenset[str] | None"]


def to_record(result: ImageResult, flat: bool) -> dict[str, Any]:
    """One output record: flat columns for CSV (probabilities under the finding names, labels under
    'label:<finding>'), nested 'probabilities' / 'labels' objects for JSONL."""
    record: dict[str, Any] = {"path": result.source, "status": result.status, "study_uid": result.study_uid,
                              "series_uid": result.series_uid, "sop_uid": result.sop_uid}
    probs = result.findings()
    labels = dict(zip(FINDINGS, (int(v) for v in result.labels))) if result.labels is not None else {}
    if flat:
        record.update({f: f"{p:.6f}" for f, p in probs.items()})
        record.update({LABEL_PREFIX + f: v for f, v in labels.items()})
    elif probs:
        record["probabilities"] = {f: round(p, 6) for f, p in probs.items()}
        record["labels"] = labels
    record["reason"], record["error_type"] = result.reason, result.error_type
    return record


# ---- decoding in worker processes, in order, with a bounded number in flight --------------------
def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one core per worker; the pool is the parallelism


def prepare_job(job: Job) -> PreparedImage:
    """Worker entry point: read + decode + preprocess one file (DICOM only: pictures are skipped)."""
    name, path, spec, views = job
    return prepare_input(path, spec, views, name=name, images=False)


def prepared_stream(jobs: Iterator[Job], workers: int, in_flight: int) -> Iterator[PreparedImage]:
    """prepare_job over `jobs`, results in job order, at most `in_flight` submitted and not yet taken.

    workers=0 prepares in this process. A worker that dies (a decoder crash) costs the file at the
    head of the queue an error record; the pool is restarted for the rest.
    """
    if workers == 0:
        yield from map(prepare_job, jobs)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)

    pool = new_pool()
    pending: deque[tuple[Job, Future[PreparedImage]]] = deque()

    def take() -> PreparedImage:
        nonlocal pool
        job, future = pending.popleft()
        try:
            return future.result()
        except BrokenProcessPool:
            pool.shutdown(wait=False, cancel_futures=True)
            pool = new_pool()
            retry = [j for j, _ in pending]
            pending.clear()
            for j in retry:
                pending.append((j, pool.submit(prepare_job, j)))
            return PreparedImage(job[0], status="error", reason="worker process died while reading this file",
                                 error_type="BrokenProcessPool")

    try:
        for job in jobs:
            pending.append((job, pool.submit(prepare_job, job)))
            if len(pending) >= in_flight:
                yield take()
        while pending:
            yield take()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ---- the folder run ---------------------------------------------------------------------------------
@dataclass
class Summary:
    scored: int = 0
    skipped: int = 0
    failed: int = 0
    resumed: int = 0  # records already in the output when the run started

    def count(self, status: str) -> None:
        if status == "scored":
            self.scored += 1
        elif status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1

    def line(self) -> str:
        return (f"scored {self.scored}, skipped {self.skipped}, failed {self.failed}"
                + (f" (including {self.resumed} records from an earlier run)" if self.resumed else ""))


def score_folder(scorer: ImageScorer, root: Path, writer: RecordWriter, workers: int = 0,
                 progress: Callable[[int], None] | None = None,
                 on_error: Callable[[ImageResult], None] | None = None) -> Summary:
    """Score every file under `root` into `writer`, skipping what the writer already holds."""
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
        for path in walk_files(root):
            name = path.relative_to(root).as_posix()
            if name not in done_paths:
                yield name, str(path), scorer.spec, scorer.views

    def emit(results: list[ImageResult]) -> None:
        for result in results:
            writer.write(to_record(result, flat))
            summary.count(result.status)
            if result.status == "error" and on_error is not None:
                on_error(result)

    batch: list[PreparedImage] = []
    for prepared in prepared_stream(jobs(), workers, in_flight=scorer.batch_size + 4 * max(workers, 1)):
        if prepared.status == "scored" and prepared.sop_uid:
            first = scored_sops.setdefault(prepared.sop_uid, prepared.source)
            if first != prepared.source:
                prepared = PreparedImage(prepared.source, status="skipped", study_uid=prepared.study_uid,
                                         series_uid=prepared.series_uid, sop_uid=prepared.sop_uid,
                                         reason=f"duplicate SOP Instance UID (already scored as {first})",
                                         error_type="SkippedInput")
        if prepared.status == "scored":
            batch.append(prepared)
            if len(batch) >= scorer.batch_size:
                emit(scorer.finish(batch))
                batch = []
        else:
            emit(scorer.finish([prepared]))
        if progress is not None:
            progress(1)
    emit(scorer.finish(batch))
    return summary


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


@click.command("score-dicoms")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .csv or .jsonl (appended; an existing one is resumed).")
@model_options()
@click.option("--views", default="PA,AP", show_default=True,
              help="Allowed ViewPosition values, comma-separated (LATERAL = every lateral code), or 'all'. "
                   "Files without ViewPosition are always scored.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Processes decoding and preprocessing files [default: min(2, CPUs)]; 0 = in this process.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Images per inference batch.")
@click.option("--quiet", is_flag=True, help="No progress bar or per-file error lines; only the summary.")
@click.option("--overwrite", is_flag=True, help="Start the output afresh instead of resuming it.")
@guarded
def score_dicoms(folder: Path, output: Path, model: str, backend: str, device: str, threads: int | None,
                 views: str, workers: int | None, batch_size: int, quiet: bool, overwrite: bool) -> None:
    """Score the chest radiographs in FOLDER (recursively); skipped and failed files get their own records."""
    output_format(output)
    if _inside(output, folder):
        fail(f"{output}: the output must not be inside the scanned folder {folder}", EXIT_NOTHING_DONE)
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    scorer = ImageScorer.load(model, backend=backend, device=device, threads=threads, batch_size=batch_size,
                              views=views)
    from tqdm import tqdm

    with RecordWriter(output, CSV_COLUMNS, resume=not overwrite) as writer, \
            tqdm(unit=" files", disable=quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        def on_error(result: ImageResult) -> None:
            if not quiet:
                bar.write(f"radedge: {result.source}: {result.reason}", file=sys.stderr)

        summary = score_folder(scorer, folder, writer, workers=workers, progress=bar.update, on_error=on_error)
    click.echo(f"score-dicoms: {summary.line()} -> {output}", err=True)
    if summary.scored + summary.skipped + summary.failed == 0:
        fail(f"{folder}: no files found", EXIT_NOTHING_DONE)
    sys.exit(EXIT_PARTIAL if summary.failed else EXIT_OK)

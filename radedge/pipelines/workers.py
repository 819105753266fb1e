"""Read, decode and preprocess files in worker processes, results in order, a bounded number in flight.

The only process pool of the runtime: `score_folder` feeds it jobs and runs inference on what
comes back in the main process, so decoding (CPU-bound, in C libraries that may crash) never
blocks the model and a decoder crash costs one file, not the run.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..images.codecs import set_decoder_threads
from ..images.scorer import IMAGE_SUFFIXES, PreparedImage, prepare_input

# What a folder run reads: "dicom" (score-dicoms: every file as DICOM, found by content; pictures are
# skipped) or "images" (score-images: PNG / JPEG files by name, anything else skipped).
KINDS = ("dicom", "images")
# (name recorded for the file, path, the model's preprocess spec, allowed views or None for all,
#  pixel cap or None, reduced-resolution decoding allowed, kind)
Job = tuple[str, str, Mapping[str, Any], "frozenset[str] | None", "int | None", bool, str]


def _init_worker(decoder_threads: int, parent: int) -> None:
    """One core per worker (the pool is the parallelism); Ctrl-C is the parent's to handle (it exits
    130 after the pool shuts down); and the worker ends when its parent does, however it ended
    (SIGKILL included), instead of holding the terminal's stderr open."""
    import signal

    decoding_process(decoder_threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent,), name="radedge-parent-watch", daemon=True).start()


def decoding_process(decoder_threads: int) -> None:
    """Set up a process that decodes files one after another on cores of its own (a worker of the
    pool here, or an actor of a Ray job): OpenCV single-threaded (the processes are the parallelism),
    openjpeg with `decoder_threads` threads, and freed heap blocks kept for the next file."""
    import cv2

    cv2.setNumThreads(1)
    set_decoder_threads(decoder_threads)
    keep_freed_memory()


def _exit_with_parent(parent: int, every: float = 0.5) -> None:
    """Poll the parent's pid: when this process is re-parented, the parent is gone, so exit now.
    (A poll, not prctl(PR_SET_PDEATHSIG): that fires when the creating *thread* ends, and works on
    Linux only.)"""
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


# glibc's defaults: large blocks are mmap'ed and given back to the kernel when freed (the threshold
# starts at 128 KB and follows the largest block freed), and the freed heap top over twice that is
# trimmed; a decoding process then page-faults in every frame's buffers anew.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt(3) parameters
KEEP_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit systems


def keep_freed_memory(keep: int = KEEP_BYTES) -> bool:
    """Let this process's heap keep freed blocks of up to `keep` bytes for the next file, instead of
    returning them to the kernel: a decoding worker allocates and frees the same few large buffers
    per file (the codestream, the decoded frame), and without this faults their pages in again for
    every file (`tests/test_dicom_decode.py` counts the faults for twenty 1 MB blocks a file). In
    the whole command (`python -m benchmarks.dicom score-dicoms`) the saving is smaller than what a
    shared machine's load moves. The heap then stays at the largest file's working set instead of
    shrinking between files. True when glibc took the settings (False elsewhere: musl, macOS,
    Windows)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, keep)) and bool(mallopt(M_TRIM_THRESHOLD, 2 * keep))


def decoder_threads(workers: int) -> int:
    """openjpeg threads per decoding process: the cores shared out, so workers x threads <= cores."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def inference_threads(workers: int) -> int:
    """onnxruntime threads for the process that runs the model while `workers` processes decode:
    the cores the workers leave, at least one. Its default (one per core) on top of busy workers
    oversubscribes the cores, and its idle threads spin: on 2 cores with 2 workers, 2 threads cost
    twice the CPU per image of 1 (`python -m benchmarks.dicom score-dicoms` measures the command)."""
    return max(1, (os.cpu_count() or 1) - max(workers, 0))


def prepare_file(path: str, spec: Mapping[str, Any], views: "frozenset[str] | None", name: str, kind: str = "dicom",
                 max_pixels: int | None = None, reduced: bool = True) -> PreparedImage:
    """Read + decode + preprocess one file of a folder run of `kind` (see KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "images" and Path(path).suffix.lower() not in IMAGE_SUFFIXES:
        return PreparedImage(name, status="skipped", reason="not a PNG / JPEG image (score-dicoms reads DICOM files)",
                             error_type="SkippedInput")
    return prepare_input(path, spec, views, name=name, images=kind == "images", max_pixels=max_pixels,
                         reduced=reduced)


def prepare_job(job: Job) -> PreparedImage:
    """Worker entry point: `prepare_file` on one job."""
    name, path, spec, views, max_pixels, reduced, kind = job
    return prepare_file(path, spec, views, name, kind, max_pixels, reduced)


def prepared_stream(jobs: Iterator[Job], workers: int, in_flight: int) -> Iterator[PreparedImage]:
    """prepare_job over `jobs`, results in job order, at most `in_flight` submitted and not yet taken.

    workers=0 prepares in this process. openjpeg gets cores // workers threads per process (its
    ``OPJ_NUM_THREADS``, unless set by the user). A worker that dies (a decoder crash) costs the file at the
    head of the queue an error record; the pool is restarted for the rest.
    """
    if workers == 0:
        set_decoder_threads(decoder_threads(1))
        yield from map(prepare_job, jobs)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that holds threads

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                   initargs=(decoder_threads(workers), os.getpid()))

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
        except Exception as exc:  # noqa: BLE001 (a result that cannot come back, e.g. unpicklable): this file's error
            return PreparedImage(job[0], status="error", reason=f"{type(exc).__name__}: {exc}",
                                 error_type=type(exc).__name__)

    try:
        for job in jobs:
            pending.append((job, pool.submit(prepare_job, job)))
            if len(pending) >= in_flight:
                yield take()
        while pending:
            yield take()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


__all__ = ["Job", "decoder_threads", "decoding_process", "inference_threads", "keep_freed_memory", "prepare_job",
           "prepared_stream"]

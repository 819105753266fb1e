"""Latency of the installed models on the machine that runs them: the core of `radedge bench`.

Runtime-side only (numpy, onnxruntime, the standard library; psutil when installed), so a hospital can
time the installed models on its own hardware without the source checkout or torch. The checkout's
`benchmarks/` harness times every model variant with these same functions.

Method: a few untimed warm-up calls (allocators, thread pools, onnxruntime's lazy kernels), then
repeated timed calls. Latency percentiles come from the per-call times; throughput is items per call
divided by the *median* call time, which is robust to other processes sharing the CPU.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .manifest import TensorSpec

# CPU flags that decide which int8 / bf16 kernels onnxruntime and torch can use.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")


# ---- timing ---------------------------------------------------------------------------------
@dataclass
class Latency:
    """Per-call wall times of one measured case, and how many items (reports, images) each call handled."""

    samples_s: list[float]
    items_per_call: int = 1
    warmup: int = 0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.samples_s), q) * 1e3)

    @property
    def median_s(self) -> float:
        return float(statistics.median(self.samples_s))

    @property
    def throughput(self) -> float:
        """Items per second at the median call time."""
        return self.items_per_call / self.median_s if self.median_s > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return {
            "p50_ms": round(self.percentile_ms(50), 4),
            "p95_ms": round(self.percentile_ms(95), 4),
            "p99_ms": round(self.percentile_ms(99), 4),
            "mean_ms": round(float(np.mean(self.samples_s)) * 1e3, 4),
            "min_ms": round(min(self.samples_s) * 1e3, 4),
            "calls": len(self.samples_s),
            "warmup": self.warmup,
            "items_per_call": self.items_per_call,
            "throughput_per_s": round(self.throughput, 3),
            "samples_ms": [round(s * 1e3, 4) for s in self.samples_s],
        }


def measure(fn: Callable[[], Any], items_per_call: int = 1, warmup: int = 2, iters: int = 20,
            max_seconds: float | None = None, min_iters: int = 3) -> Latency:
    """Call `fn` `warmup` times untimed, then up to `iters` times timed.

    `max_seconds` bounds the timed phase (slow cases stop after `min_iters` calls once it is spent),
    so one command can cover fast and slow models in a predictable time.
    """
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    start = time.perf_counter()
    for i in range(max(iters, 1)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if max_seconds is not None and i + 1 >= min_iters and time.perf_counter() - start > max_seconds:
            break
    return Latency(samples, items_per_call=items_per_call, warmup=warmup)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(result, seconds) of one call: model load time, a whole-corpus run."""
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


# ---- memory ---------------------------------------------------------------------------------
def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (psutil, else /proc/self/statm; 0 where neither works)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return 0.0


class PeakRss:
    """Context manager sampling this process's RSS in a thread: the peak *during* the block.

    getrusage's high-water mark never goes down, so it cannot tell two cases in one process apart;
    sampling every few milliseconds can (it may miss a spike shorter than the interval).
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.before_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, current_rss_mb())
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "PeakRss":
        self.before_mb = self.peak_mb = current_rss_mb()
        self._thread = threading.Thread(target=self._sample, name="radedge-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())

    def to_dict(self) -> dict[str, float]:
        return {"rss_before_mb": round(self.before_mb, 1), "peak_rss_mb": round(self.peak_mb, 1)}


# ---- the machine ----------------------------------------------------------------------------
def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.split("\n\n")[0].splitlines())}


def gpus() -> list[dict[str, str]]:
    """NVIDIA GPUs from nvidia-smi (name, memory, driver); [] without a GPU or the tool."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=name,memory.total,driver_version,compute_cap",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [[p.strip() for p in line.split(",")] for line in out.stdout.strip().splitlines()]
    return [dict(zip(("name", "memory", "driver", "compute_capability"), parts)) for parts in rows if len(parts) >= 3]


def machine_info() -> dict[str, Any]:
    """What every result is recorded with: CPU model and kernel-relevant flags, cores, memory,
    Python / numpy / onnxruntime versions and providers, GPUs."""
    cpu = _cpuinfo()
    flags = set((cpu.get("flags") or cpu.get("Features") or "").split())
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
        memory_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        physical, memory_gb = None, None
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = os.cpu_count()
    info: dict[str, Any] = {
        "hostname_hash": hashlib.sha256(platform.node().encode()).hexdigest()[:8],
        "platform": platform.platform(),
        "cpu_model": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_flags": sorted(f for f in CPU_FLAGS if f in flags),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "physical_cores": physical,
        "memory_gb": memory_gb,
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "gpus": gpus(),
    }
    try:
        import onnxruntime as ort

        info["onnxruntime"] = ort.__version__
        info["onnxruntime_providers"] = ort.get_available_providers()
    except ImportError:
        info["onnxruntime"] = None
    return info


def describe_machine(info: Mapping[str, Any]) -> str:
    """One line naming the hardware a number was measured on (the GPU first when there is one)."""
    cpu = f"{info.get('cpu_model')} ({info.get('usable_cpus')} CPUs; {', '.join(info.get('cpu_flags', [])) or 'no flags'})"
    gpu = "; ".join(g["name"] for g in info.get("gpus", []))
    return f"{gpu} + {cpu}" if gpu else cpu


# ---- the graph on synthetic inputs ------------------------------------------------------------
def synthetic_feeds(inputs: Sequence[TensorSpec], batch: int, sequence: int | None = None,
                    vocab_size: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs with the graph's dtypes and shapes: `batch` and `sequence` fill symbolic axes.

    Token ids avoid the first 5 ids (special tokens); attention masks are all ones, so every
    position is computed, as in a padded-to-length batch.
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        shape = []
        for dim in spec.shape:
            if dim == "batch":
                shape.append(batch)
            elif isinstance(dim, str):
                if sequence is None:
                    raise ValueError(f"input {spec.name!r} has a sequence axis: give a sequence length")
                shape.append(sequence)
            else:
                shape.append(int(dim))
        dtype = np.dtype(spec.dtype)
        if "mask" in spec.name:
            feeds[spec.name] = np.ones(shape, dtype=dtype)
        elif "type" in spec.name and np.issubdtype(dtype, np.integer):  # token_type_ids
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
        elif np.issubdtype(dtype, np.integer):
            feeds[spec.name] = rng.integers(5, max(vocab_size, 6), size=shape).astype(dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def tokenizer_vocab_size(model_dir: str | os.PathLike, tokenizer_file: str | None) -> int:
    """Vocabulary size of a report model's tokenizer (for valid random token ids); 1000 if unreadable."""
    if not tokenizer_file:
        return 1000
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(Path(model_dir) / tokenizer_file)).get_vocab_size()
    except Exception:  # a broken tokenizer is the labeler's error to report, not the benchmark's
        return 1000


def bench_backend(backend: Any, *, task: str, model: str, precision: str, batch_sizes: Sequence[int],
                  seq_lens: Sequence[int] = (128,), vocab_size: int = 1000, warmup: int = 2, iters: int = 20,
                  max_seconds: float | None = 10.0) -> list[dict[str, Any]]:
    """Time `backend.run` on synthetic inputs over batch sizes (x sequence lengths for report models).

    One JSON-ready row per case: what ran (task, model, backend, device, precision, batch, sequence,
    image_size, kind), Latency.to_dict() and the peak RSS while it ran."""
    sequential = any(isinstance(d, str) and d != "batch" for spec in backend.inputs for d in spec.shape)
    fixed = [d for d in backend.inputs[0].shape if isinstance(d, int)]
    image_size = None if sequential or not fixed else fixed[-1]
    rows: list[dict[str, Any]] = []
    for seq in (seq_lens if sequential else (None,)):
        for batch in batch_sizes:
            feeds = synthetic_feeds(backend.inputs, batch, seq, vocab_size=vocab_size)
            with PeakRss() as rss:
                latency = measure(lambda: backend.run(feeds), items_per_call=batch, warmup=warmup, iters=iters,
                                  max_seconds=max_seconds)
            rows.append({"task": task, "model": model, "backend": getattr(backend, "name", "?"),
                         "device": getattr(backend, "device", "cpu"), "precision": precision, "batch": batch,
                         "sequence": seq, "image_size": image_size, "kind": "model",
                         **latency.to_dict(), **rss.to_dict()})
    return rows


def bench_model(name_or_path: str, task: str, *, backend: str = "onnxruntime", device: str = "cpu",
                threads: int | None = None, batch_sizes: Sequence[int] = (1, 8, 32),
                seq_lens: Sequence[int] = (128,), warmup: int = 2, iters: int = 20,
                max_seconds: float | None = 10.0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load an installed model the way the pipelines do (sha256 check included) and time its graph.

    Returns (model record: path, precision, backend, load time and RSS, size; the rows of bench_backend).
    """
    from .registry import open_model

    with PeakRss() as rss:
        loaded, load_s = timed(lambda: open_model(name_or_path, task, backend=backend, device=device,
                                                  threads=threads))
    manifest = loaded.manifest
    vocab = tokenizer_vocab_size(loaded.path, manifest.tokenizer) if task == "report-labels" else 1000
    if task == "report-labels" and manifest.max_length:
        seq_lens = [s for s in seq_lens if s <= manifest.max_length] or [manifest.max_length]
    rows = bench_backend(loaded.backend, task=task, model=manifest.name, precision=manifest.precision,
                         batch_sizes=batch_sizes, seq_lens=seq_lens, vocab_size=vocab, warmup=warmup,
                         iters=iters, max_seconds=max_seconds)
    files = [Path(loaded.path) / rel for rel in manifest.files]
    record = {"model": manifest.name, "path": str(loaded.path), "task": task, "precision": manifest.precision,
              "backend": loaded.backend.name, "device": loaded.backend.device,
              "providers": getattr(loaded.backend, "providers", None), "load_s": round(load_s, 4),
              "model_bytes": sum(f.stat().st_size for f in files if f.is_file()),
              "max_length": manifest.max_length, **{f"load_{k}": v for k, v in rss.to_dict().items()}}
    return record, rows


# ---- output ---------------------------------------------------------------------------------
def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table: `columns` are (key, header); floats get 3 significant-ish digits."""

    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.1f}" if abs(v) >= 100 else f"{v:.3g}" if abs(v) >= 0.001 else f"{v:.2g}"
        return str(v)

    body = [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max([len(h)] + [len(b[i]) for b in body]) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(b, widths))) for b in body]
    return "\n".join(lines)


CASE_COLUMNS = (("model", "model"), ("backend", "backend"), ("device", "device"), ("precision", "prec"),
                ("batch", "batch"), ("sequence", "seq"), ("image_size", "size"), ("p50_ms", "p50 ms"),
                ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("throughput_per_s", "items/s"),
                ("peak_rss_mb", "peak RSS MiB"))

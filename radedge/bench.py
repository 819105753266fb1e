"""Latency measurement on the machine that runs the models: the core of `radedge bench` and `benchmarks/`.

Everything here is runtime-side (numpy, onnxruntime, the standard library; psutil when installed),
so a hospital can time the installed models on its own hardware without the source checkout or torch.

Method: a few untimed warm-up calls (allocators, thread pools, onnxruntime's lazy kernels), then
repeated timed calls. Latency percentiles come from the per-call times; throughput is items per call
divided by the *median* call time, which is robust to other processes sharing the CPU.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
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
    """Resident set size of this process now, in MiB (psutil, else /proc/self/statm)."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        try:
            pages = int(Path("/proc/self/statm").read_text().split()[1])
            return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, ValueError, IndexError):
            return lifetime_peak_rss_mb()


def lifetime_peak_rss_mb() -> float:
    """The process's high-water RSS since it started (getrusage), in MiB; 0 where unsupported."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / 2**20
    except (ImportError, OSError):
        return 0.0


class PeakRss:
    """Context manager sampling this process's RSS in a thread: the peak *during* the block.

    getrusage's high-water mark never goes down, so it cannot tell two cases in one process apart;
    sampling every few milliseconds can (it may miss a spike shorter than the interval).
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.before_mb = 0.0
        self.peak_mb = 0.0
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


# ---- start-up -------------------------------------------------------------------------------
def import_time_s(module: str = "radedge", repeats: int = 5, python: str | None = None) -> dict[str, Any]:
    """Seconds to `import module` in a fresh interpreter (median of `repeats` subprocesses).

    Measured inside the child around the import statement only, so interpreter start-up is excluded.
    """
    code = ("import time; t = time.perf_counter(); import " + module +
            "; print(repr(time.perf_counter() - t))")
    times: list[float] = []
    for _ in range(repeats):
        out = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return {"module": module, "median_s": round(statistics.median(times), 4), "repeats": repeats,
            "samples_s": [round(t, 4) for t in times]}


# ---- the machine ----------------------------------------------------------------------------
def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        info[key.strip()] = value.strip()
    return info


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
    rows = []
    for line in out.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            rows.append(dict(zip(("name", "memory", "driver", "compute_capability"), parts)))
    return rows


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
        "hostname_hash": _short_hash(platform.node()),
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


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]


def describe_machine(info: Mapping[str, Any]) -> str:
    """One line naming the hardware a number was measured on (the GPU first when there is one)."""
    cpu = f"{info.get('cpu_model')} ({info.get('usable_cpus')} CPUs; {', '.join(info.get('cpu_flags', [])) or 'no flags'})"
    gpu = "; ".join(g["name"] for g in info.get("gpus", []))
    return f"{gpu} + {cpu}" if gpu else cpu


# ---- inputs ---------------------------------------------------------------------------------
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
            elif dim == "sequence" or isinstance(dim, str):
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


def has_sequence_axis(inputs: Sequence[TensorSpec]) -> bool:
    return any(isinstance(d, str) and d != "batch" for spec in inputs for d in spec.shape)


def tokenizer_vocab_size(model_dir: str | os.PathLike, tokenizer_file: str | None) -> int:
    """Vocabulary size of a report model's tokenizer (for valid random token ids); 1000 if unreadable."""
    if not tokenizer_file:
        return 1000
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(Path(model_dir) / tokenizer_file)).get_vocab_size()
    except Exception:  # a broken tokenizer is the labeler's error to report, not the benchmark's
        return 1000


# ---- cases ----------------------------------------------------------------------------------
@dataclass
class Case:
    """One measured configuration and its result, as one JSON-ready row."""

    task: str
    model: str
    backend: str
    device: str
    precision: str
    batch: int
    sequence: int | None = None
    image_size: int | None = None
    kind: str = "model"  # model: the graph alone on synthetic inputs; end-to-end: text/pixels to labels
    latency: Latency | None = None
    memory: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("task", "model", "backend", "device", "precision", "batch",
                                          "sequence", "image_size", "kind")}
        d.update(self.latency.to_dict() if self.latency else {})
        d.update(self.memory)
        d.update(self.extra)
        return d


def bench_backend(backend: Any, *, task: str, model: str, precision: str, batch_sizes: Sequence[int],
                  seq_lens: Sequence[int] = (128,), vocab_size: int = 1000, warmup: int = 2, iters: int = 20,
                  max_seconds: float | None = 10.0) -> list[Case]:
    """Time `backend.run` on synthetic inputs over batch sizes (x sequence lengths for report models)."""
    cases: list[Case] = []
    sequential = has_sequence_axis(backend.inputs)
    image_size = None
    if not sequential:
        dims = [d for d in backend.inputs[0].shape if isinstance(d, int)]
        image_size = dims[-1] if dims else None
    for seq in (seq_lens if sequential else (None,)):
        for batch in batch_sizes:
            feeds = synthetic_feeds(backend.inputs, batch, seq, vocab_size=vocab_size)
            with PeakRss() as rss:
                latency = measure(lambda: backend.run(feeds), items_per_call=batch, warmup=warmup, iters=iters,
                                  max_seconds=max_seconds)
            cases.append(Case(task=task, model=model, backend=getattr(backend, "name", "?"),
                              device=getattr(backend, "device", "cpu"), precision=precision, batch=batch,
                              sequence=seq, image_size=image_size, latency=latency, memory=rss.to_dict()))
    return cases


def parse_int_list(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]; raises ValueError on anything else."""
    values = [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"expected positive integers separated by commas, got {text!r}")
    return values


def bench_model(name_or_path: str, task: str, *, backend: str = "onnxruntime", device: str = "cpu",
                threads: int | None = None, batch_sizes: Sequence[int] = (1, 8, 32),
                seq_lens: Sequence[int] = (128,), warmup: int = 2, iters: int = 20,
                max_seconds: float | None = 10.0, label: str | None = None) -> tuple[dict[str, Any], list[Case]]:
    """Load an installed model the way the pipelines do (sha256 check included) and time its graph.

    Returns (model record: path, precision, load time, RSS, FLOP-free facts; the measured cases).
    """
    from .registry import open_model

    with PeakRss() as rss:
        loaded, load_s = timed(lambda: open_model(name_or_path, task, backend=backend, device=device,
                                                  threads=threads))
    manifest = loaded.manifest
    vocab = tokenizer_vocab_size(loaded.path, manifest.tokenizer) if task == "report-labels" else 1000
    if task == "report-labels" and manifest.max_length:
        seq_lens = [s for s in seq_lens if s <= manifest.max_length] or [manifest.max_length]
    name = label or manifest.name
    cases = bench_backend(loaded.backend, task=task, model=name, precision=manifest.precision,
                          batch_sizes=batch_sizes, seq_lens=seq_lens, vocab_size=vocab, warmup=warmup,
                          iters=iters, max_seconds=max_seconds)
    record = {"model": name, "path": str(loaded.path), "task": task, "precision": manifest.precision,
              "backend": loaded.backend.name, "device": loaded.backend.device,
              "providers": getattr(loaded.backend, "providers", None),
              "load_s": round(load_s, 4), "model_bytes": _folder_bytes(loaded.path, manifest.files),
              "max_length": manifest.max_length, **{f"load_{k}": v for k, v in rss.to_dict().items()}}
    return record, cases


def _folder_bytes(folder: Path, files: Mapping[str, str]) -> int:
    return sum((Path(folder) / rel).stat().st_size for rel in files if (Path(folder) / rel).is_file())


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


CASE_COLUMNS = (("model", "model"), ("kind", "kind"), ("backend", "backend"), ("device", "device"), ("precision", "prec"),
                ("batch", "batch"), ("sequence", "seq"), ("image_size", "size"), ("p50_ms", "p50 ms"),
                ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("throughput_per_s", "items/s"),
                ("peak_rss_mb", "peak RSS MiB"))


def bench_pipeline(name_or_path: str, task: str, inputs: str | os.PathLike, *, backend: str = "onnxruntime",
                   device: str = "cpu", threads: int | None = None, limit: int = 1000, warmup: int = 1,
                   iters: int = 3, max_seconds: float | None = 60.0) -> tuple[dict[str, Any], Case]:
    """End to end on the user's own inputs: reports (any `radedge label-reports` input) through
    ReportLabeler, or a folder of DICOM / PNG / JPEG files through ImageScorer; `limit` items at most.

    `name_or_path` may be "rules" for reports. Returns (load record, one end-to-end case: a call
    labels or scores all the items).
    """
    import itertools

    with PeakRss() as rss:
        if task == "report-labels":
            from .io.readers import read_reports
            from .reports.labeler import ReportLabeler

            items: list[Any] = [r for _, r in itertools.islice(read_reports(inputs), limit)]
            pipeline, load_s = timed(lambda: ReportLabeler.load(name_or_path, backend=backend, device=device,
                                                                threads=threads))
        else:
            from .images.scorer import ImageScorer
            from .images.walk import walk_files

            items = [str(p) for p in itertools.islice(walk_files(inputs), limit)]
            pipeline, load_s = timed(lambda: ImageScorer.load(name_or_path, backend=backend, device=device,
                                                              threads=threads))
        if not items:
            raise ValueError(f"{inputs}: no inputs found")
        latency = measure(lambda: pipeline(items), items_per_call=len(items), warmup=warmup, iters=iters,
                          max_seconds=max_seconds, min_iters=1)
    label = getattr(pipeline, "name", None) or Path(str(name_or_path)).name
    engine = "python" if str(name_or_path) == "rules" else backend
    case = Case(task=task, model=label, backend=engine, device=device, precision="-", batch=len(items),
                kind="end-to-end", latency=latency, memory=rss.to_dict(), extra={"inputs": str(inputs)})
    return {"model": label, "task": task, "load_s": round(load_s, 4), "backend": backend, "device": device}, case

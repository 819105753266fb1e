"""The graph-only latency grid: every model variant this machine can run x batch size x sequence length.

Variants: a model folder ships one `model.onnx` (its manifest's precision). Other `.onnx` files kept beside
it by the export scripts (e.g. the fp32 graph an int8 model was quantized from) are measured too, so int8
and fp32 are compared side by side; the precision of such a file is read from its graph. GPU variants
appear only when the hardware and libraries are present. The shipped report model ships int8 only: its
fp32 reference is found from the trained student in runs/ (`report_fp32_reference`).

Each variant is loaded (timed, with its RSS) and its graph timed by radedge.bench.bench_backend, the
same code `radedge bench` runs on a user's machine.
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from radedge import registry
from radedge.bench import PeakRss, bench_backend, gpus, timed, tokenizer_vocab_size
from radedge.manifest import Manifest, sha256_file

from .data import ROOT, rel

INT8_OPS = {"MatMulInteger", "QLinearMatMul", "ConvInteger", "QLinearConv", "DynamicQuantizeLinear",
            "DequantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm"}


@dataclass(frozen=True)
class Variant:
    model: str
    task: str
    folder: Path
    onnx: Path
    precision: str
    backend: str = "onnxruntime"  # or "tensorrt" (native plan)
    device: str = "cpu"
    provider: str | None = None  # onnxruntime execution provider key: cuda | tensorrt
    shipped: bool = True  # the manifest's model.onnx (what `radedge` runs by default)

    @property
    def engine(self) -> str:
        """Short name of what runs the graph: ort-cpu, ort-cuda, ort-trt, tensorrt."""
        if self.backend == "tensorrt":
            return "tensorrt"
        return {"cuda": "ort-cuda", "tensorrt": "ort-trt"}.get(self.provider or "", f"ort-{self.device}")

    @property
    def label(self) -> str:
        kept = "" if self.shipped or self.onnx.name == "model.onnx" else f" ({self.onnx.name})"
        return f"{self.model} {self.precision} {self.engine}{kept}"

    @property
    def through_registry(self) -> bool:
        """Whether the public loader (registry.open_model) opens exactly this variant; else the harness
        opens its graph itself (a kept fp32 file, an onnxruntime TensorRT EP, a TensorRT plan of a given
        precision)."""
        return self.shipped and self.backend == "onnxruntime" and self.provider != "tensorrt"

    def open(self, threads: int | None = None) -> tuple[Any, float]:
        """(backend, load seconds); the shipped graph loads through the registry (sha256 check included).
        A native TensorRT variant's load time includes building its plan when none is cached."""
        if self.backend == "tensorrt":
            from runtimes.tensorrt import backend_for

            return timed(lambda: backend_for(self.folder, precision=self.precision))
        if self.through_registry:
            loaded, seconds = timed(lambda: registry.open_model(self.folder, self.task, backend=self.backend,
                                                                device=self.device, threads=threads))
            return loaded.backend, seconds
        from radedge.backends.onnxruntime import OnnxRuntimeBackend

        return timed(lambda: OnnxRuntimeBackend(self.onnx, device=self.device, threads=threads,
                                                provider=self.provider))


def graph_precision(path: Path) -> str:
    """int8 when the graph holds quantized operators, else fp16 / fp32 from its largest initializer."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(n.op_type in INT8_OPS for n in model.graph.node):
        return "int8"
    biggest = max(model.graph.initializer, key=lambda t: len(t.raw_data) or len(t.float_data), default=None)
    return "fp16" if biggest is not None and biggest.data_type == onnx.TensorProto.FLOAT16 else "fp32"


def gpu_engines() -> list[tuple[str, str, str | None]]:
    """(backend, device, provider) for each GPU path present: onnxruntime CUDA / TensorRT EPs, native TensorRT."""
    if not gpus():
        return []
    import onnxruntime as ort

    available = ort.get_available_providers()
    engines: list[tuple[str, str, str | None]] = []
    if "CUDAExecutionProvider" in available:
        engines.append(("onnxruntime", "cuda", "cuda"))
    if "TensorrtExecutionProvider" in available:
        engines.append(("onnxruntime", "cuda", "tensorrt"))
    if importlib.util.find_spec("tensorrt") is not None:
        from radedge.backends.plans import PRECISIONS

        engines += [("tensorrt", "cuda", precision) for precision in PRECISIONS]  # provider slot: plan precision
    return engines


def model_entries(root: Path | None = None, extra: Sequence[Path] = ()) -> list[registry.ModelEntry]:
    """Model folders of the registry's search path (or only those directly under `root`), then `extra`."""
    if root is None:
        entries = registry.list_models()
    else:
        entries = [registry.ModelEntry(p.name, p, Manifest.read(p)) for p in sorted(Path(root).iterdir())
                   if (p / "manifest.json").is_file()]
    extras = [(Path(p), Manifest.read(p)) for p in extra]  # named by their manifests (folder names vary)
    return entries + [registry.ModelEntry(m.name, p, m) for p, m in extras]


def discover(task: str | None = None, include_gpu: bool = True, root: Path | None = None,
             extra: Sequence[Path] = ()) -> list[Variant]:
    """Variants of every model on the search path (or under `root`) and of the `extra` model folders,
    optionally of one task only."""
    variants: list[Variant] = []
    engines = [("onnxruntime", "cpu", None)] + (gpu_engines() if include_gpu else [])
    for entry in model_entries(root, extra):
        manifest = entry.manifest
        if manifest is None or (task and manifest.task != task):
            continue
        files = [(entry.path / "model.onnx", manifest.precision, True)]
        files += [(p, graph_precision(p), False) for p in sorted(entry.path.rglob("*.onnx"))
                  if p.name != "model.onnx" or p.parent != entry.path]
        for onnx_path, precision, shipped in files:
            for backend, device, provider in engines:
                if backend == "tensorrt":
                    if shipped:  # plans are built from the shipped graph, at each plan precision
                        variants.append(Variant(entry.name, manifest.task, entry.path, onnx_path, str(provider),
                                                backend, device, None, shipped))
                    continue
                variants.append(Variant(entry.name, manifest.task, entry.path, onnx_path, precision, backend,
                                        device, provider, shipped))
    return variants


def shipped_manifest(variant: Variant) -> Manifest:
    return Manifest.read(variant.folder)


# ---- the grid -------------------------------------------------------------------------------------
def model_record(variant: Variant, load_s: float, rss: PeakRss) -> dict[str, Any]:
    manifest = shipped_manifest(variant)
    return {
        "model": variant.model, "task": variant.task, "precision": variant.precision, "engine": variant.engine,
        "backend": variant.backend, "device": variant.device, "onnx": rel(variant.onnx), "shipped": variant.shipped,
        "label": variant.label, "load_s": round(load_s, 4), "load_peak_rss_mb": round(rss.peak_mb, 1),
        "model_bytes": variant.onnx.stat().st_size, "max_length": manifest.max_length,
        "image_size": (manifest.preprocess or {}).get("size"),
    }


def run_variant(variant: Variant, batch_sizes: Sequence[int], seq_lens: Sequence[int], iters: int, warmup: int,
                max_seconds: float, threads: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load one variant (timed, with its RSS) and time its graph over the grid; meant to run in a fresh
    process (benchmarks.run.fresh), so the RSS is this model's and the load time a first load's."""
    import onnxruntime  # noqa: F401  (imported before the load is timed: an import is not a model load)

    manifest = shipped_manifest(variant)
    with PeakRss() as rss:
        backend, load_s = variant.open(threads)
    record = model_record(variant, load_s, rss)
    vocab = tokenizer_vocab_size(variant.folder, manifest.tokenizer) if manifest.tokenizer else 1000
    lens = [s for s in seq_lens if not manifest.max_length or s <= manifest.max_length] or [manifest.max_length]
    rows = bench_backend(backend, task=variant.task, model=variant.model, precision=variant.precision,
                         batch_sizes=batch_sizes, seq_lens=lens, vocab_size=vocab, warmup=warmup, iters=iters,
                         max_seconds=max_seconds)
    for row in rows:
        row.update(engine=variant.engine, shipped=variant.shipped, label=variant.label)
    del backend
    return record, rows


# ---- the fp32 reference of the shipped report student ---------------------------------------------
# The shipped report student is int8 only. To compare int8 with fp32 (and with the PyTorch model) in the
# same run, the trained student it was exported from is found in runs/ (the folder whose student.json
# matches the manifest's provenance, and whose tokenizer matches the shipped one) and used in fp32: the
# `fp32-model/` folder the export keeps beside it when present, else a re-export with
# export.reports.onnx.export_onnx / write_folder into runs/bench_models/<name>-fp32/ (cached). Nothing
# here is shipped; it needs the export extra (torch).
CACHE = ROOT / "runs" / "bench_models"
STUDENT_JSON = "student.json"


def _student_info(folder: Path) -> dict[str, Any]:
    info = json.loads((folder / STUDENT_JSON).read_text(encoding="utf-8"))
    return {k: v for k, v in info.items() if k != "history"}


def find_student(model_dir: Path, search: Path = ROOT / "runs") -> Path | None:
    """The trained student folder a shipped report model was exported from, or None."""
    manifest = Manifest.read(model_dir)
    wanted = (manifest.provenance or {}).get("student")
    tokenizer_sha = manifest.files.get(manifest.tokenizer or "tokenizer.json")
    if not search.is_dir():
        return None
    for info_file in sorted(search.rglob(STUDENT_JSON)):
        folder = info_file.parent
        tok = folder / (manifest.tokenizer or "tokenizer.json")
        if not tok.is_file() or sha256_file(tok) != tokenizer_sha:
            continue
        try:
            if wanted is None or _student_info(folder) == wanted:
                return folder
        except (OSError, ValueError):
            continue
    return None


def kept_fp32(model_dir: Path, student_dir: Path) -> Path | None:
    """The fp32 model folder the export kept beside the student (the graph the int8 one was quantized
    from), when its tokenizer matches the shipped one."""
    manifest = Manifest.read(model_dir)
    folder = student_dir.parent / "fp32-model"
    if not (folder / "manifest.json").is_file():
        return None
    kept = Manifest.read(folder)
    same_tokenizer = kept.files.get(kept.tokenizer or "") == manifest.files.get(manifest.tokenizer or "")
    return folder if kept.precision == "fp32" and kept.task == manifest.task and same_tokenizer else None


def report_fp32_reference(model_dir: Path, student_dir: Path) -> Path:
    """The fp32 ONNX reference: the folder the export kept, else runs/bench_models/<name>-fp32 re-exported
    from the student with export.reports.onnx (rebuilt when the student changes)."""
    found = kept_fp32(model_dir, student_dir)
    if found is not None:
        return found
    from export.reports.onnx import export_onnx, write_folder
    from export.reports.student import load_student

    manifest = Manifest.read(model_dir)
    out = CACHE / f"{Path(model_dir).name}-fp32"
    stamp = sha256_file(student_dir / STUDENT_JSON)
    if (out / "manifest.json").is_file() and Manifest.read(out).provenance.get("student_json_sha256") == stamp:
        return out
    model, info = load_student(student_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = export_onnx(model, out / "fp32.onnx.tmp")
    write_folder(out, onnx_path, student_dir / (manifest.tokenizer or "tokenizer.json"), name=out.name,
                 precision="fp32", max_length=int(info["max_length"]), stride=int(info["stride"]),
                 provenance={"made_by": "benchmarks/latency.py (fp32 reference for timing and accuracy)",
                             "student_dir": str(student_dir.relative_to(ROOT)) if student_dir.is_relative_to(ROOT)
                             else str(student_dir), "student_json_sha256": stamp})
    onnx_path.unlink()
    return out

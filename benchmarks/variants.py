"""Every (model, precision, backend, device) this machine can run: the rows of the latency grid.

A model folder ships one `model.onnx` (its manifest's precision). Other `.onnx` files kept beside it
by the export scripts (e.g. the fp32 graph an int8 model was quantized from) are measured too, so
int8 and fp32 are compared side by side; the precision of such a file is read from its graph.
GPU variants appear only when the hardware and libraries are present.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from radedge import registry
from radedge.bench import gpus, timed
from radedge.manifest import Manifest

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
            from radedge.backends.tensorrt import TensorRTBackend

            manifest = Manifest.read(self.folder)
            manifest.verify_files(self.folder)
            return timed(lambda: TensorRTBackend.from_model_dir(self.folder, manifest, device="cuda",
                                                                precision=self.precision))
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
        from radedge.backends.tensorrt import PRECISIONS

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

"""`manifest.json`: what a shipped model is, how it was made, and how to feed it.

A model folder is trusted only when every file matches its recorded sha256 and the ONNX graph's
inputs and outputs match what the manifest declares.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import ChecksumError, ManifestError
from .labels import CLASSES, FINDINGS

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
TASKS = ("report-labels", "image-findings")
PRECISIONS = ("fp32", "fp16", "int8")
SYMBOLIC_AXES = ("batch", "sequence")
_NUMPY_DTYPES = {"float32", "float16", "int64", "int32", "uint8", "int8", "bool"}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, numpy dtype name, shape with ints or symbolic axis names."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TensorSpec":
        try:
            spec = cls(name=str(d["name"]), dtype=str(d["dtype"]), shape=tuple(d["shape"]))
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"tensor spec needs name, dtype and shape: {d!r}") from exc
        if spec.dtype not in _NUMPY_DTYPES:
            raise ManifestError(f"tensor {spec.name!r}: unsupported dtype {spec.dtype!r}")
        for dim in spec.shape:
            if not (isinstance(dim, int) and dim > 0) and dim not in SYMBOLIC_AXES:
                raise ManifestError(f"tensor {spec.name!r}: bad dimension {dim!r} (use ints or {SYMBOLIC_AXES})")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass
class Manifest:
    """The fields of DESIGN.md's manifest; unknown keys are kept in `extra` and written back."""

    name: str
    task: str
    files: dict[str, str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    precision: str = "fp32"
    labels: list[str] = field(default_factory=lambda: list(FINDINGS))
    classes: list[str] | None = None
    tokenizer: str | None = None
    max_length: int | None = None
    stride: int | None = None
    preprocess: dict[str, Any] | None = None
    thresholds: dict[str, float] | None = None
    # Image models: the findings trained and validated (the others are reported as not available),
    # per-finding probability calibration (radedge.images.calibration) and the out-of-distribution
    # check (radedge.images.ood). None = an older manifest: every finding, no calibration, no check.
    trained_findings: list[str] | None = None
    calibration: dict[str, dict[str, Any]] | None = None
    ood: dict[str, Any] | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    # ---- reading and validation -------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Manifest":
        if not isinstance(d, dict):
            raise ManifestError("manifest must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        missing = [k for k in ("name", "task", "files", "inputs", "outputs") if k not in d]
        if missing:
            raise ManifestError(f"manifest lacks required keys: {', '.join(missing)}")
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["inputs"] = [TensorSpec.from_dict(t) for t in d["inputs"]]
        kwargs["outputs"] = [TensorSpec.from_dict(t) for t in d["outputs"]]
        kwargs["extra"] = {k: v for k, v in d.items() if k not in known}
        manifest = cls(**kwargs)
        manifest.validate()
        return manifest

    @classmethod
    def read(cls, model_dir: str | os.PathLike) -> "Manifest":
        path = Path(model_dir) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ManifestError(f"{path}: no manifest.json") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc
        try:
            return cls.from_dict(data)
        except ManifestError as exc:
            raise ManifestError(f"{path}: {exc}") from exc

    def validate(self) -> None:
        if self.format_version != FORMAT_VERSION:
            raise ManifestError(f"format_version {self.format_version} is not supported (expected {FORMAT_VERSION})")
        if self.task not in TASKS:
            raise ManifestError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.precision not in PRECISIONS:
            raise ManifestError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if list(self.labels) != list(FINDINGS):
            raise ManifestError("labels must be the 14 CheXpert findings in DESIGN.md order")
        if not self.files or "model.onnx" not in self.files:
            raise ManifestError("files must list model.onnx with its sha256")
        if self.task == "report-labels":
            if list(self.classes or []) != list(CLASSES):
                raise ManifestError(f"report models need classes {list(CLASSES)}")
            if not self.tokenizer or not self.max_length:
                raise ManifestError("report models need tokenizer and max_length")
        if self.task == "image-findings" and not self.preprocess:
            raise ManifestError("image models need a preprocess section")
        if self.trained_findings is not None:
            unknown = [f for f in self.trained_findings if f not in FINDINGS]
            if unknown or not isinstance(self.trained_findings, list):
                raise ManifestError(f"trained_findings must list findings of the 14, got {unknown or self.trained_findings!r}")
        if self.calibration is not None:
            outside = [f for f in self.calibration if f not in (self.trained_findings or FINDINGS)]
            if outside:
                raise ManifestError(f"calibration for findings that are not trained: {outside}")
            from .images.calibration import check_calibration

            for name, spec in self.calibration.items():
                try:
                    check_calibration(spec)
                except (ValueError, KeyError, TypeError) as exc:
                    raise ManifestError(f"calibration of {name}: {exc}") from exc
        if self.ood is not None and ("file" not in self.ood or self.ood["file"] not in self.files):
            raise ManifestError("ood needs a 'file' that files lists with its sha256")

    # ---- writing ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        d["inputs"] = [t.to_dict() for t in self.inputs]
        d["outputs"] = [t.to_dict() for t in self.outputs]
        d = {k: v for k, v in d.items() if v is not None}
        d.update(self.extra)
        return d

    def write(self, model_dir: str | os.PathLike) -> Path:
        """Write manifest.json atomically (temp file, then rename)."""
        path = Path(model_dir) / MANIFEST_NAME
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    # ---- integrity -------------------------------------------------------------------------
    def verify_files(self, model_dir: str | os.PathLike) -> None:
        """Raise ChecksumError unless every listed file exists and matches its sha256."""
        for rel, expected in self.files.items():
            path = Path(model_dir) / rel
            if not path.is_file():
                raise ChecksumError(f"{path}: listed in the manifest but missing")
            actual = sha256_file(path)
            if actual != expected:
                raise ChecksumError(f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…")

    def check_graph(self, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]) -> None:
        """Compare the graph's declared tensors with the manifest's; symbolic axes match anything dynamic."""
        _compare_specs("input", self.inputs, inputs)
        _compare_specs("output", self.outputs, outputs)


def _compare_specs(kind: str, declared: Sequence[TensorSpec], actual: Sequence[TensorSpec]) -> None:
    by_name = {t.name: t for t in actual}
    if set(by_name) != {t.name for t in declared}:
        raise ManifestError(
            f"graph {kind}s {sorted(by_name)} differ from the manifest's {sorted(t.name for t in declared)}"
        )
    for want in declared:
        got = by_name[want.name]
        if got.dtype != want.dtype:
            raise ManifestError(f"{kind} {want.name!r}: graph dtype {got.dtype} != manifest {want.dtype}")
        if len(got.shape) != len(want.shape):
            raise ManifestError(f"{kind} {want.name!r}: graph rank {len(got.shape)} != manifest {len(want.shape)}")
        for g, w in zip(got.shape, want.shape):
            if isinstance(w, int) and isinstance(g, int) and g != w:
                raise ManifestError(f"{kind} {want.name!r}: graph shape {got.shape} != manifest {want.shape}")
            if isinstance(w, int) and not isinstance(g, int):
                raise ManifestError(f"{kind} {want.name!r}: graph axis is dynamic where the manifest fixes {w}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_hashes(model_dir: str | os.PathLike, names: Iterable[str]) -> dict[str, str]:
    """sha256 of each named file in a model folder, for writing a manifest."""
    return {name: sha256_file(Path(model_dir) / name) for name in names}

"""`manifest.json`: what a shipped model is, how it was made, and how to feed it.

A model folder is trusted only when every file matches its recorded sha256 and the ONNX graph's
inputs and outputs match what the manifest declares. The manifest itself (thresholds, preprocessing,
which files to trust) is protected the same way: `manifest.sha256`, written beside it by
`Manifest.write` (so every export writes it), holds its sha256, and a manifest that does not match
is not read. Files named in `files` are plain relative paths inside the folder (no `..`, no absolute
path, no link out of it), regular files, and the report tokenizer must be one of them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .errors import ChecksumError, InputError, ManifestError
from .io.files import open_regular, read_regular
from .labels import CLASSES, FINDINGS

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MANIFEST_SHA256_NAME = "manifest.sha256"  # "<sha256>  manifest.json", as sha256sum writes it
MAX_MANIFEST_BYTES = 1 << 20
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
    # The terms the model's files are under (an SPDX id; a model inherits its training data's terms,
    # e.g. CC-BY-NC-SA-4.0 for one trained on NC-SA images); None = not stated.
    licence: str | None = None
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
        """The manifest of a model folder, once its bytes match `manifest.sha256` (ManifestError if not)."""
        path = Path(model_dir) / MANIFEST_NAME
        try:
            raw = _read_small(path)
        except FileNotFoundError as exc:
            raise ManifestError(f"{path}: no manifest.json") from exc
        except OSError as exc:
            raise ManifestError(f"{path}: unreadable manifest ({exc})") from exc
        check_manifest_sha256(Path(model_dir), raw)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
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
        if not isinstance(self.files, dict) or "model.onnx" not in self.files:
            raise ManifestError("files must list model.onnx with its sha256")
        for rel, digest in self.files.items():
            check_relative(rel)
            if not (isinstance(digest, str) and len(digest) == 64):
                raise ManifestError(f"files[{rel!r}]: not a sha256 hex digest")
        if self.task == "report-labels":
            if list(self.classes or []) != list(CLASSES):
                raise ManifestError(f"report models need classes {list(CLASSES)}")
            if not self.tokenizer or not self.max_length:
                raise ManifestError("report models need tokenizer and max_length")
            if self.tokenizer not in self.files:
                raise ManifestError(f"tokenizer {self.tokenizer!r} is not in files: it would load unverified")
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
        """Write manifest.json atomically (temp file, then rename), then manifest.sha256 beside it."""
        path = Path(model_dir) / MANIFEST_NAME
        data = (json.dumps(self.to_dict(), indent=2) + "\n").encode("utf-8")
        for name, content in ((MANIFEST_NAME, data), (MANIFEST_SHA256_NAME, _sha256_line(data))):
            tmp = Path(model_dir) / (name + ".tmp")
            tmp.write_bytes(content)
            os.replace(tmp, Path(model_dir) / name)
        return path

    # ---- integrity -------------------------------------------------------------------------
    def verify_files(self, model_dir: str | os.PathLike) -> None:
        """Raise ChecksumError unless every listed file is a regular file inside the folder and
        matches its sha256."""
        for rel, expected in self.files.items():
            actual = sha256_file(inside(model_dir, rel))
            if actual != expected:
                path = Path(model_dir) / rel
                raise ChecksumError(f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…")

    def read_verified(self, model_dir: str | os.PathLike, rel: str) -> bytes:
        """The bytes of a listed file, checked against its sha256 as read (what is checked is what is used)."""
        if rel not in self.files:
            raise ManifestError(f"{rel!r} is not in the manifest's files: it cannot be verified")
        with open_in(model_dir, rel) as f:
            data = f.read()
        if hashlib.sha256(data).hexdigest() != self.files[rel]:
            raise ChecksumError(f"{Path(model_dir) / rel}: sha256 does not match the manifest's")
        return data

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


def check_relative(rel: Any) -> None:
    """ManifestError unless `rel` is a plain relative path (no '..', not absolute, no backslash)."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\0" in rel:
        raise ManifestError(f"files: {rel!r} is not a relative file name")
    parts = rel.split("/")
    if rel.startswith("/") or os.path.isabs(rel) or any(p in ("", ".", "..") for p in parts):
        raise ManifestError(f"files: {rel!r} must name a file inside the model folder")


def inside(model_dir: str | os.PathLike, rel: str) -> Path:
    """The path of `rel` in the model folder; ChecksumError when it is missing or (through links)
    leaves the folder."""
    check_relative(rel)
    folder = Path(model_dir).resolve()
    path = folder / rel
    if not path.exists():
        raise ChecksumError(f"{Path(model_dir) / rel}: listed in the manifest but missing")
    if folder not in path.resolve().parents:
        raise ChecksumError(f"{Path(model_dir) / rel}: a link out of the model folder")
    return path


def open_in(model_dir: str | os.PathLike, rel: str) -> Any:
    """A listed file opened for reading: inside the folder and a regular file (ChecksumError if not)."""
    path = inside(model_dir, rel)
    try:
        return open_regular(path)
    except InputError as exc:
        raise ChecksumError(f"{path}: {exc}") from exc


def _read_small(path: Path) -> bytes:
    """A manifest-sized regular file (OSError if not regular or too large)."""
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(path)
    try:
        return read_regular(path, MAX_MANIFEST_BYTES, path.name)
    except InputError as exc:
        raise OSError(str(exc)) from exc


def _sha256_line(data: bytes) -> bytes:
    return f"{hashlib.sha256(data).hexdigest()}  {MANIFEST_NAME}\n".encode("ascii")


def check_manifest_sha256(model_dir: Path, raw: bytes) -> None:
    """ManifestError unless `manifest.sha256` in the folder holds the sha256 of `raw` (the manifest's bytes)."""
    where = model_dir / MANIFEST_SHA256_NAME
    try:
        recorded = _read_small(where).decode("ascii", errors="replace").split()
    except OSError as exc:
        raise ManifestError(f"{where}: missing or unreadable, so {MANIFEST_NAME} cannot be trusted; "
                            f"re-export the model (Manifest.write writes it)") from exc
    actual = hashlib.sha256(raw).hexdigest()
    if not recorded or recorded[0].lower() != actual:
        raise ManifestError(f"{model_dir / MANIFEST_NAME}: sha256 {actual[:12]}… does not match {MANIFEST_SHA256_NAME}: "
                            f"the manifest was edited after export")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    try:
        f = open_regular(path)
    except InputError as exc:
        raise ChecksumError(f"{path}: {exc}") from exc
    with f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def tree_sha256(folder: str | os.PathLike) -> str:
    """One sha256 over every file under `folder` (relative names and contents, in sorted order)."""
    h = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + sha256_file(path).encode() + b"\n")
    return h.hexdigest()


def file_hashes(model_dir: str | os.PathLike, names: Iterable[str]) -> dict[str, str]:
    """sha256 of each named file in a model folder, for writing a manifest."""
    return {name: sha256_file(Path(model_dir) / name) for name in names}

"""Where models are found: `$RADEDGE_MODEL_DIR`, the checkout's `models/`, the installed package.

A model is named by its folder name or given as a path; `"default"` means the shipped default for
the task (DEFAULTS below).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ManifestError, ModelNotFoundError
from .manifest import MANIFEST_NAME, Manifest, sha256_file

if TYPE_CHECKING:
    from .backends import Backend

ENV_VAR = "RADEDGE_MODEL_DIR"
# The shipped default model folder for each task.
DEFAULTS = {"report-labels": "report-student", "image-findings": "image-vit"}


@dataclass(frozen=True)
class ModelEntry:
    name: str
    path: Path
    manifest: Manifest | None
    problem: str | None = None  # why the manifest could not be read


def search_path() -> list[Path]:
    """Folders searched for models, first match wins: $RADEDGE_MODEL_DIR (os.pathsep-separated),
    the source checkout's models/, then the models installed with the package."""
    dirs: list[Path] = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    here = Path(__file__).resolve().parent
    dirs.append(here.parent / "models")
    dirs.append(here / "shipped")  # non-editable installs copy models/ there (pyproject.toml)
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in seen:
            seen.append(d.resolve())
    return seen


def is_path(text: str) -> bool:
    """A model given as a path (it has a folder separator, or starts with '.' or '~'), not a name.

    A bare name is looked up on the search path only, never in the working directory: a folder
    called `report-student` where the command happens to run must not replace the shipped model."""
    seps = {os.sep, "/"} | ({os.altsep} if os.altsep else set())
    return any(sep in text for sep in seps) or text.startswith((".", "~"))


def resolve(name_or_path: str | os.PathLike, task: str) -> Path:
    """The model folder for a name, `"default"`, or a path (see `is_path`); raises ModelNotFoundError."""
    text = os.fspath(name_or_path) if isinstance(name_or_path, os.PathLike) else str(name_or_path)
    if isinstance(name_or_path, os.PathLike) and not is_path(text):
        text = os.path.join(os.curdir, text)  # a Path object is a path, even a bare one
    if text == "default":
        text = DEFAULTS[task]
    if is_path(text):
        candidate = Path(text).expanduser()
        if (candidate / MANIFEST_NAME).is_file():
            return candidate
        raise ModelNotFoundError(f"{candidate}: not a model folder (no {MANIFEST_NAME})")
    for root in search_path():
        folder = root / text
        if (folder / MANIFEST_NAME).is_file():
            return folder
    where = ", ".join(str(d) for d in search_path()) or "(no model folders found)"
    raise ModelNotFoundError(f"no model named {text!r} in {where}; set ${ENV_VAR} or pass a path")


def list_models() -> list[ModelEntry]:
    """Every model folder on the search path, shadowed names included only once."""
    entries: dict[str, ModelEntry] = {}
    for root in search_path():
        for folder in sorted(p for p in root.iterdir() if (p / MANIFEST_NAME).is_file()):
            if folder.name in entries:
                continue
            try:
                entries[folder.name] = ModelEntry(folder.name, folder, Manifest.read(folder))
            except ManifestError as exc:
                entries[folder.name] = ModelEntry(folder.name, folder, None, str(exc))
    return list(entries.values())


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    manifest: Manifest
    backend: "Backend"
    sha256: str = ""  # of manifest.json, which pins the sha256 of every other file

    @property
    def identity(self) -> dict[str, str]:
        """What an output records as the model that made it (resuming with another is refused)."""
        return {"name": self.manifest.name, "sha256": self.sha256, "model.onnx": self.manifest.files["model.onnx"]}


def open_model(name_or_path: str | os.PathLike, task: str, backend: str = "onnxruntime", device: str = "cpu",
               threads: int | None = None) -> LoadedModel:
    """Resolve, verify (sha256 of every file) and open a model; the one way pipelines load one."""
    return load_folder(resolve(name_or_path, task), task, backend=backend, device=device, threads=threads)


def load_folder(path: Path, task: str | None = None, backend: str = "onnxruntime", device: str = "cpu",
                threads: int | None = None) -> LoadedModel:
    """Read, verify and open one model folder; `task=None` accepts whatever task its manifest names."""
    from .backends import open_backend

    manifest = Manifest.read(path)
    if task is not None and manifest.task != task:
        raise ManifestError(f"{path}: a {manifest.task!r} model, not {task!r}")
    manifest.verify_files(path)
    return LoadedModel(path, manifest, open_backend(path, manifest, backend=backend, device=device, threads=threads),
                       sha256_file(Path(path) / MANIFEST_NAME))

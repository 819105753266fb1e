"""Reference models the shipped folders do not carry, rebuilt with the export helpers' own functions.

The shipped report student is int8 only. To compare int8 with fp32 (and with the PyTorch model) in
the same run, the trained student it was exported from is found in runs/ (the folder whose
student.json matches the manifest's provenance, and whose tokenizer matches the shipped one) and
used in fp32: the `fp32-model/` folder the export keeps beside it when present, else a re-export with
export.reports.onnx.export_onnx / write_folder into runs/bench_models/<name>-fp32/ (cached). Nothing here is shipped; it needs the export extra (torch).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radedge.manifest import Manifest, sha256_file

from .data import ROOT

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
                 provenance={"made_by": "benchmarks/references.py (fp32 reference for timing and accuracy)",
                             "student_dir": str(student_dir.relative_to(ROOT)) if student_dir.is_relative_to(ROOT)
                             else str(student_dir), "student_json_sha256": stamp})
    onnx_path.unlink()
    return out

"""What made an output: the input, the model (name and sha256) and the options that change records.

Written beside the output as `OUTPUT.meta.json` (`io.records.meta_path`) when a run starts, and
compared when a later run would resume the output: anything different (another input file, another
model, another format or cap) and the resume is refused, so one output never mixes two runs.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..io.files import open_regular


def input_identity(path: str | os.PathLike) -> dict[str, Any]:
    """A file by its content (sha256, streamed) wherever it lies; a folder by its real path."""
    path = Path(path)
    if path.is_dir():
        return {"folder": str(path.resolve())}
    h, size = hashlib.sha256(), 0
    try:
        with open_regular(path) as f:
            while block := f.read(1 << 20):
                h.update(block)
                size += len(block)
    except InputError as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return {"sha256": h.hexdigest(), "bytes": size}


def run_meta(command: str, input_path: str | os.PathLike, model: Mapping[str, Any],
             options: Mapping[str, Any]) -> dict[str, Any]:
    """The description an output is written with and resumed against."""
    return {"command": command, "input": input_identity(input_path), "model": dict(model), "options": dict(options)}


__all__ = ["input_identity", "run_meta"]

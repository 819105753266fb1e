"""Streaming, deterministic walk of an export folder: every regular file, one at a time.

Each directory is listed with `os.scandir` and sorted by name, so two runs visit files in the same
order (resume and record order depend on it); only the current chain of directories is held in
memory, never the whole tree. Symbolic links to files are followed; links to directories are not
(a PACS export has none, and following them could loop).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator


def walk_files(root: str | os.PathLike) -> Iterator[Path]:
    """Yield every file under `root` (recursively, sorted per directory); `root` may be a file."""
    top = Path(root)
    if not top.is_dir():
        if top.is_file():
            yield top
            return
        raise FileNotFoundError(f"{top}: no such file or folder")
    yield from _walk(top)


def _walk(folder: Path) -> Iterator[Path]:
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except PermissionError:
        return
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _walk(Path(entry.path))
            elif entry.is_file(follow_symlinks=True):
                yield Path(entry.path)
        except OSError:  # vanished or unreadable entry: the reader reports it
            yield Path(entry.path)


__all__ = ["walk_files"]

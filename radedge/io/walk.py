"""Streaming, deterministic walk of a folder: every entry that is not a folder, one at a time.

Each directory is listed with `os.scandir` and sorted (by name, or the caller's key), so two runs
visit files in the same order (resume and record order depend on it); only the current chain of
directories is held in memory, never the whole tree, and the walk is a loop, not a recursion, so
no folder depth ends it. Nothing is dropped silently: FIFOs, devices, sockets and dangling links
are yielded like files (the reader's `files.open_regular` turns each into that item's error
record), and a folder that cannot be listed is yielded with its error. Links to folders are
yielded, not followed (a link loop would never end); opening one says "not a regular file (a folder)".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple

from ..errors import InputError


class Entry(NamedTuple):
    """One walked path; `error` is set when it is a folder that could not be listed."""

    path: Path
    error: InputError | None = None


def walk_entries(root: str | os.PathLike, key: Callable[[str], Any] | None = None,
                 files_first: bool = False) -> Iterator[Entry]:
    """Every non-folder entry under `root`, depth first, each folder's entries sorted by `key`
    (default: the name); `files_first` visits a folder's files before its subfolders.
    `root` may be a file (then it is the only entry)."""
    top = Path(root)
    if not top.is_dir():
        if os.path.lexists(top):
            yield Entry(top)
            return
        raise FileNotFoundError(f"{top}: no such file or folder")
    stack = [_children(top, key, files_first)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif child[1]:
            stack.append(_children(child[0].path, key, files_first))
        else:
            yield child[0]


def _children(folder: Path, key: Callable[[str], Any] | None,
              files_first: bool) -> Iterator[tuple[Entry, bool]]:
    """(entry, is a folder to descend) for one folder's entries in walk order; one error entry
    when the folder cannot be listed."""
    try:
        with os.scandir(folder) as it:
            listed = [(e.name, _is_folder(e)) for e in it]
    except OSError as exc:
        return iter([(Entry(folder, InputError(f"cannot list this folder: {exc.strerror or exc}")), False)])
    order = key or (lambda name: name)
    listed.sort(key=lambda item: (item[1] and files_first, order(item[0])))
    return ((Entry(folder / name), is_dir) for name, is_dir in listed)


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:  # a vanished entry: the reader reports it
        return False


def walk_files(root: str | os.PathLike) -> Iterator[Path]:
    """The paths of `walk_entries` (an unlistable folder's path included: opening it reports why)."""
    return (entry.path for entry in walk_entries(root))


__all__ = ["Entry", "walk_entries", "walk_files"]

"""Append-only record outputs (CSV or JSONL) that survive a kill and resume where they stopped.

Each record is written and flushed as soon as it is known, so an interrupted run loses nothing it
had already reported. On reopening, the file is scanned as a stream (one line at a time, never
read whole): a torn last record (the process died mid-write, even inside a UTF-8 character) is cut
off, and the complete records are offered again, re-read lazily, so the caller can skip the inputs
they cover.

What made an output is recorded beside it, in `OUTPUT.meta.json` (`meta_path`; the same for CSV and
JSONL, so neither format gains a foreign record): the caller's `meta` (input, model name and
sha256, options). Resuming is refused when it differs, or when the output has records and no such
file. An output must be a regular file (or absent); an output with other hard links is never
appended to, and `--overwrite` replaces the file (unlink, then create), so another name of the same
inode, such as the input, keeps its content.
"""
from __future__ import annotations

import csv
import io
import json
import os
import stat
from itertools import islice
from pathlib import Path
from typing import IO, Any, Iterator, Mapping, Sequence

from .files import kind_of

FORMATS = (".csv", ".jsonl")
META_SUFFIX = ".meta.json"


def output_format(path: str | os.PathLike) -> str:
    """'.csv' or '.jsonl' from the output path; anything else is a usage error (ValueError)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: output must end in .csv or .jsonl")
    return suffix


def meta_path(path: str | os.PathLike) -> Path:
    """Where the description of what made an output is kept: `OUTPUT.meta.json`."""
    path = Path(path)
    return path.with_name(path.name + META_SUFFIX)


def _lines(f: IO[bytes]) -> Iterator[tuple[str, int]]:
    """("\\n"-terminated line as text, byte offset after it) while lines are whole and valid UTF-8."""
    end = 0
    for raw in f:
        if not raw.endswith(b"\n"):
            return  # torn: the process died while writing it
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return  # torn inside a character (a full disk), or not ours: recomputed from here
        end += len(raw)
        yield line, end


def _scan(path: Path, fmt: str) -> Iterator[tuple[Any, int]]:
    """(complete record, byte offset after it) in file order: JSON objects, or CSV rows (lists)."""
    with open(path, "rb") as f:
        if fmt == ".jsonl":
            for line, end in _lines(f):
                try:
                    record = json.loads(line)
                except ValueError:  # a broken line ends what can be trusted
                    return
                yield record, end
            return
        consumed = 0

        def lines() -> Iterator[str]:
            nonlocal consumed
            for line, consumed in _lines(f):  # noqa: B007 (consumed is read by the loop below)
                yield line

        reader = csv.reader(lines(), strict=True)  # a row torn inside quotes is an error, not a row
        try:
            for row in reader:
                yield row, consumed
        except csv.Error:
            return


class ExistingRecords:
    """The complete records of a resumed output: `len()` is known, iterating re-reads them from the
    file as a stream (dicts; CSV cells as strings), so resuming holds no record it is not using."""

    def __init__(self, path: Path, fmt: str, columns: Sequence[str], count: int, skip: int) -> None:
        self._path, self._fmt, self._columns, self._count, self._skip = path, fmt, list(columns), count, skip

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if not self._count:
            return
        records = islice(_scan(self._path, self._fmt), self._skip, self._skip + self._count)
        for record, _ in records:
            yield dict(zip(self._columns, record)) if self._fmt == ".csv" else record


class RecordWriter:
    """Append records to a .csv (fixed columns, header first) or .jsonl file, resuming if asked.

    `existing` holds the complete records found when the file was reopened with resume=True
    (`ExistingRecords`). Without resume an existing file is replaced. `meta` (JSON-able) says what
    makes this output; with it, resuming an output made by something else raises ValueError.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str] | None = None, resume: bool = True,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        if self.format == ".csv" and not columns:
            raise ValueError("CSV output needs its columns")
        self.columns = list(columns or [])
        self.existing = ExistingRecords(self.path, self.format, self.columns, 0, 0)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        exists = _check_output(self.path, appending=resume)
        keep = self._recover() if resume and exists else 0
        if keep and meta is not None:
            _check_meta(self.path, meta)
        if not keep and exists:
            os.unlink(self.path)  # never truncate in place: another name of this inode keeps its content
        if meta is not None and not keep:
            _write_meta(self.path, meta)
        self._file = open(self.path, "r+" if keep else "x", encoding="utf-8", errors="backslashreplace",
                          newline="")
        if keep:
            self._file.seek(keep)
            self._file.truncate()
        self._csv = self._quoted = None
        if self.format == ".csv":
            self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
            # A bare "\r" in a cell is not quoted by QUOTE_MINIMAL with a "\n" terminator, and would
            # split the row for every reader: such rows are written fully quoted.
            self._quoted = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore",
                                          lineterminator="\n", quoting=csv.QUOTE_ALL)
        if self._csv is not None and not keep:
            self._csv.writeheader()
            self._file.flush()

    def _recover(self) -> int:
        """Scan the complete records; return the byte length to keep (0 = start afresh)."""
        count, end, header = 0, 0, None
        for record, end in _scan(self.path, self.format):
            if self.format == ".csv" and header is None:
                header = record
                if header != self.columns:
                    raise ValueError(f"{self.path}: existing CSV has other columns; use a new output or --overwrite")
                continue
            count += 1
        if self.format == ".csv" and header is None:
            return 0
        self.existing = ExistingRecords(self.path, self.format, self.columns, count, 1 if header else 0)
        return end

    def write(self, record: Mapping[str, Any]) -> None:
        if self._csv is not None:
            row = {k: "" if v is None else v for k, v in record.items()}
            quoted = any(isinstance(v, str) and "\r" in v for v in row.values())
            (self._quoted if quoted else self._csv).writerow(row)
        else:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_output(path: Path, appending: bool) -> bool:
    """Whether `path` exists; ValueError when it is not a regular file (a FIFO, /dev/full, a folder,
    a dangling link) or, when it would be appended to, has other hard links."""
    if not os.path.lexists(path):
        return False
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValueError(f"{path}: the output is a link to nothing or unreadable ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: the output is not a regular file ({kind_of(st.st_mode)})")
    if appending and st.st_nlink > 1 and st.st_size:
        raise ValueError(f"{path}: the output has {st.st_nlink - 1} other hard link(s); appending would change "
                         f"them too; use another output or --overwrite")
    return True


def _canonical(meta: Mapping[str, Any]) -> Any:
    return json.loads(json.dumps(meta, sort_keys=True, default=str))


def _write_meta(path: Path, meta: Mapping[str, Any]) -> None:
    target = meta_path(path)
    tmp = target.with_name(target.name + ".tmp")
    for stale in (tmp, target):  # never write through a link left at either name
        if os.path.lexists(stale):
            os.unlink(stale)
    with open(tmp, "x", encoding="utf-8") as f:
        f.write(json.dumps(_canonical(meta), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, target)


def _check_meta(path: Path, meta: Mapping[str, Any]) -> None:
    """ValueError unless `OUTPUT.meta.json` says this output was made by exactly `meta`."""
    target = meta_path(path)
    try:
        with open(target, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise OSError("not a regular file")
            recorded = json.loads(f.read(1 << 20).decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: has records but no readable {target.name} saying what made them, so it "
                         f"cannot be resumed safely; use --overwrite or another output") from exc
    wanted = _canonical(meta)
    if recorded != wanted:
        keys = sorted(k for k in set(recorded) | set(wanted) if recorded.get(k) != wanted.get(k)) \
            if isinstance(recorded, dict) else ["(all)"]
        raise ValueError(f"{path}: was made with another {', '.join(keys)} ({target.name}); resuming would mix "
                         f"two runs in one output; use --overwrite or another output")

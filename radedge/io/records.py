"""Append-only record outputs (CSV or JSONL) that survive a kill and resume where they stopped.

Each record is written and flushed as soon as it is known, so an interrupted run loses nothing it
had already reported. On reopening, a torn last record (the process died mid-write) is cut off,
and the complete records are handed back so the caller can skip the inputs they cover.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

FORMATS = (".csv", ".jsonl")


def output_format(path: str | os.PathLike) -> str:
    """'.csv' or '.jsonl' from the output path; anything else is a usage error (ValueError)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: output must end in .csv or .jsonl")
    return suffix


def _complete_csv_rows(text: str) -> tuple[list[list[str]], int]:
    """Rows of a CSV text and the character offset where the last complete row ends."""
    consumed = 0
    ends: list[int] = []

    def lines() -> Iterator[str]:
        nonlocal consumed
        for line in io.StringIO(text, newline=""):
            consumed += len(line)
            yield line

    rows: list[list[str]] = []
    reader = csv.reader(lines())
    try:
        for row in reader:
            rows.append(row)
            ends.append(consumed)
    except csv.Error:
        pass
    # A row is complete only if it ended with a newline that the csv reader consumed.
    while rows and not text[: ends[-1]].endswith(("\n", "\r")):
        rows.pop()
        ends.pop()
    return rows, (ends[-1] if ends else 0)


def _complete_jsonl(text: str) -> tuple[list[dict[str, Any]], int]:
    records: list[dict[str, Any]] = []
    end = 0
    # Split on "\n" only: json.dumps(ensure_ascii=False) leaves U+2028 / U+0085 raw inside a record.
    for line in io.StringIO(text, newline="\n"):
        if not line.endswith("\n"):
            break
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
        end += len(line)
    return records, end


class RecordWriter:
    """Append records to a .csv (fixed columns, header first) or .jsonl file, resuming if asked.

    `existing` holds the complete records found when the file was reopened with resume=True
    (dicts; CSV cells as strings). Without resume an existing file is replaced.
    """

    def __init__(self, path: str | os.PathLike, columns: Sequence[str] | None = None, resume: bool = True) -> None:
        self.path = Path(path)
        self.format = output_format(self.path)
        if self.format == ".csv" and not columns:
            raise ValueError("CSV output needs its columns")
        self.columns = list(columns or [])
        self.existing: list[dict[str, Any]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keep = self._recover() if resume and self.path.exists() else 0
        self._file = open(self.path, "r+" if keep else "w", encoding="utf-8", newline="")
        self._file.seek(0)
        if keep:
            self._file.seek(keep)
            self._file.truncate()
        self._csv = csv.DictWriter(self._file, fieldnames=self.columns, extrasaction="ignore",
                                   lineterminator="\n") if self.format == ".csv" else None
        if self._csv is not None and not keep:
            self._csv.writeheader()
            self._file.flush()

    def _recover(self) -> int:
        """Read complete records; return the byte length to keep (0 = start afresh)."""
        # newline="": keep "\r\n" inside CSV cells as written, so the kept byte length is exact.
        with open(self.path, encoding="utf-8", errors="strict", newline="") as f:
            text = f.read()
        if self.format == ".jsonl":
            self.existing, end = _complete_jsonl(text)
            return len(text[:end].encode("utf-8")) if end else 0
        rows, end = _complete_csv_rows(text)
        if not rows or rows[0] != self.columns:
            if rows:
                raise ValueError(f"{self.path}: existing CSV has other columns; use a new output or --overwrite")
            return 0
        self.existing = [dict(zip(self.columns, r)) for r in rows[1:]]
        return len(text[:end].encode("utf-8"))

    def write(self, record: Mapping[str, Any]) -> None:
        if self._csv is not None:
            self._csv.writerow({k: "" if v is None else v for k, v in record.items()})
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

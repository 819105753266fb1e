"""Streaming report readers: `(id, report)` pairs in input order, one at a time.

Memory does not grow with the number of reports: every reader holds one record (one CSV row,
one JSON line, one file) at a time. A report is `str`, or `bytes` where the input's encoding could
not be trusted (invalid UTF-8 in a CSV cell, a .txt or .xml file), so that ReportLabeler turns a
bad encoding into that report's own error. A record that cannot be read at all (a broken JSON
line, malformed XML) is yielded as an `InputError` in the report's place, for the same reason.

Formats (`--format`, picked from the path when "auto"):
- `csv`: with `text_column`, a CSV with a header; otherwise the CheXpert labeler's input, one
  report per row in the first column and no header. Ids: `id_column`, else the row number (from 1).
- `jsonl`: one JSON object per line; text in `text_field` (default "text"); id in `id_field`
  (default "id" when the records have one, else the line number, from 1).
- `txt`: a folder of `.txt` files, walked in sorted order; id = the path relative to the folder;
  or one `.txt` file with one report per line (blank lines skipped); id = the line number (from 1).
- `xml`: Open-i report XML (`<AbstractText Label="FINDINGS|IMPRESSION">`): a folder of `.xml`
  files, one `.xml` file, or a `.tgz` / `.tar.gz` of them (streamed); id = the relative path.
"""
from __future__ import annotations

import csv
import json
import os
import re
import sys
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

from ..errors import InputError

# What a report may be: text, raw bytes (ReportLabeler decodes them as UTF-8), or the InputError that
# stands in for a record that could not be read. The one name for this type, readers and labeler alike.
Report = Union[str, bytes, InputError]
FORMATS = ("auto", "csv", "jsonl", "txt", "xml")
# Open-i sections read into the report text, in this order, each with its header.
OPENI_SECTIONS = ("FINDINGS", "IMPRESSION")
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".xml": "xml",
                   ".tgz": "xml", ".tar.gz": "xml"}


@dataclass(frozen=True)
class ReaderOptions:
    """Where the text and id are in a record (`text_field` / `id_field`: a CSV header's column or a
    JSON field; `text_column` / `id_column` are the older CSV-only spellings) and the input's
    encoding (None: UTF-8, BOM or not)."""

    text_column: str | None = None
    id_column: str | None = None
    text_field: str | None = None
    id_field: str | None = None
    encoding: str | None = None

    def for_csv(self) -> "ReaderOptions":
        """The field names as CSV columns (one pair of names for both formats)."""
        return ReaderOptions(self.text_column or self.text_field, self.id_column or self.id_field,
                             encoding=self.encoding)

    @property
    def text_encoding(self) -> str:
        return self.encoding or "utf-8-sig"


def detect_format(path: Path) -> str:
    """The format of `path` from what it is: a folder (txt, or xml when it holds only .xml files)
    or a file's suffix. Raises ValueError when it cannot tell."""
    if path.is_dir():
        names = (name for _, _, files in os.walk(path) for name in files)
        kinds = {Path(n).suffix.lower() for n in names} & {".txt", ".xml"}
        if kinds == {".xml"}:
            return "xml"
        if ".txt" in kinds:
            return "txt"
        raise ValueError(f"{path}: the folder holds no .txt or .xml files")
    name = path.name.lower()
    for suffix, fmt in _SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise ValueError(f"{path}: cannot tell the input format from the name; pass --input-format "
                     f"({', '.join(FORMATS[1:])})")


def read_reports(path: str | os.PathLike, fmt: str = "auto",
                 options: ReaderOptions = ReaderOptions()) -> Iterator[tuple[Any, Report]]:
    """`(id, report)` pairs of an input, in input order.

    Problems with the input as a whole (missing path, unknown format, a column that does not
    exist, options that do not fit the format) raise ValueError before the first pair is yielded.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; choose one of {', '.join(FORMATS)}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    if options.encoding:
        _check_encoding(options.encoding)
    if fmt == "csv":
        options = options.for_csv()
    _check_options(fmt, options)
    if fmt in ("csv", "jsonl") and path.is_dir():
        raise ValueError(f"{path}: a folder, not a {fmt} file")
    if fmt == "csv":
        return _read_csv(path, options)
    if fmt == "jsonl":
        return _read_jsonl(path, options)
    if fmt == "txt" and not path.is_dir():
        return _read_lines(path, options)
    if fmt == "txt":
        return _read_folder(path, ".txt", _read_bytes if options.encoding is None else _text_reader(options.encoding))
    if path.is_dir():
        return _read_folder(path, ".xml", _openi_from_path)
    if path.name.lower().endswith((".tgz", ".tar.gz", ".tar")):
        return _read_openi_tar(path)
    return iter([(path.name, _openi_from_path(path))])


def _check_options(fmt: str, options: ReaderOptions) -> None:
    csv_opts = [f"--{n.replace('_', '-')}" for n in ("text_column", "id_column") if getattr(options, n)]
    json_opts = [f"--{n.replace('_', '-')}" for n in ("text_field", "id_field") if getattr(options, n)]
    if csv_opts and fmt != "csv":
        raise ValueError(f"{', '.join(csv_opts)} only apply to CSV input (this input is {fmt})")
    if json_opts and fmt != "jsonl":
        raise ValueError(f"{', '.join(json_opts)} only apply to CSV and JSONL input (this input is {fmt})")
    if options.id_column and not options.text_column:
        raise ValueError("--id-field needs --text-field (a CSV without a header has no column names)")


def _check_encoding(encoding: str) -> None:
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None


def count_reports(path: str | os.PathLike, fmt: str = "auto") -> int | None:
    """How many reports `path` holds, counted cheaply before labelling (for a progress bar's total
    and ETA): lines of a JSONL / one-per-line .txt file, files of a folder; None when it cannot be
    told without parsing (a CSV's quoted cells may span lines; a .tgz is streamed)."""
    path = Path(path)
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
        if path.is_dir():
            suffix = ".xml" if fmt == "xml" else ".txt"
            return sum(1 for _, _, files in os.walk(path) for n in files if n.lower().endswith(suffix))
        if fmt in ("jsonl", "txt"):
            with open(path, "rb") as f:
                return sum(1 for line in f if line.strip())
        if fmt == "xml" and path.name.lower().endswith(".xml"):
            return 1
    except (OSError, ValueError):
        pass
    return None


# ---- CSV ----------------------------------------------------------------------------------------
def _allow_long_fields() -> None:
    """Let one CSV cell hold a whole long report (the csv module stops at 128 KiB by default)."""
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 2


def _cell(value: str) -> str | bytes:
    """A cell read with surrogateescape: its text, or its original bytes when they were not UTF-8."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", errors="surrogateescape")


def _printable_id(value: str) -> str:
    """An id cell as text that can be written out: undecodable bytes become U+FFFD."""
    cell = _cell(value)
    return cell.decode("utf-8", errors="replace") if isinstance(cell, bytes) else cell


def _read_csv(path: Path, options: ReaderOptions) -> Iterator[tuple[Any, Report]]:
    _allow_long_fields()
    f = open(path, encoding=options.text_encoding, errors="surrogateescape", newline="")
    rows = csv.reader(f)
    if options.text_column is None:
        return _csv_rows(f, rows, None, None)
    header = next(rows, None)
    if header is None:
        f.close()
        raise ValueError(f"{path}: empty CSV, no header")
    columns = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in (options.text_column, options.id_column) if c and c not in columns]
    if missing:
        f.close()
        raise ValueError(f"{path}: no column {missing[0]!r}; the header has {', '.join(map(repr, columns))}")
    id_index = columns[options.id_column] if options.id_column else None
    return _csv_rows(f, rows, columns[options.text_column], id_index)


def _csv_rows(f: Any, rows: Iterator[list[str]], text_index: int | None,
              id_index: int | None) -> Iterator[tuple[Any, Report]]:
    with f:
        for number, row in enumerate(rows, start=1):
            i = 0 if text_index is None else text_index
            rid: Any = number if id_index is None or id_index >= len(row) else _printable_id(row[id_index])
            if not row:
                yield rid, ""  # a blank line is an empty report, kept so row numbers stay aligned
            elif i >= len(row):
                yield rid, InputError(f"row {number} has {len(row)} cells, no text column")
            else:
                yield rid, _cell(row[i])


# ---- JSONL --------------------------------------------------------------------------------------
def _read_jsonl(path: Path, options: ReaderOptions) -> Iterator[tuple[Any, Report]]:
    # surrogateescape: invalid UTF-8 inside a text field reaches the labeler as that field's bytes.
    f = open(path, encoding=options.text_encoding, errors="surrogateescape")
    text_field = options.text_field or "text"
    first = _first_record(f)
    if first is not None and text_field not in first:
        f.close()
        fields = ", ".join(map(repr, first)) or "none"
        raise ValueError(f"{path}: the first record has no field {text_field!r} (it has {fields}); "
                         f"pass --text-field")
    if options.id_field and first is not None and options.id_field not in first:
        f.close()
        raise ValueError(f"{path}: the first record has no field {options.id_field!r}; check --id-field")
    id_field = options.id_field or ("id" if first is not None and "id" in first else None)
    f.seek(0)
    return _jsonl_records(f, text_field, id_field)


def _first_record(f: Any) -> dict[str, Any] | None:
    for line in f:
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                return None  # reported as that line's own error
            return record if isinstance(record, dict) else None
    return None


def _jsonl_records(f: Any, text_field: str, id_field: str | None) -> Iterator[tuple[Any, Report]]:
    with f:
        number = 0
        for line in f:
            if not line.strip():
                continue
            number += 1
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield number, InputError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(record, dict):
                yield number, InputError(f"line {number}: a JSON {type(record).__name__}, not an object")
                continue
            rid = record.get(id_field, number) if id_field else number
            rid = _printable_id(rid) if isinstance(rid, str) else rid
            text = record.get(text_field)
            if text is None:
                yield rid, InputError(f"line {number}: no field {text_field!r}")
            elif not isinstance(text, str):
                yield rid, InputError(f"line {number}: field {text_field!r} is a {type(text).__name__}, not text")
            else:
                yield rid, _cell(text)


# ---- one .txt file, one report per line ----
def _read_lines(path: Path, options: ReaderOptions) -> Iterator[tuple[Any, Report]]:
    f = open(path, encoding=options.text_encoding, errors="surrogateescape")
    return _lines(f)


def _lines(f: Any) -> Iterator[tuple[Any, Report]]:
    with f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                yield number, _cell(line.rstrip("\r\n"))


# ---- folders of files ---------------------------------------------------------------------------
def _natural_key(name: str) -> list[Any]:
    """Sort '2.txt' before '10.txt' (Open-i files are numbered 1.xml ... 3999.xml)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _read_folder(root: Path, suffix: str, read: Any) -> Iterator[tuple[Any, Report]]:
    """Files ending in `suffix` under `root`, walked in natural sorted order (no list of all paths)."""
    for folder, dirs, files in os.walk(root):
        dirs.sort(key=_natural_key)
        for name in sorted((n for n in files if n.lower().endswith(suffix)), key=_natural_key):
            path = Path(folder) / name
            yield path.relative_to(root).as_posix(), read(path)


def _text_reader(encoding: str) -> Any:
    """Read a file's text in `encoding` (an export in cp1252, say) instead of as raw UTF-8 bytes."""
    def read(path: Path) -> Report:
        data = _read_bytes(path)
        return data.decode(encoding, errors="replace") if isinstance(data, bytes) else data

    return read


def _read_bytes(path: Path) -> Report:
    try:
        return path.read_bytes()
    except OSError as exc:
        return InputError(f"cannot read: {exc.strerror or exc}")


# ---- Open-i XML ---------------------------------------------------------------------------------
def openi_text(xml: bytes) -> str:
    """'FINDINGS: ...\\n\\nIMPRESSION: ...' from an Open-i report XML (sections present only).

    Raises InputError when the XML is malformed."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InputError(f"malformed XML ({exc})") from exc
    bodies: dict[str, str] = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().upper()
        body = " ".join("".join(node.itertext()).split())
        if label in OPENI_SECTIONS and body:
            bodies[label] = body
    return "\n\n".join(f"{label}: {bodies[label]}" for label in OPENI_SECTIONS if label in bodies)


def _openi_report(xml: bytes) -> Report:
    try:
        return openi_text(xml)
    except InputError as exc:
        return exc


def _openi_from_path(path: Path) -> Report:
    data = _read_bytes(path)
    return data if isinstance(data, InputError) else _openi_report(data)


def _read_openi_tar(path: Path) -> Iterator[tuple[Any, Report]]:
    """Open-i XML members of a tar archive, in archive order, streamed (mode 'r|*')."""
    try:
        archive = tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError) as exc:
        raise ValueError(f"{path}: not a readable tar archive ({exc})") from exc
    return _tar_members(archive)


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[Any, Report]]:
    with archive:
        for member in archive:
            if not (member.isfile() and member.name.lower().endswith(".xml")):
                continue
            handle = archive.extractfile(member)
            name = member.name[2:] if member.name.startswith("./") else member.name
            yield name, _openi_report(handle.read()) if handle else InputError("unreadable member")

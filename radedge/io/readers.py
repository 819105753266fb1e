"""Streaming report readers: `(id, report)` pairs in input order, one at a time.

Memory does not grow with the number of reports, nor with the size of one record: every reader
holds one record (one CSV row, one JSON line, one file) at a time, and a record larger than the
caps (`ReaderOptions.max_report_chars`, `max_member_bytes`) is that record's error, read no
further. A report is `str`, or `bytes` where the input's encoding could not be trusted (invalid
UTF-8 in a CSV cell, a .txt or .xml file), so that ReportLabeler turns a bad encoding into that
report's own error. A record that cannot be read at all (a broken JSON line, malformed XML, a
FIFO named `.txt`, an unlistable folder, a truncated archive) is yielded as an `InputError` in the
report's place, for the same reason. Only regular files are opened (`files.open_regular`).

Text files (CSV, JSONL) are UTF-8 unless they start with a byte-order mark (UTF-8, UTF-16 or
UTF-32, little or big endian). Ids made from file names escape bytes that are not UTF-8 (`\\xe9`).

`encoding` (`--encoding`, e.g. cp1252) names the encoding of a CSV / JSONL / .txt input instead.

Formats (`--input-format`, picked from the path when "auto"):
- `csv`: with `text_column`, a CSV with a header; otherwise the CheXpert labeler's input, one
  report per row and no header. That input has ONE column: a row with an unquoted comma is split
  by the csv module, so its cells are joined back with "," (the text as written, nothing lost).
  A first row that is a report-column header (`Reports`, `Report Impression`, `report`, `text`,
  ...; see HEADER_NAMES) is read as the header, and that column is the text.
  Ids: `id_column`, else the row number (from 1, not counting a header).
- `jsonl`: one JSON object per line; text in `text_field` (default "text"); id in `id_field`
  (default "id" when the records have one, else the line number, from 1).
- `txt`: a folder of `.txt` files, walked in sorted order; id = the path relative to the folder;
  or one `.txt` file with one report per line (blank lines skipped); id = the line number (from 1).
- `xml`: Open-i report XML (`<AbstractText Label="FINDINGS|IMPRESSION">`): a folder of `.xml`
  files, one `.xml` file, or a `.tgz` / `.tar.gz` of them (streamed); id = the relative path. A
  truncated or corrupt archive ends with one error record named after the archive.
"""
from __future__ import annotations

import csv
import dataclasses
import codecs
import io
import json
import os
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator, Union

from ..errors import InputError, ReportDecodeError
from .files import (MAX_MEMBER_BYTES, MAX_REPORT_CHARS, display_name, open_regular, printable, read_regular,
                    text_encoding)
from .walk import walk_entries

# What a report may be: text, raw bytes (ReportLabeler decodes them as UTF-8), or the InputError that
# stands in for a record that could not be read. The one name for this type, readers and labeler alike.
Report = Union[str, bytes, InputError]
FORMATS = ("auto", "csv", "jsonl", "txt", "xml")
# Open-i sections read into the report text, in this order, each with its header.
OPENI_SECTIONS = ("FINDINGS", "IMPRESSION")
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".txt": "txt", ".xml": "xml",
                   ".tgz": "xml", ".tar.gz": "xml"}
# First-row cells that make a CSV without --text-column a CSV with a header (compared lower-case):
# the CheXpert labeler's output column, CheXbert's input column, and the usual names.
HEADER_NAMES = frozenset({"reports", "report", "report impression", "report_impression", "impression",
                          "findings", "text", "report text", "report_text", "section_impression"})
_OVERSIZED = "\0radedge: line over the cap\0"  # stands in for a CSV line too long to read


@dataclass(frozen=True)
class ReaderOptions:
    """Where the text and id are in a record (`text_field` / `id_field`: a CSV header's column or a
    JSON field; `text_column` / `id_column` are the older CSV-only spellings), the input's
    encoding (None: UTF-8, or what its byte-order mark says) and the size caps."""

    text_column: str | None = None
    id_column: str | None = None
    text_field: str | None = None
    id_field: str | None = None
    encoding: str | None = None
    max_report_chars: int = MAX_REPORT_CHARS
    max_member_bytes: int = MAX_MEMBER_BYTES

    def for_csv(self) -> "ReaderOptions":
        """The field names as CSV columns (one pair of names for both formats)."""
        return dataclasses.replace(self, text_column=self.text_column or self.text_field,
                                   id_column=self.id_column or self.id_field, text_field=None, id_field=None)

    @property
    def line_chars(self) -> int:
        """Longest CSV / JSONL line read: room for a capped report, JSON escapes and other fields."""
        return 8 * self.max_report_chars + 65536


def detect_format(path: Path) -> str:
    """The format of `path` from what it is: a folder (txt, or xml when it holds only .xml files)
    or a file's suffix. Raises ValueError when it cannot tell."""
    if path.is_dir():
        kinds = {entry.path.suffix.lower() for entry in walk_entries(path)} & {".txt", ".xml"}
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

    Problems with the input as a whole (missing path, not a regular file or folder, unknown
    format, a column that does not exist, options that do not fit the format) raise ValueError
    before the first pair is yielded.
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
    if fmt == "txt" and path.is_dir():
        return _read_folder(path, ".txt", lambda p: _decoded(read_regular(p, options.max_member_bytes, "the file"),
                                                              options.encoding))
    if path.is_dir():
        return _read_folder(path, ".xml", lambda p: _openi_from_path(p, options.max_member_bytes))
    f = _open_input(path)
    if fmt == "csv":
        return _read_csv(path, _text_stream(f, options.encoding), options)
    if fmt == "jsonl":
        return _read_jsonl(path, _text_stream(f, options.encoding), options)
    if fmt == "txt":
        return _read_lines(_text_stream(f, options.encoding), options.line_chars)
    if path.name.lower().endswith((".tgz", ".tar.gz", ".tar")):
        return _read_openi_tar(path, f, options.max_member_bytes)
    with f:
        return iter([(display_name(path.name), _openi_bytes(f, options.max_member_bytes))])


def _check_options(fmt: str, options: ReaderOptions) -> None:
    csv_opts = [f"--{n.replace('_', '-')}" for n in ("text_column", "id_column") if getattr(options, n)]
    json_opts = [f"--{n.replace('_', '-')}" for n in ("text_field", "id_field") if getattr(options, n)]
    if csv_opts and fmt != "csv":
        raise ValueError(f"{', '.join(csv_opts)} only apply to CSV input (this input is {fmt})")
    if json_opts and fmt != "jsonl":
        raise ValueError(f"{', '.join(json_opts)} only apply to CSV and JSONL input (this input is {fmt})")
    if options.id_column and not options.text_column:
        raise ValueError("--id-field needs --text-field (a CSV without a header has no column names)")
    if options.max_report_chars < 1 or options.max_member_bytes < 1:
        raise ValueError("the size caps must be positive")


def _check_encoding(encoding: str) -> None:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r} (e.g. utf-8, cp1252, latin-1)") from None


def count_reports(path: str | os.PathLike, fmt: str = "auto") -> int | None:
    """How many reports `path` holds, counted cheaply before labelling (for a progress bar's total
    and ETA): lines of a JSONL / one-per-line .txt file, files of a folder; None when it cannot be
    told without parsing (a CSV's quoted cells may span lines; a .tgz is streamed) or without
    opening what is not a regular file."""
    path = Path(path)
    try:
        fmt = detect_format(path) if fmt == "auto" else fmt
        if path.is_dir():
            suffix = ".xml" if fmt == "xml" else ".txt"
            return sum(1 for entry in walk_entries(path) if entry.path.name.lower().endswith(suffix))
        if fmt in ("jsonl", "txt"):
            with open_regular(path) as f:
                return sum(1 for line in f if line.strip())
        if fmt == "xml" and path.name.lower().endswith(".xml"):
            return 1
    except (OSError, ValueError, InputError):
        pass
    return None


def _open_input(path: Path) -> IO[bytes]:
    """The input file, if it is a regular file; ValueError (the run's end: nothing to read) if not."""
    try:
        return open_regular(path)
    except InputError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def _text_stream(f: IO[bytes], encoding: str | None = None) -> IO[str]:
    """Text of a CSV / JSONL / .txt file: in `encoding` when given, else the encoding its byte-order
    mark names, else UTF-8; bytes that do not decode are kept (surrogateescape) so the report they
    belong to, not the run, fails."""
    buffered = f if isinstance(f, io.BufferedReader) else io.BufferedReader(f)  # type: ignore[arg-type]
    if encoding is None:
        encoding, skip = text_encoding(buffered.peek(4096)[:4096])
        buffered.read(skip)
    return io.TextIOWrapper(buffered, encoding=encoding, errors="surrogateescape", newline="")


def _cell(value: str) -> Report:
    """A text value as read: its text; its original bytes when they were not UTF-8 (surrogateescape),
    for a per-report decode error; an error when it holds code points that are not text at all
    (a lone surrogate written as a JSON escape, "\\ud83d")."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError as exc:
        return ReportDecodeError(f"not valid Unicode text: lone surrogate {value[exc.start]!r} "
                                 f"at character {exc.start}")


def _bounded_lines(f: IO[str], limit: int) -> Iterator[str]:
    """The lines of `f` ("\\n"-terminated), each at most `limit` characters: a longer line is read
    through to its end in pieces and yielded as `_OVERSIZED` plus its newline, never held whole."""
    while line := f.readline(limit):
        if len(line) == limit and not line.endswith(("\n", "\r")):
            while (rest := f.readline(limit)) and not rest.endswith(("\n", "\r")):
                pass
            line = _OVERSIZED + "\n"
        yield line


# ---- CSV ----------------------------------------------------------------------------------------
def _read_csv(path: Path, f: IO[str], options: ReaderOptions) -> Iterator[tuple[Any, Report]]:
    csv.field_size_limit(options.line_chars)  # a cell over it is that row's error (csv.Error)
    rows = _csv_reader(f, options.line_chars)
    if options.text_column is None:
        first = next(rows, None)
        header = [c.strip().lower() if isinstance(c, str) else "" for c in first] if isinstance(first, list) else []
        text_index = next((i for i, name in enumerate(header) if name in HEADER_NAMES), None)
        if text_index is None:  # no header: the first row is the first report
            return _csv_rows(f, _chain(first, rows), None, None, options)
        return _csv_rows(f, rows, text_index if len(header) > 1 else None, None, options)
    header = next(rows, None)
    if not isinstance(header, list):
        f.close()
        raise ValueError(f"{path}: empty CSV, no header" if header is None else f"{path}: unreadable header ({header})")
    columns = {printable(name.strip()): i for i, name in enumerate(header)}
    missing = [c for c in (options.text_column, options.id_column) if c and c not in columns]
    if missing:
        f.close()
        raise ValueError(f"{path}: no column {missing[0]!r}; the header has {', '.join(map(repr, columns))}")
    id_index = columns[options.id_column] if options.id_column else None
    return _csv_rows(f, rows, columns[options.text_column], id_index, options)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
    yield from rest


def _csv_reader(f: IO[str], limit: int) -> Iterator[list[str] | InputError]:
    """csv rows of `f`, or an InputError for a row the csv module refuses (a cell over the cap)."""
    reader = csv.reader(_bounded_lines(f, limit))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield InputError(f"unreadable CSV row ({exc})")
            continue
        yield InputError(f"a line over the {limit}-character cap") if any(_OVERSIZED in c for c in row) else row


def _csv_rows(f: IO[str], rows: Iterator[list[str] | InputError], text_index: int | None,
              id_index: int | None, options: ReaderOptions) -> Iterator[tuple[Any, Report]]:
    """`text_index` None: the one-column layout (cells of a row split at unquoted commas are joined)."""
    with f:
        for number, row in enumerate(rows, start=1):
            if isinstance(row, InputError):
                yield number, row
                continue
            rid: Any = number if id_index is None or id_index >= len(row) else printable(row[id_index])
            if not row:
                yield rid, ""  # a blank line is an empty report, kept so row numbers stay aligned
            elif text_index is None:
                yield rid, _cell(",".join(row))
            elif text_index >= len(row):
                yield rid, InputError(f"row {number} has {len(row)} cells, no text column")
            else:
                yield rid, _cell(row[text_index])


# ---- JSONL --------------------------------------------------------------------------------------
def _read_jsonl(path: Path, f: IO[str], options: ReaderOptions) -> Iterator[tuple[Any, Report]]:
    text_field = options.text_field or "text"
    first = _first_record(f, options.line_chars)
    if first is not None and text_field not in first:
        f.close()
        fields = ", ".join(map(repr, map(printable, first))) or "none"
        raise ValueError(f"{path}: the first record has no field {text_field!r} (it has {fields}); "
                         f"pass --text-field")
    if options.id_field and first is not None and options.id_field not in first:
        f.close()
        raise ValueError(f"{path}: the first record has no field {options.id_field!r}; check --id-field")
    id_field = options.id_field or ("id" if first is not None and "id" in first else None)
    f.seek(0)
    if f.read(1) not in ("\ufeff", ""):  # the BOM (if any) was skipped by _text_stream; a re-read starts over
        f.seek(0)
    return _jsonl_records(f, text_field, id_field, options.line_chars)


def _parse(line: str) -> Any:
    """json.loads, with every way it fails (bad JSON, 5000-deep nesting, a 10^6-digit number) as InputError."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"not JSON ({exc.msg} at column {exc.colno})") from exc
    except RecursionError as exc:
        raise InputError("JSON nested too deeply") from exc
    except ValueError as exc:
        raise InputError(f"unreadable JSON ({exc})") from exc


def _first_record(f: IO[str], limit: int) -> dict[str, Any] | None:
    for line in _bounded_lines(f, limit):
        if line.strip():
            try:
                record = _parse(line)
            except InputError:
                return None  # reported as that line's own error
            return record if isinstance(record, dict) else None
    return None


def _jsonl_records(f: IO[str], text_field: str, id_field: str | None,
                   limit: int) -> Iterator[tuple[Any, Report]]:
    with f:
        number = 0
        for line in _bounded_lines(f, limit):
            if not line.strip():
                continue
            number += 1
            if line.startswith(_OVERSIZED):
                yield number, InputError(f"line {number}: over the {limit}-character cap")
                continue
            try:
                record = _parse(line)
            except InputError as exc:
                yield number, InputError(f"line {number}: {exc}")
                continue
            if not isinstance(record, dict):
                yield number, InputError(f"line {number}: a JSON {type(record).__name__}, not an object")
                continue
            rid = record.get(id_field, number) if id_field else number
            rid = printable(rid) if isinstance(rid, str) else rid
            text = record.get(text_field)
            if text is None:
                yield rid, InputError(f"line {number}: no field {text_field!r}")
            elif not isinstance(text, str):
                yield rid, InputError(f"line {number}: field {text_field!r} is a {type(text).__name__}, not text")
            else:
                yield rid, _cell(text)


# ---- one .txt file, one report per line -------------------------------------------------------
def _read_lines(f: IO[str], limit: int) -> Iterator[tuple[Any, Report]]:
    with f:
        for number, line in enumerate(_bounded_lines(f, limit), start=1):
            if line.startswith(_OVERSIZED):
                yield number, InputError(f"line {number}: over the {limit}-character cap")
            elif line.strip():
                yield number, _cell(line.rstrip("\r\n"))


def _decoded(data: bytes, encoding: str | None) -> Report:
    """A .txt file's report: its bytes (the labeler decodes UTF-8 strictly), or its text in `encoding`
    (an export in cp1252, say; bytes that do not decode shown as U+FFFD)."""
    return data if encoding is None else data.decode(encoding, errors="replace")


# ---- folders of files ---------------------------------------------------------------------------
def _natural_key(name: str) -> list[Any]:
    """Sort '2.txt' before '10.txt' (Open-i files are numbered 1.xml ... 3999.xml)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _read_folder(root: Path, suffix: str, read: Any) -> Iterator[tuple[Any, Report]]:
    """Entries ending in `suffix` under `root`, each folder's files (natural order) before its
    subfolders, streamed; a folder that cannot be listed is an error record under its own name."""
    for entry in walk_entries(root, key=_natural_key, files_first=True):
        if entry.error is not None:
            yield display_name(entry.path.relative_to(root).as_posix()), entry.error
        elif entry.path.name.lower().endswith(suffix):
            yield display_name(entry.path.relative_to(root).as_posix()), _read_item(read, entry.path)


def _read_item(read: Any, path: Path) -> Report:
    try:
        return read(path)
    except InputError as exc:
        return exc


# ---- Open-i XML ---------------------------------------------------------------------------------
def openi_text(xml: bytes) -> str:
    """'FINDINGS: ...\\n\\nIMPRESSION: ...' from an Open-i report XML (sections present only).

    Raises InputError when the XML is malformed (or nested deeper than Python can follow)."""
    try:
        root = ET.fromstring(xml)
        bodies: dict[str, str] = {}
        for node in root.iter("AbstractText"):
            label = (node.get("Label") or "").strip().upper()
            body = " ".join("".join(node.itertext()).split())
            if label in OPENI_SECTIONS and body:
                bodies[label] = body
    except ET.ParseError as exc:
        raise InputError(f"malformed XML ({exc})") from exc
    except (RecursionError, ValueError) as exc:
        raise InputError(f"unreadable XML ({type(exc).__name__})") from exc
    return "\n\n".join(f"{label}: {bodies[label]}" for label in OPENI_SECTIONS if label in bodies)


def _openi_report(xml: bytes) -> Report:
    try:
        return openi_text(xml)
    except InputError as exc:
        return exc


def _openi_bytes(f: IO[bytes], limit: int) -> Report:
    data = f.read(limit + 1)
    return InputError(f"the file is over the {limit}-byte cap") if len(data) > limit else _openi_report(data)


def _openi_from_path(path: Path, limit: int) -> Report:
    try:
        with open_regular(path) as f:
            return _openi_bytes(f, limit)
    except InputError as exc:
        return exc


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, ValueError)


def _read_openi_tar(path: Path, f: IO[bytes], limit: int) -> Iterator[tuple[Any, Report]]:
    """Open-i XML members of a tar archive, in archive order, streamed (mode 'r|*')."""
    try:
        archive = tarfile.open(fileobj=f, mode="r|*")
    except _TAR_ERRORS as exc:
        f.close()
        raise ValueError(f"{path}: not a readable tar archive ({exc})") from exc
    return _tar_members(path, f, archive, limit)


def _tar_members(path: Path, f: IO[bytes], archive: tarfile.TarFile, limit: int) -> Iterator[tuple[Any, Report]]:
    """Every `.xml` member is a record: its report, or why not (over the cap, a link, unreadable).
    A truncated or corrupt archive ends with one error record named after the archive."""
    with f, archive:
        members = iter(archive)
        while True:
            try:
                member = next(members, None)
            except _TAR_ERRORS as exc:
                yield display_name(path.name), InputError(f"archive truncated or corrupt: {type(exc).__name__}: {exc}")
                return
            if member is None:
                return
            if not member.name.lower().endswith(".xml") or member.isdir():
                continue
            name = display_name(member.name[2:] if member.name.startswith("./") else member.name)
            if not member.isfile():
                yield name, InputError("archive member is not a regular file (a link or device)")
            elif member.size > limit:
                yield name, InputError(f"archive member is {member.size} bytes, over the {limit}-byte cap")
            else:
                try:
                    handle = archive.extractfile(member)
                    data = handle.read() if handle else None
                except _TAR_ERRORS as exc:
                    yield name, InputError(f"archive member unreadable: {type(exc).__name__}: {exc}")
                    return
                yield name, _openi_report(data) if data is not None else InputError("unreadable member")

"""Label a stream of reports into a record sink (CSV or JSONL), resuming after an earlier run.

    >>> from radedge.pipelines import label_file
    >>> summary = label_file("reports.jsonl", "labels.csv", model="rules")

This is what `radedge label-reports` runs. What made the output (input, model name and sha256,
options) is kept in `OUTPUT.meta.json`; a resume with anything different is refused. Reports are read, labelled and written CHUNK at a time,
so memory does not grow with the input; each record is flushed as soon as it is known. A rerun on
the same output resumes after the records already there (checked against the input, so an output
that belongs to another input is refused); `overwrite=True` starts again. `label_batch` is the
per-batch step (reports and ids in, output records out) that a distributed engine can map over
batches.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..io.files import same_file
from ..io.readers import Report, ReaderOptions, read_reports
from ..io.records import RecordWriter, output_format
from ..labels import FINDINGS, class_to_csv
from ..reports.labeler import ReportLabeler, ReportResult
from .meta import run_meta

# Readable reports labelled and written at a time. A sentence model labels each distinct sentence of
# a chunk once, and reports repeat their sentences ("No pneumothorax."), so a larger chunk sends
# fewer sentences to the model (the README's performance section measures the effect).
CHUNK = 1024
MAX_CHUNK = 16 * CHUNK  # reports held at most, unreadable ones included
CSV_COLUMNS = ["Reports", *FINDINGS, "Error"]  # the CheXpert labeler's output, plus Error
_CSV_CELLS = [class_to_csv(c) for c in range(4)]


def report_cell(report: Report) -> str:
    """The `Reports` cell: the text as given (undecodable bytes shown as U+FFFD; '' for unreadable)."""
    if isinstance(report, str):
        return report
    if isinstance(report, (bytes, bytearray)):
        return bytes(report).decode("utf-8", errors="replace")
    return ""


class ReportSink:
    """How one ReportResult becomes an output record, and how written records are matched to inputs."""

    def __init__(self, out_format: str) -> None:
        self.csv = out_format == ".csv"
        self.error_key = "Error" if self.csv else "error"
        self.columns = CSV_COLUMNS if self.csv else None

    def record(self, report: Report, result: ReportResult) -> dict[str, Any]:
        if self.csv:
            row: dict[str, Any] = dict(zip(FINDINGS, [_CSV_CELLS[c] for c in result.classes.tolist()]))
            row["Reports"] = report_cell(report)
            row["Error"] = result.error or ""
            return row
        return {
            "id": _jsonable(result.id),
            "labels": result.labels,
            "probs": dict(zip(FINDINGS, _rounded(result.probs))),
            "rates": dict(zip(FINDINGS, _rounded(result.rates))),
            "evidence": result.evidence,
            "error": result.error,
        }

    def key_of_input(self, rid: Any, report: Report) -> Any:
        return report_cell(report) if self.csv else _jsonable(rid)

    def key_of_record(self, record: dict[str, Any]) -> Any:
        return record.get("Reports") if self.csv else record.get("id")

    def skip_written(self, reports: Iterator[tuple[Any, Report]], existing: Sequence[dict[str, Any]],
                     output: Path) -> int:
        """Consume the inputs that `existing` records already cover, checking that they match
        (same report text for CSV, same id for JSONL); raises ValueError when OUTPUT belongs to
        another input."""
        for n, record in enumerate(existing, start=1):
            item = next(reports, None)
            if item is None:
                raise ValueError(f"{output}: has {len(existing)} records but the input has only {n - 1} reports; "
                                 f"use --overwrite or another output")
            if self.key_of_record(record) != self.key_of_input(*item):
                raise ValueError(f"{output}: record {n} is not input report {n} ({item[0]}): the output belongs "
                                 f"to another input; use --overwrite or another output")
        return len(existing)


def label_batch(labeler: ReportLabeler, reports: Sequence[Report], ids: Sequence[Any],
                sink: ReportSink) -> tuple[list[dict[str, Any]], list[ReportResult]]:
    """One batch: reports and their ids in, output records (and the results behind them) out, in order."""
    results = labeler(list(reports), list(ids))
    return [sink.record(report, result) for report, result in zip(reports, results)], results


@dataclass
class LabelSummary:
    """What a run did: `labelled` and `failed` count this run's reports; `resumed` the records an
    earlier run had written, `earlier_failed` how many of those are errors."""

    model: str
    labelled: int = 0
    failed: int = 0
    resumed: int = 0
    earlier_failed: int = 0
    seconds: float = 0.0

    @property
    def total_failed(self) -> int:
        return self.failed + self.earlier_failed


def _chunks(labeler: ReportLabeler, reports: Iterator[tuple[Any, Report]],
            done: int) -> Iterator[list[tuple[Any, Report]]]:
    """Chunks of CHUNK readable reports (plus the unreadable ones among them), counted from the
    start of the input (`done` readable reports were labelled by an earlier run). A model batches a
    chunk's windows together, and an int8 model's numbers depend on its batch: counting only readable
    reports keeps every other report's batch, so its result, what it is without the bad item.
    A run of unreadable reports longer than MAX_CHUNK items is cut, so memory stays bounded."""
    chunk: list[tuple[Any, Report]] = []
    readable = done % CHUNK
    for item in reports:
        chunk.append(item)
        readable += labeler.accepts(item[1])
        if readable >= CHUNK or len(chunk) >= MAX_CHUNK:
            yield chunk
            chunk, readable = [], 0 if readable >= CHUNK else readable
    if chunk:
        yield chunk


def label_into(labeler: ReportLabeler, reports: Iterator[tuple[Any, Report]], writer: RecordWriter,
               sink: ReportSink, progress: Callable[[int], None] | None = None,
               on_error: Callable[[ReportResult], None] | None = None) -> LabelSummary:
    """Label `(id, report)` pairs CHUNK at a time into `writer`, after skipping those it already holds."""
    summary = LabelSummary(labeler.name)
    summary.resumed = sink.skip_written(reports, writer.existing, writer.path)
    summary.earlier_failed = sum(1 for r in writer.existing if r.get(sink.error_key))
    for chunk in _chunks(labeler, reports, summary.resumed - summary.earlier_failed):
        records, results = label_batch(labeler, [report for _, report in chunk], [rid for rid, _ in chunk], sink)
        for record, result in zip(records, results):
            writer.write(record)
            if result.error:
                summary.failed += 1
                if on_error is not None:
                    on_error(result)
        summary.labelled += len(chunk)
        if progress is not None:
            progress(len(chunk))
    return summary


def label_file(input_path: str | os.PathLike, output: str | os.PathLike,
               model: str | os.PathLike | ReportLabeler = "default",
               *, backend: str = "onnxruntime", device: str = "cpu", threads: int | None = None,
               batch_size: int = 32, fmt: str = "auto", options: ReaderOptions = ReaderOptions(),
               sections: str = "findings,impression",
               overwrite: bool = False, progress: Callable[[int], None] | None = None,
               on_error: Callable[[ReportResult], None] | None = None) -> LabelSummary:
    """Label every report of `input_path` into `output` (.csv: the CheXpert labeler's format plus
    Error; .jsonl: id, labels, probs, rates, error), exactly as `radedge label-reports` does.

    `model` is a name, "default", "rules", a folder, or a loaded ReportLabeler (then backend,
    device, threads, batch_size and sections are its own). `sections` picks the report sections
    read (`reports.sections.select_text`). Problems with the run as a whole (bad paths,
    an output that belongs to another input, a missing model) raise before anything is written;
    a bad report is its own error record. `progress(n)` is told of every n reports done.
    """
    input_path, output = Path(input_path), Path(output)
    sink = ReportSink(output_format(output))
    if same_file(output, input_path):  # the same inode: a hard link or a symbolic link counts
        raise ValueError(f"{output}: the output is the input file; writing it would destroy the input")
    reports = read_reports(input_path, fmt, options)
    labeler = model if isinstance(model, ReportLabeler) else ReportLabeler.load(
        model, backend=backend, device=device, threads=threads, batch_size=batch_size, sections=sections,
        max_report_chars=options.max_report_chars)
    meta = run_meta("label-reports", input_path, labeler.identity, {
        "format": fmt, "text_column": options.text_column, "id_column": options.id_column,
        "text_field": options.text_field, "id_field": options.id_field,
        "max_report_chars": labeler.max_report_chars, "max_member_bytes": options.max_member_bytes,
        "encoding": options.encoding, "sections": sections, "batch_size": labeler.batch_size,
        "backend": getattr(labeler.backend, "name", None), "device": getattr(labeler.backend, "device", None)})
    started = time.perf_counter()
    with RecordWriter(output, sink.columns, resume=not overwrite, meta=meta) as writer:
        summary = label_into(labeler, reports, writer, sink, progress=progress, on_error=on_error)
    summary.seconds = time.perf_counter() - started
    return summary


def _rounded(values: np.ndarray, digits: int = 5) -> list[Any]:
    """float32 values as short decimals (float64 first, so 0.2 is written 0.2, not 0.20000000298)."""
    return values.astype(np.float64).round(digits).tolist()


def _jsonable(value: Any) -> Any:
    """An id as JSON keeps it (str, int, float, bool, None); anything else as its str."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


__all__ = ["CHUNK", "CSV_COLUMNS", "LabelSummary", "ReportSink", "label_batch", "label_file", "label_into",
           "report_cell"]

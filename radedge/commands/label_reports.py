"""`radedge label-reports INPUT -o OUTPUT`: label every report of an input, streaming.

Reports are read, labelled and written CHUNK at a time, so memory does not grow with the input.
Each record is flushed as soon as it is known; a rerun resumes after the records already in OUTPUT
(checked against the input), `--overwrite` starts again.
"""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import click
import numpy as np

from ..cli import EXIT_OK, EXIT_PARTIAL, guarded, model_options
from ..io.readers import FORMATS, ReaderOptions, Report, read_reports
from ..io.records import RecordWriter, output_format
from ..labels import FINDINGS, class_to_csv

CHUNK = 256  # reports read, labelled and written at a time
MAX_ERROR_LINES = 10  # per-report errors echoed on stderr; all of them are in the output
CSV_COLUMNS = ["Reports", *FINDINGS, "Error"]  # the CheXpert labeler's output, plus Error
_CSV_CELLS = [class_to_csv(c) for c in range(4)]


@click.command("label-reports")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Output .csv (CheXpert labeler format plus an Error column) or .jsonl.")
@model_options(default_model="default")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Input format: csv, jsonl, txt (folder of .txt), xml (Open-i XML folder/.tgz).")
@click.option("--text-column", help="CSV with a header: the column holding the report text.")
@click.option("--id-column", help="CSV with a header: the column holding the report id.")
@click.option("--text-field", help="JSONL: the field holding the report text (default: text).")
@click.option("--id-field", help="JSONL: the field holding the report id (default: id, if present).")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Windows per model batch.")
@click.option("--quiet", is_flag=True, help="No progress bar (the closing summary line stays).")
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT instead of resuming after its records.")
@guarded
def label_reports(input_path: Path, output: Path, model: str, backend: str, device: str, threads: int | None,
                  fmt: str, text_column: str | None, id_column: str | None, text_field: str | None,
                  id_field: str | None, batch_size: int, quiet: bool, overwrite: bool) -> None:
    """Label the reports in INPUT with the 14 CheXpert findings and write OUTPUT.

    INPUT: a CSV with one report per row in the first column and no header (the CheXpert
    labeler's input), a CSV with a header (--text-column), JSONL (--text-field), a folder of
    .txt files, Open-i XML files (a folder, or a .tgz of them). Exit 0: all labelled; 1: some
    reports failed (see their Error); 2: nothing done.
    """
    out_format = output_format(output)
    if output.exists() and input_path.exists() and output.resolve() == input_path.resolve():
        raise ValueError(f"{output}: the output would overwrite the input")
    options = ReaderOptions(text_column, id_column, text_field, id_field)
    reports = read_reports(input_path, fmt, options)
    from ..reports.labeler import ReportLabeler

    labeler = ReportLabeler.load(model, backend=backend, device=device, threads=threads, batch_size=batch_size)
    sink = Sink(out_format)
    started = time.perf_counter()
    with RecordWriter(output, CSV_COLUMNS if out_format == ".csv" else None, resume=not overwrite) as writer:
        resumed = sink.skip_written(reports, writer.existing, output)
        old_failures = sum(1 for r in writer.existing if r.get(sink.error_key))
        tally = _label_stream(labeler, reports, writer, sink, quiet)
    seconds = time.perf_counter() - started
    failed = tally.failed + old_failures
    rate = f", {tally.done / seconds:.0f} reports/s" if tally.done and seconds > 0 else ""
    again = f", {resumed} already in the output" if resumed else ""
    click.echo(f"radedge: labelled {tally.done} reports ({tally.failed} failed{again}) with {labeler.name} "
               f"in {seconds:.1f} s{rate} -> {output}", err=True)
    if failed:
        click.echo(f"radedge: {failed} report(s) failed; each has its error in {output}", err=True)
    sys.exit(EXIT_PARTIAL if failed else EXIT_OK)


@dataclass
class Tally:
    done: int = 0
    failed: int = 0


def _label_stream(labeler: Any, reports: Iterator[tuple[Any, Report]], writer: RecordWriter, sink: "Sink",
                  quiet: bool) -> Tally:
    from tqdm import tqdm

    tally = Tally()
    with tqdm(unit=" reports", file=sys.stderr, disable=quiet, mininterval=0.5, dynamic_ncols=True) as bar:
        while chunk := list(itertools.islice(reports, CHUNK)):
            ids = [rid for rid, _ in chunk]
            results = labeler([report for _, report in chunk], ids)
            for (_, report), result in zip(chunk, results):
                writer.write(sink.record(report, result))
                if result.error:
                    tally.failed += 1
                    if tally.failed <= MAX_ERROR_LINES:
                        bar.write(f"radedge: report {result.id}: {result.error}", file=sys.stderr)
            tally.done += len(chunk)
            bar.update(len(chunk))
    if tally.failed > MAX_ERROR_LINES:
        click.echo(f"radedge: ... and {tally.failed - MAX_ERROR_LINES} more failed report(s)", err=True)
    return tally


def report_cell(report: Report) -> str:
    """The `Reports` cell: the text as given (undecodable bytes shown as U+FFFD; '' for unreadable)."""
    if isinstance(report, str):
        return report
    if isinstance(report, (bytes, bytearray)):
        return bytes(report).decode("utf-8", errors="replace")
    return ""


class Sink:
    """How one ReportResult becomes an output record, and how written records are matched to inputs."""

    def __init__(self, out_format: str) -> None:
        self.csv = out_format == ".csv"
        self.error_key = "Error" if self.csv else "error"

    def record(self, report: Report, result: Any) -> dict[str, Any]:
        if self.csv:
            row = dict(zip(FINDINGS, [_CSV_CELLS[c] for c in result.classes.tolist()]))
            row["Reports"] = report_cell(report)
            row["Error"] = result.error or ""
            return row
        return {
            "id": _jsonable(result.id),
            "labels": result.labels,
            "probs": dict(zip(FINDINGS, _rounded(result.probs))),
            "rates": dict(zip(FINDINGS, _rounded(result.rates))),
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


def _rounded(values: np.ndarray, digits: int = 5) -> list[Any]:
    """float32 values as short decimals (float64 first, so 0.2 is written 0.2, not 0.20000000298)."""
    return values.astype(np.float64).round(digits).tolist()


def _jsonable(value: Any) -> Any:
    """An id as JSON keeps it (str, int, float, bool, None); anything else as its str."""
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)

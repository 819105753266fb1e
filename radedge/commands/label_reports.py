"""`radedge label-reports INPUT -o OUTPUT`: options in, `pipelines.label_file`, the summary out."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli import EXIT_OK, EXIT_PARTIAL, Progress, guarded, model_options
from ..io.readers import FORMATS, ReaderOptions

MAX_ERROR_LINES = 10  # per-report errors echoed on stderr; all of them are in the output


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
    from ..pipelines.reports import label_file

    failures = 0
    with Progress(" reports", quiet, mininterval=0.5) as bar:
        def on_error(result) -> None:  # type: ignore[no-untyped-def]
            nonlocal failures
            failures += 1
            if failures <= MAX_ERROR_LINES:
                bar.write(f"radedge: report {result.id}: {result.error}")

        summary = label_file(input_path, output, model, backend=backend, device=device, threads=threads,
                             batch_size=batch_size, fmt=fmt, overwrite=overwrite, progress=bar.update,
                             on_error=on_error,
                             options=ReaderOptions(text_column, id_column, text_field, id_field))
    if summary.failed > MAX_ERROR_LINES:
        click.echo(f"radedge: ... and {summary.failed - MAX_ERROR_LINES} more failed report(s)", err=True)
    seconds = summary.seconds
    rate = f", {summary.labelled / seconds:.0f} reports/s" if summary.labelled and seconds > 0 else ""
    again = f", {summary.resumed} already in the output" if summary.resumed else ""
    click.echo(f"radedge: labelled {summary.labelled} reports ({summary.failed} failed{again}) with "
               f"{summary.model} in {seconds:.1f} s{rate} -> {output}", err=True)
    if summary.total_failed:
        click.echo(f"radedge: {summary.total_failed} report(s) failed; each has its error in {output}", err=True)
    sys.exit(EXIT_PARTIAL if summary.total_failed else EXIT_OK)

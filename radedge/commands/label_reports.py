"""`radedge label-reports INPUT -o OUTPUT`: options in, `pipelines.label_file`, the summary out."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli import (EXIT_OK, EXIT_PARTIAL, REPORT_MODEL_HELP, Progress, check_backend, check_engine, engine_options,
                   guarded, model_options, quiet_option, say)
from ..io.files import MAX_MEMBER_BYTES, MAX_REPORT_CHARS
from ..io.readers import FORMATS, ReaderOptions, count_reports
from ..reports.sections import SECTION_CHOICES

MAX_ERROR_LINES = 10  # per-report errors echoed on stderr; all of them are in the output


@click.command("label-reports")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Output .csv (CheXpert labeler format plus an Error column) or .jsonl; "
                   "with --engine ray, a Parquet dataset folder.")
@model_options(default_model="default", help_text=REPORT_MODEL_HELP)
@click.option("--format", "old_format", type=click.Choice(FORMATS), default=None, hidden=True)  # older --input-format
@click.option("--input-format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Input format: csv, jsonl, txt (a folder of .txt files, or one .txt file with one report per "
                   "line), xml (Open-i XML folder / file / .tgz); auto: from the name.")
@click.option("--text-field", help="CSV with a header, or JSONL: the column / field holding the report text "
                                   "[JSONL default: text; CSV default: first column, no header].")
@click.option("--id-field", help="CSV with a header, or JSONL: the column / field holding the report id "
                                 "[default: id if present, else the row / line number].")
@click.option("--text-column", hidden=True)  # older CSV spellings of --text-field / --id-field
@click.option("--id-column", hidden=True)
@click.option("--encoding", default=None,
              help="Text encoding of the input (e.g. cp1252 for Windows exports) [default: UTF-8, BOM or not].")
@click.option("--sections", type=click.Choice(SECTION_CHOICES), default=SECTION_CHOICES[0], show_default=True,
              help="Report sections read: FINDINGS and IMPRESSION; IMPRESSION only (as the CheXpert labeler and "
                   "CheXbert are run; a report without one is read as findings,impression); or the whole text.")
@click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True,
              help="Windows per model batch.")
@click.option("--max-report-chars", type=click.IntRange(1), default=MAX_REPORT_CHARS, show_default=True,
              help="Largest report labelled, in characters; a longer one is its own error record.")
@click.option("--max-member-bytes", type=click.IntRange(1), default=MAX_MEMBER_BYTES, show_default=True,
              help="Largest .txt / .xml file or archive member read; a larger one is its own error record.")
@quiet_option
@click.option("--overwrite", is_flag=True, help="Replace OUTPUT instead of resuming after its records.")
@engine_options
@guarded
def label_reports(input_path: Path, output: Path, model: str, backend: str, device: str, threads: int | None,
                  old_format: str | None, fmt: str, text_field: str | None, id_field: str | None, text_column: str | None,
                  id_column: str | None, encoding: str | None, sections: str, batch_size: int,
                  max_report_chars: int, max_member_bytes: int, quiet: bool,
                  overwrite: bool, engine: str, address: str | None, num_workers: int | None,
                  part_size: int | None) -> None:
    """Label the reports in INPUT with the 14 CheXpert findings and write OUTPUT.

    INPUT: a CSV with one report per row in the first column and no header (the CheXpert
    labeler's input), a CSV with a header (--text-field), JSONL (--text-field), a .txt file with
    one report per line, a folder of .txt files, Open-i XML files (a folder, or a .tgz of them).
    Exit 0: all labelled; 1: some reports failed (see their Error); 2: nothing done; 130:
    interrupted (a rerun resumes).
    """
    from ..pipelines.reports import label_file

    check_backend(model, backend, device)
    check_engine(engine, address, num_workers, part_size, backend, device)
    fmt = old_format or fmt
    options = ReaderOptions(text_column, id_column, text_field, id_field, encoding, max_report_chars, max_member_bytes)
    if engine == "ray":
        _on_ray(input_path, output, model, fmt, options, sections, address, num_workers, part_size, threads, quiet,
                overwrite)
    failures = 0
    with Progress(" reports", quiet, mininterval=0.5, total=count_reports(input_path, fmt)) as bar:
        def on_error(result) -> None:  # type: ignore[no-untyped-def]
            nonlocal failures
            failures += 1
            if failures <= MAX_ERROR_LINES and not quiet:
                bar.write(f"radedge: report {result.id}: {result.error}")

        summary = label_file(input_path, output, model, backend=backend, device=device, threads=threads,
                             batch_size=batch_size, fmt=fmt, overwrite=overwrite, progress=bar.update,
                             on_error=on_error, options=options, sections=sections)
    if summary.failed > MAX_ERROR_LINES and not quiet:
        say(f"... and {summary.failed - MAX_ERROR_LINES} more failed report(s)")
    seconds = summary.seconds
    rate = f", {summary.labelled / seconds:.0f} reports/s" if summary.labelled and seconds > 0 else ""
    again = f", {summary.resumed} already in the output" if summary.resumed else ""
    say(f"labelled {summary.labelled} reports ({summary.failed} failed{again}) with "
        f"{summary.model} in {seconds:.1f} s{rate} -> {output}")
    if summary.total_failed:
        say(f"{summary.total_failed} report(s) failed; each has its error in {output}")
    sys.exit(EXIT_PARTIAL if summary.total_failed else EXIT_OK)


def _on_ray(input_path: Path, output: Path, model: str, fmt: str, options: ReaderOptions, sections: str,
            address: str | None, num_workers: int | None, part_size: int | None, threads: int | None, quiet: bool,
            overwrite: bool) -> None:
    """--engine ray: `pipelines.raydata.label_to_parquet`, the summary, the contract's exit code."""
    from ..io.readers import count_reports
    from ..pipelines.raydata import BLOCK, label_to_parquet

    with Progress(" reports", quiet, mininterval=0.5, total=count_reports(input_path, fmt)) as bar:
        summary = label_to_parquet(input_path, output, model, fmt=fmt, options=options, sections=sections,
                                   address=address, num_workers=num_workers, threads=threads or 1,
                                   overwrite=overwrite, block_size=part_size or BLOCK, progress=bar.update)
    say(f"{summary.line('reports')} on Ray in {summary.seconds:.1f} s -> {output}")
    sys.exit(EXIT_PARTIAL if summary.total_failed else EXIT_OK)

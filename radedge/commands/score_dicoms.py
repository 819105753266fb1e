"""`radedge score-dicoms DIR -o OUT.csv|OUT.jsonl`: options in, `pipelines.score_folder`, the summary out.

`score-images` (PNG / JPEG folders) shares the options and the run (`folder_options`, `run_folder`).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from ..cli import (EXIT_NOTHING_DONE, EXIT_OK, EXIT_PARTIAL, Progress, apply_options, check_backend, check_engine,
                   engine_options, fail, guarded, model_options, quiet_option, say)
from ..images.dicom import DEFAULT_MAX_PIXELS, parse_views


def folder_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """FOLDER, -o, the model options, --workers, --batch-size, --quiet, --overwrite."""
    return apply_options(fn, [
        click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path)),
        click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
                     help="Output .csv or .jsonl (appended; an existing one is resumed); with --engine ray "
                          "(score-dicoms), a Parquet dataset folder."),
        model_options(),
        click.option("--workers", type=click.IntRange(0), default=None,
                     help="Processes decoding and preprocessing files [default: min(2, CPUs)]; 0 = in this process."),
        click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
                     help="Images per inference batch."),
        quiet_option,
        click.option("--overwrite", is_flag=True, help="Start the output afresh instead of resuming it."),
    ])


def run_folder(folder: Path, output: Path, quiet: bool, **options: Any) -> None:
    """Run `pipelines.score_folder` with a progress bar, print the summary, exit with the contract's code."""
    from ..pipelines.dicoms import score_folder

    check_backend(options["model"], options["backend"], options["device"])
    if "views" in options:
        parse_views(options["views"])  # an unknown view is a one-line error before any file is read
    total = sum(len(files) for _, _, files in os.walk(folder))  # cheap: names only, for the total and ETA
    with Progress(" files", quiet, total=total) as bar:
        def on_error(result) -> None:  # type: ignore[no-untyped-def]
            if not quiet:
                bar.write(f"radedge: {result.source}: {result.reason}")

        summary = score_folder(folder, output, progress=bar.update, on_error=on_error, **options)
    say(f"{summary.line()} -> {output}")
    if summary.total == 0:
        fail(f"{folder}: no files found", EXIT_NOTHING_DONE)
    sys.exit(EXIT_PARTIAL if summary.failed else EXIT_OK)


@click.command("score-dicoms")
@folder_options
@click.option("--views", default="PA,AP", show_default=True,
              help="Allowed ViewPosition values, comma-separated (LATERAL = every lateral code), or 'all'. "
                   "Files without ViewPosition are always scored.")
@click.option("--max-pixels", type=click.IntRange(0), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Largest image decoded, Rows x Columns x frames from the header (checked before decoding; "
                   "a larger one is an error record); 0 = no cap.")
@click.option("--full-resolution", is_flag=True,
              help="Decode every frame at full resolution (default: JPEG 2000 and baseline JPEG at the smallest "
                   "size that still covers twice the model's input).")
@engine_options
@guarded
def score_dicoms(folder: Path, output: Path, quiet: bool, max_pixels: int, full_resolution: bool, engine: str,
                 address: str | None, num_workers: int | None, part_size: int | None, **options: Any) -> None:
    """Score the chest radiographs in FOLDER (recursively); skipped and failed files get their own records."""
    check_engine(engine, address, num_workers, part_size, options["backend"], options["device"])
    if engine == "ray":
        _on_ray(folder, output, quiet, address=address, num_workers=num_workers, block_size=part_size,
                max_pixels=max_pixels or None, reduced=not full_resolution, **options)
    run_folder(folder, output, quiet, max_pixels=max_pixels or None, reduced=not full_resolution,
               **options)


def _on_ray(folder: Path, output: Path, quiet: bool, block_size: int | None, workers: int | None,
            backend: str, device: str, threads: int | None, **options: Any) -> None:
    """--engine ray: `pipelines.raydata.score_to_parquet` (decoding happens in the model actors)."""
    from ..pipelines.raydata import DICOM_BLOCK, score_to_parquet

    with Progress(" files", quiet) as bar:
        summary = score_to_parquet(folder, output, threads=threads or 1, block_size=block_size or DICOM_BLOCK,
                                   progress=bar.update, **options)
    say(f"{summary.line('files')} on Ray in {summary.seconds:.1f} s -> {output}")
    if summary.written + summary.resumed == 0:
        fail(f"{folder}: no files found", EXIT_NOTHING_DONE)
    sys.exit(EXIT_PARTIAL if summary.total_failed else EXIT_OK)

"""`radedge score-dicoms DIR -o OUT.csv|OUT.jsonl`: options in, `pipelines.score_folder`, the summary out."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..cli import EXIT_NOTHING_DONE, EXIT_OK, EXIT_PARTIAL, Progress, fail, guarded, model_options
from ..images.dicom import DEFAULT_MAX_PIXELS


@click.command("score-dicoms")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output .csv or .jsonl (appended; an existing one is resumed).")
@model_options()
@click.option("--views", default="PA,AP", show_default=True,
              help="Allowed ViewPosition values, comma-separated (LATERAL = every lateral code), or 'all'. "
                   "Files without ViewPosition are always scored.")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="Processes decoding and preprocessing files [default: min(2, CPUs)]; 0 = in this process.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Images per inference batch.")
@click.option("--max-pixels", type=click.IntRange(0), default=DEFAULT_MAX_PIXELS, show_default=True,
              help="Largest image decoded, Rows x Columns x frames from the header (checked before decoding; "
                   "a larger one is an error record); 0 = no cap.")
@click.option("--full-resolution", is_flag=True,
              help="Decode every frame at full resolution (default: JPEG 2000 and baseline JPEG at the smallest "
                   "size that still covers twice the model's input).")
@click.option("--quiet", is_flag=True, help="No progress bar or per-file error lines; only the summary.")
@click.option("--overwrite", is_flag=True, help="Start the output afresh instead of resuming it.")
@guarded
def score_dicoms(folder: Path, output: Path, model: str, backend: str, device: str, threads: int | None,
                 views: str, workers: int | None, batch_size: int, max_pixels: int, full_resolution: bool,
                 quiet: bool, overwrite: bool) -> None:
    """Score the chest radiographs in FOLDER (recursively); skipped and failed files get their own records."""
    from ..pipelines.dicoms import score_folder

    with Progress(" files", quiet) as bar:
        def on_error(result) -> None:  # type: ignore[no-untyped-def]
            if not quiet:
                bar.write(f"radedge: {result.source}: {result.reason}")

        summary = score_folder(folder, output, model, backend=backend, device=device, threads=threads,
                               batch_size=batch_size, views=views, workers=workers, max_pixels=max_pixels or None,
                               reduced=not full_resolution, overwrite=overwrite,
                               progress=bar.update, on_error=on_error)
    click.echo(f"score-dicoms: {summary.line()} -> {output}", err=True)
    if summary.total == 0:
        fail(f"{folder}: no files found", EXIT_NOTHING_DONE)
    sys.exit(EXIT_PARTIAL if summary.failed else EXIT_OK)

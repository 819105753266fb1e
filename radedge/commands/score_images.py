"""`radedge score-images DIR -o OUT.csv|OUT.jsonl`: score-dicoms for folders of PNG / JPEG files.

Same pipeline (`pipelines.score_folder` with kind="images"), same records (UID columns empty), same
resume and exit codes; files that are not PNG / JPEG get a skipped record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..cli import guarded
from .score_dicoms import folder_options, run_folder


@click.command("score-images")
@folder_options
@guarded
def score_images(folder: Path, output: Path, quiet: bool, **options: Any) -> None:
    """Score the PNG / JPEG chest radiographs in FOLDER (recursively); other files get skipped records."""
    run_folder(folder, output, quiet, kind="images", **options)

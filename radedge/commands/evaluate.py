"""`radedge eval --gold GOLD --pred PRED`: precision / recall / F1 of report labels against gold."""
from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli import guarded


@click.command("eval")
@click.option("--gold", "gold_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Gold CSV: CheXpert format (14 finding columns) or Open-i format (id + ChestX-ray14 columns).")
@click.option("--pred", "pred_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Predictions: CheXpert-format .csv (rows in gold order, or an id column) or .jsonl (id, labels).")
@click.option("--output-format", "out_format", type=click.Choice(["table", "json"]), default="table",
              show_default=True, help="Print a table or the full result as JSON.")
@click.option("--format", "old_format", type=click.Choice(["table", "json"]), default=None, hidden=True)
@click.option("--ids", "ids_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Score only these reports: a file with one id per line (or a CSV with an 'id' column).")
@guarded
def evaluate(gold_path: Path, pred_path: Path, out_format: str, old_format: str | None,
             ids_path: Path | None) -> None:
    """Per-finding precision, recall and F1 (positive, negative, uncertain) and macro averages.

    On Open-i gold only positive is scored (uncertain counts as not positive), with the mean over the
    six ChestX-ray8 findings beside the published values."""
    from .. import eval as rad_eval

    out_format = old_format or out_format  # --format: the older spelling of --output-format
    ids = rad_eval.read_ids(ids_path) if ids_path is not None else None
    result = rad_eval.evaluate(gold_path, pred_path, ids=ids)
    if out_format == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.table())

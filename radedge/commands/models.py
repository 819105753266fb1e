"""`radedge models list|verify`."""
from __future__ import annotations

import click

from .. import registry
from ..cli import EXIT_NOTHING_DONE, EXIT_OK, guarded
from ..errors import ModelError


@click.group()
def models() -> None:
    """List and verify installed models."""


@models.command("list")
@guarded
def list_() -> None:
    """Every model on the search path ($RADEDGE_MODEL_DIR, models/, installed), and the built-in 'rules':
    name, task, precision, licence (the terms its files are under: a model carries its training data's), folder."""
    entries = registry.list_models()
    if not entries:
        click.echo("no models found in: " + ", ".join(str(d) for d in registry.search_path()))
        return
    defaults = set(registry.DEFAULTS.values())
    click.echo(f"{'rules':24s} {'report-labels':15s} {'-':5s} {'Apache-2.0':17s} (built in: the rule labeler, no model file; "
               f"lexicon terms in radedge/lexicons/README.md)")
    for e in entries:
        if e.manifest is None:
            click.echo(f"{e.name:24s} BROKEN  {e.problem}")
            continue
        mark = " (default)" if e.name in defaults else ""
        licence = e.manifest.licence or "licence not stated"
        click.echo(f"{e.name:24s} {e.manifest.task:15s} {e.manifest.precision:5s} {licence:17s} {e.path}{mark}")


@models.command("verify")
@click.argument("names", nargs=-1)
@guarded
def verify(names: tuple[str, ...]) -> None:
    """Check manifests, sha256 of every file, and graph tensors; all models when no NAMES."""
    paths = [registry.resolve(n, _task_of(n)) for n in names] if names else [e.path for e in registry.list_models()]
    bad = 0
    for path in paths:
        try:
            registry.load_folder(path)
            click.echo(f"ok      {path}")
        except ModelError as exc:
            bad += 1
            click.echo(f"FAILED  {path}: {exc}", err=True)
    raise SystemExit(EXIT_NOTHING_DONE if bad else EXIT_OK)


def _task_of(name: str) -> str:
    # "default" is ambiguous between tasks; verify the report default (both are listed with no NAMES).
    for task, folder in registry.DEFAULTS.items():
        if name == folder:
            return task
    return "report-labels"

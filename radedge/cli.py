"""`radedge` command line: one group, each subcommand in radedge/commands/, loaded on first use.

Commands that other installed packages provide join the group through the `radedge.commands` entry
point group (`radedge build-engine` comes from runtimes/tensorrt this way), so radedge lists and runs
them without importing those packages by name.

Exit codes (DESIGN.md, README "The error contract"): 0 every input handled; 1 finished but some
inputs failed; 2 nothing done; 130 interrupted (Ctrl-C / SIGINT; what was written stays and resumes).
"""
from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any, Callable, Sequence

import click

from .errors import RadEdgeError

EXIT_OK, EXIT_PARTIAL, EXIT_NOTHING_DONE, EXIT_INTERRUPTED = 0, 1, 2, 130

# name -> "module:attribute"; modules are imported only when their command runs.
COMMANDS = {
    "label-reports": "radedge.commands.label_reports:label_reports",
    "score-dicoms": "radedge.commands.score_dicoms:score_dicoms",
    "score-images": "radedge.commands.score_images:score_images",
    "eval": "radedge.commands.evaluate:evaluate",
    "models": "radedge.commands.models:models",
    "bench": "radedge.commands.bench:bench",
}
PLUGIN_GROUP = "radedge.commands"  # entry points: name -> a click command in another package


def plugin_commands() -> dict[str, Any]:
    """Installed entry points of PLUGIN_GROUP by command name (not loaded)."""
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=PLUGIN_GROUP) if ep.name not in COMMANDS}


class LazyGroup(click.Group):
    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Click's run, with a usage error (unknown option, bad choice) as one line and exit 2."""
        standalone = kwargs.get("standalone_mode", True)
        kwargs["standalone_mode"] = False
        try:
            rv = super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "radedge"
            click.echo(f"{PREFIX} error: {exc.format_message()} (see '{where} -h')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"{PREFIX} error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        if standalone:  # click's Exit (e.g. from ctx.exit(code)) comes back as a code: exit with it
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """`--verbose` is a group option that may also stand after the subcommand (DESIGN.md)."""
        end = args.index("--") if "--" in args else len(args)
        if "--verbose" in args[:end]:
            args = ["--verbose", *(a for i, a in enumerate(args) if not (a == "--verbose" and i < end))]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*COMMANDS, *plugin_commands()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        try:
            if name in COMMANDS:
                module, attr = COMMANDS[name].split(":")
                return getattr(importlib.import_module(module), attr)
            plugin = plugin_commands().get(name)
            return None if plugin is None else plugin.load()
        except ImportError as exc:  # a command whose optional part is not installed
            raise click.ClickException(f"'{name}' is not available: {exc}") from exc


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", is_flag=True, help="Print tracebacks with errors.")
@click.version_option(package_name="radedge")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """radedge: label chest X-ray reports and score chest radiographs on premises."""
    import warnings

    ctx.obj = {"verbose": verbose}
    warnings.showwarning = _warning_line


PREFIX = "radedge:"  # every summary, warning and error line of every command starts with it


def _warning_line(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A library warning (e.g. `--device auto` running on the CPU) as one line, not a source path."""
    click.echo(f"{PREFIX} warning: {message}", err=True)


def say(line: str) -> None:
    """A summary line on stderr, with the one prefix every command uses."""
    click.echo(f"{PREFIX} {line}", err=True)


def fail(message: str, code: int = EXIT_NOTHING_DONE) -> None:
    """One line on stderr, then exit with `code`."""
    click.echo(f"{PREFIX} error: {message}", err=True)
    sys.exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn RadEdgeError / OSError / ValueError raised before or outside per-item handling into
    a one-line error and exit 2 (`--verbose` adds the traceback); an interrupt (SIGINT) exits 130,
    not 1, which means "finished, some items failed"."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            fail("interrupted; records written so far are kept, and a rerun resumes after them", EXIT_INTERRUPTED)
        except (RadEdgeError, OSError, ValueError) as exc:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and (ctx.find_root().obj or {}).get("verbose"):
                traceback.print_exc()
            fail(str(exc))

    return wrapper


class Progress:
    """A progress bar on stderr, opened on first use, so a run that fails before its first item
    prints only its error line. `write` prints a line above the bar (even when the bar is off)."""

    def __init__(self, unit: str, quiet: bool, **options: Any) -> None:
        self.unit, self.quiet, self.options = unit, quiet, options
        self.bar: Any = None

    def _open(self) -> Any:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(unit=self.unit, file=sys.stderr, disable=self.quiet, dynamic_ncols=True, **self.options)
        return self.bar

    def update(self, n: int = 1) -> None:
        self._open().update(n)

    def write(self, line: str) -> None:
        self._open().write(line, file=sys.stderr)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.close()


def quiet_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """-q/--quiet, the same in every command: no progress bar and no per-item error lines."""
    return click.option("-q", "--quiet", is_flag=True,
                        help="No progress bar or per-item error lines; the summary line and errors that stop "
                             "the run stay (every failed item is in the output).")(fn)


def model_option(default_model: str, help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """-m/--model, the same in every command that runs a model."""
    return click.option("-m", "--model", "model", default=default_model, show_default=True, help=help_text)


REPORT_MODEL_HELP = ("'default' (the shipped report student), 'rules' (the rule labeler, no model file), "
                     "a model name from `radedge models list`, or a model folder.")
IMAGE_MODEL_HELP = "'default' (the shipped image model), a model name from `radedge models list`, or a model folder."


def check_backend(model: str, backend: str, device: str) -> None:
    """Refuse option combinations no model can run (one line, exit 2) instead of ignoring an option."""
    if str(model) == "rules" and (backend != "onnxruntime" or device == "cuda"):
        raise ValueError(f"--model rules runs on the CPU without a model file; "
                               f"--backend {backend} --device {device} do not apply to it")


def apply_options(fn: Callable[..., Any], options: Sequence[Callable[..., Any]]) -> Callable[..., Any]:
    """Decorate `fn` with click options so that they appear in --help in the order listed."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def model_options(default_model: str = "default", help_text: str = IMAGE_MODEL_HELP
                  ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """-m/--model / --backend / --device / --threads, shared by every command that runs a model."""
    from .backends import BACKENDS, DEVICES

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return apply_options(fn, [
            model_option(default_model, help_text),
            click.option("--backend", type=click.Choice(BACKENDS), default="onnxruntime", show_default=True,
                         help="Inference engine."),
            click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                         help="cpu, cuda (error if absent), or auto (GPU if present, else CPU with a warning)."),
            click.option("--threads", type=click.IntRange(1), default=None,
                         help="Inference threads (default: onnxruntime's choice; score-dicoms and score-images: "
                              "the cores their decoding workers leave, at least 1)."),
        ])

    return decorate


ENGINES = ("local", "ray")


def engine_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--engine / --address / --num-workers, shared by the labelling and scoring commands."""
    return apply_options(fn, [
        click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
                     help="local: this process and its workers; ray: a Ray cluster (pip install "
                          "'radedge[ray]'), OUTPUT is then a Parquet dataset folder."),
        click.option("--address", default=None,
                     help="--engine ray: the cluster's address (default: a local Ray limited to this machine's CPUs)."),
        click.option("--num-workers", type=click.IntRange(1), default=None,
                     help="--engine ray: model actors (default: one per CPU of the cluster)."),
        click.option("--part-size", type=click.IntRange(1), default=None,
                     help="--engine ray: items per output part, the unit a rerun skips when done "
                          "[default: 4096 reports, 256 files]."),
    ])


def check_engine(engine: str, address: str | None, num_workers: int | None, part_size: int | None,
                 backend: str, device: str) -> None:
    """--address / --num-workers / --part-size mean something only with --engine ray, and Ray actors
    run the onnxruntime CPU backend: anything else is a usage error (exit 2)."""
    if engine != "ray" and (address or num_workers or part_size):
        raise click.UsageError("--address, --num-workers and --part-size need --engine ray")
    if engine == "ray" and (backend, device) != ("onnxruntime", "cpu"):
        raise click.UsageError("--engine ray runs onnxruntime on the CPU of each node: drop --backend / --device")


if __name__ == "__main__":  # pragma: no cover
    main()

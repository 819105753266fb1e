"""`radedge bench`: latency and throughput of the installed models on this machine (CPU or GPU).

Works from an installed package (no source checkout, no torch): it times the models' graphs on
synthetic inputs of the requested batch sizes and sequence lengths, after the same sha256 check the
pipelines do. The full comparison with peers, end-to-end runs and accuracy lives in the checkout's
`benchmarks/`, which times every model with the same functions (radedge.bench).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from .. import bench as core
from ..backends import BACKENDS, DEVICES
from ..cli import guarded, say
from ..manifest import Manifest
from ..registry import DEFAULTS, resolve

TASKS = {"reports": "report-labels", "images": "image-findings"}
JSON_FORMAT = "radedge-bench"
JSON_VERSION = 2  # 2: no end-to-end cases (--inputs) and no import time


def parse_int_list(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]; raises ValueError on anything else."""
    values = [int(v) for v in re.split(r"[,\s]+", text.strip()) if v]
    if not values or any(v <= 0 for v in values):
        raise ValueError(f"expected positive integers separated by commas, got {text!r}")
    return values


def _int_list(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        return parse_int_list(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _targets(models: tuple[str, ...], task: str | None) -> list[tuple[str, str]]:
    """(model, task) pairs: the given models (task read from each manifest) or the tasks' defaults."""
    defaults = [(DEFAULTS[t], t) for t in ([TASKS[task]] if task else TASKS.values())]
    pairs = [] if models else defaults
    for name in models:
        if name == "default":
            pairs += defaults
        elif name == "rules":
            raise click.UsageError("the rule labeler has no model graph to time (time `radedge label-reports "
                                   "--model rules` on your reports instead)")
        else:
            path = resolve(name, TASKS[task] if task else "report-labels")
            pairs.append((str(path), Manifest.read(path).task))
    return pairs


@click.command("bench")
@click.option("-m", "--model", "models", multiple=True, metavar="NAME|PATH",
              help="Model to time (repeatable); default: the shipped default for each task.")
@click.option("--task", type=click.Choice(sorted(TASKS)), default=None, help="Only report or image models.")
@click.option("--batch-sizes", default="1,8,32", show_default=True, callback=_int_list, help="Batch sizes.")
@click.option("--seq-lens", default="64,128", show_default=True, callback=_int_list,
              help="Sequence lengths (report models; capped at the model's max_length).")
@click.option("--backend", type=click.Choice(BACKENDS), default="onnxruntime", show_default=True)
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("--threads", type=click.IntRange(1), default=None, help="Inference threads.")
@click.option("--iters", type=click.IntRange(1), default=20, show_default=True, help="Timed calls per case.")
@click.option("--warmup", type=click.IntRange(0), default=2, show_default=True, help="Untimed calls per case.")
@click.option("--max-seconds", type=float, default=10.0, show_default=True,
              help="Stop a case's timed calls after this long (at least 3 calls).")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as JSON here.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw items/s against batch size as a PNG here (needs matplotlib).")
@guarded
def bench(models: tuple[str, ...], task: str | None, batch_sizes: list[int], seq_lens: list[int], backend: str,
          device: str, threads: int | None, iters: int, warmup: int, max_seconds: float,
          json_out: Path | None, plot_out: Path | None) -> None:
    """Time the installed models: p50 / p95 / p99 latency, throughput, peak RSS and load time."""
    if plot_out is not None:
        from ..plots import pyplot

        pyplot()  # no matplotlib: say so now, not after the timing
    machine = core.machine_info()
    say(f"machine: {core.describe_machine(machine)}")
    records, rows = [], []
    for name, model_task in _targets(models, task):
        record, model_rows = core.bench_model(name, model_task, backend=backend, device=device, threads=threads,
                                              batch_sizes=batch_sizes, seq_lens=seq_lens, warmup=warmup,
                                              iters=iters, max_seconds=max_seconds)
        records.append(record)
        rows += model_rows
        say(f"{record['model']}: loaded in {record['load_s'] * 1e3:.0f} ms ({record['precision']}, "
            f"{record['backend']} on {record['device']})")
    click.echo(core.format_table(rows, core.CASE_COLUMNS))
    if json_out is not None:
        payload = {"format": JSON_FORMAT, "version": JSON_VERSION, "machine": machine, "models": records,
                   "cases": rows}
        json_out.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_out.with_name(json_out.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        tmp.replace(json_out)
        say(f"wrote {json_out}")
    if plot_out is not None:
        say(f"wrote {plot_cases(rows, machine, plot_out)}")


def plot_cases(rows: list[dict], machine: dict, path: Path) -> Path:
    """One chart: items/s of each model (and sequence length) against batch size."""
    from ..plots import throughput_chart

    series: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        label = f"{r['model']} {r['precision']}" + (f", {r['sequence']} tokens" if r.get("sequence") else "")
        series.setdefault(label, []).append((r["batch"], r["throughput_per_s"]))
    return throughput_chart(series, "Items per second of each model graph by batch size", "items", path, machine)

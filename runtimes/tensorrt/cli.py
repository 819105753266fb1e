"""`radedge build-engine --model MODEL`: build this GPU's TensorRT plan for a model.

The command belongs to runtimes/ (radedge never imports it): the radedge CLI finds it through the
`radedge.commands` entry point group that `pip install` registers (pyproject.toml), so it appears
as `radedge build-engine` wherever radedge and runtimes are installed together.
"""
from __future__ import annotations

import json

import click

from radedge.cli import guarded
from radedge.errors import DeviceUnavailableError


@click.command("build-engine")
@click.argument("model_arg", metavar="[MODEL]", required=False)  # the older positional spelling of --model
@click.option("-m", "--model", default=None,
              help="Model to build for: 'default' (the report student), a name from `radedge models list`, "
                   "or a model folder [default: default].")
@click.option("--precision", type=click.Choice(["fp16", "int8"]), default="fp16", show_default=True,
              help="int8 needs a model with Q/DQ nodes or --calib; it falls back to fp16 when its accuracy gate fails.")
@click.option("--calib", "calib", type=click.Path(exists=True), default=None,
              help="Folder of reports (*.txt, *.jsonl) or images to calibrate int8 on.")
@click.option("--batch-size", "max_batch", type=click.IntRange(1), default=32, show_default=True,
              help="Largest batch the plan accepts (the --batch-size the plan will run; bigger batches are split).")
@click.option("--max-batch", "old_max_batch", type=click.IntRange(1), default=None, hidden=True)  # older spelling
@click.option("--max-length", type=click.IntRange(1), default=None,
              help="Longest token sequence (default: the model's max_length).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Plan cache (default: $RADEDGE_ENGINE_DIR or ~/.cache/radedge/engines).")
@click.option("--force", is_flag=True, help="Rebuild even when a cached plan fits.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan's metadata as JSON.")
@guarded
def build_engine(model_arg: str | None, model: str | None, precision: str, calib: str | None, max_batch: int,
                 old_max_batch: int | None, max_length: int | None, cache_dir: str | None, force: bool,
                 as_json: bool) -> None:
    """Build (or reuse) a TensorRT plan for MODEL on this machine's GPU.

    Plans are cached by model sha256, GPU name, compute capability, TensorRT version and precision,
    so a new GPU or TensorRT rebuilds instead of failing. Exit 2 when no GPU or TensorRT is present.
    """
    from radedge.backends.cuda import GPU_EXTRA_HINT, import_tensorrt, require_gpu

    if model_arg and model and model_arg != model:
        raise ValueError(f"two models given ({model_arg} and --model {model}); give one")
    if str(model or model_arg) == "rules":
        raise ValueError("the rule labeler has no model graph to build an engine for")
    model = model or model_arg or "default"
    max_batch = old_max_batch or max_batch
    import_tensorrt()  # the clearest error first: no TensorRT, then no GPU, then no builder
    require_gpu("cuda")
    try:
        from .build import build_plan, resolve_model, summary
    except ImportError as exc:  # onnx, which the builder needs, comes with the gpu extra
        raise DeviceUnavailableError(f"the engine builder cannot load ({exc}); {GPU_EXTRA_HINT}") from exc
    result = build_plan(resolve_model(model), precision=precision, calib=calib, max_batch=max_batch,
                        max_length=max_length, cache_dir=cache_dir, force=force)
    click.echo(json.dumps({"plan": str(result.plan), **result.meta}, indent=2) if as_json else summary(result))

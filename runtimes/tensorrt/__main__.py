"""`python -m runtimes.tensorrt build|prepare MODEL ...` (see the package docstring)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from radedge.errors import RadEdgeError

from .build import resolve_model, summary
from .profiles import DEFAULT_MAX_BATCH


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtimes.tensorrt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("build", "prepare"):
        p = sub.add_parser(name, help="build (or reuse) this GPU's plan" if name == "build"
                           else "write the TensorRT-ready ONNX graph (CPU only)")
        p.add_argument("model", help="model folder or name")
        if name == "prepare":
            p.add_argument("output", help="where to write the prepared .onnx")
        p.add_argument("--precision", choices=("fp16", "int8"), default="fp16")
        p.add_argument("--calib", help="folder of reports (*.txt, *.jsonl) or images for int8 calibration")
        p.add_argument("--calib-limit", type=int, default=256)
        p.add_argument("--strongly-typed", action="store_true", help="prepare only: graph-level fp16 (TensorRT 11)")
        if name == "build":
            p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
            p.add_argument("--opt-batch", type=int)
            p.add_argument("--max-length", type=int, help="longest sequence (default: the manifest's max_length)")
            p.add_argument("--opt-length", type=int)
            p.add_argument("--cache-dir", help="plan cache (default: $RADEDGE_ENGINE_DIR or ~/.cache/radedge/engines)")
            p.add_argument("--force", action="store_true", help="rebuild even when a cached plan fits")
            p.add_argument("--json", action="store_true", help="print the plan's metadata as JSON")
    args = parser.parse_args(argv)
    try:
        model_dir = resolve_model(args.model)
        if args.command == "prepare":
            return _prepare(model_dir, args)
        from .build import build_plan

        result = build_plan(model_dir, precision=args.precision, calib=args.calib, max_batch=args.max_batch,
                            opt_batch=args.opt_batch, max_length=args.max_length, opt_length=args.opt_length,
                            cache_dir=args.cache_dir, force=args.force, calib_limit=args.calib_limit)
    except (RadEdgeError, OSError, ValueError) as exc:
        print(f"runtimes.tensorrt: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"plan": str(result.plan), **result.meta}, indent=2) if args.json else summary(result))
    return 0


def _prepare(model_dir: Path, args: argparse.Namespace) -> int:
    import onnx

    from radedge.manifest import Manifest

    from .precision import prepare

    manifest = Manifest.read(model_dir)
    manifest.verify_files(model_dir)
    prepared = prepare(model_dir, manifest, args.precision, args.calib, args.strongly_typed, args.calib_limit)
    onnx.save(prepared.model, args.output)
    print(json.dumps({"output": args.output, "precision": prepared.precision, "requested": prepared.requested,
                      "source_quantization": prepared.source_kind, "surgery": prepared.surgery,
                      "gate": prepared.gate, "notes": prepared.notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Image model speed: images/s at batch 16 on preprocessed input, shipped ONNX vs the same ViT in PyTorch.

    python -m benchmarks.image_speed [--model default|PATH] [--batch 16] [--threads 2] [--json OUT.json]

Cases, in one run on the same machine:
- the shipped `model.onnx` (int8 for the default) on onnxruntime, through radedge's backend;
- `model.fp32.onnx` beside it, when present;
- the same architecture in PyTorch fp32 eager (export.images.model, `architecture` from the
  manifest). Its weights are random: speed does not depend on the values, and the trained
  checkpoint is not shipped.
Input is real preprocessed images when shared/data is present (radedge.images.preprocess with the
manifest's spec), else random values of the same shape. Throughput = batch / median call time
(radedge.bench.measure), robust to other processes sharing the CPU; the load average is printed.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radedge.bench import format_table, measure
from radedge.manifest import Manifest
from radedge.registry import open_model, resolve

from .data import DATA

IMAGES = DATA / "images" / "nih" / "images"
TASK = "image-findings"


def input_batch(manifest: Manifest, batch: int) -> np.ndarray:
    """float32 [batch, C, S, S]: preprocessed NIH images when available, else random."""
    from radedge.images.preprocess import check_spec, load_image, preprocess

    files = sorted(IMAGES.glob("*.png"))[:batch] if IMAGES.is_dir() else []
    if len(files) == batch:
        return np.stack([preprocess(load_image(f), manifest.preprocess) for f in files])
    spec = check_spec(manifest.preprocess)
    return np.random.default_rng(0).normal(size=(batch, spec["channels"], spec["size"], spec["size"])).astype(np.float32)


def bench_onnx(model_dir: Path, pixels: np.ndarray, threads: int, file: str | None = None,
               seconds: float = 10.0) -> dict[str, Any]:
    """images/s of an ONNX file of the model folder (default: the manifest's model.onnx, via the registry)."""
    if file is None:
        loaded = open_model(str(model_dir), TASK, threads=threads)
        run = loaded.backend.run
        precision = loaded.manifest.precision
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(model_dir / file), opts, providers=["CPUExecutionProvider"])
        run = lambda feeds: sess.run(None, feeds)  # noqa: E731
        precision = "fp32"
    lat = measure(lambda: run({"pixels": pixels}), items_per_call=len(pixels), warmup=3, iters=50,
                  max_seconds=seconds)
    return {"runtime": "onnxruntime", "file": file or "model.onnx", "precision": precision, "batch": len(pixels),
            "threads": threads, "images_per_s": round(lat.throughput, 1), **lat.to_dict()}


def bench_torch(manifest: Manifest, pixels: np.ndarray, threads: int, seconds: float = 10.0) -> dict[str, Any]:
    """images/s of the same ViT architecture in PyTorch fp32 eager (random weights)."""
    import torch

    from export.images.model import ViTSpec, build_model

    torch.set_num_threads(threads)
    model, _ = build_model(ViTSpec(**manifest.extra["architecture"]), pretrained=False)
    model.eval()
    x = torch.from_numpy(pixels)

    def call() -> None:
        with torch.inference_mode():
            torch.sigmoid(model(x))

    lat = measure(call, items_per_call=len(pixels), warmup=3, iters=50, max_seconds=seconds)
    return {"runtime": "pytorch eager", "file": "(same architecture)", "precision": "fp32", "batch": len(pixels),
            "threads": threads, "images_per_s": round(lat.throughput, 1), **lat.to_dict()}


def run(model: str = "default", batch: int = 16, threads: int = 2, seconds: float = 10.0,
        with_torch: bool = True) -> dict[str, Any]:
    model_dir = resolve(model, TASK)
    manifest = Manifest.read(model_dir)
    pixels = input_batch(manifest, batch)
    rows = [bench_onnx(model_dir, pixels, threads, seconds=seconds)]
    if (model_dir / "model.fp32.onnx").is_file():
        rows.append(bench_onnx(model_dir, pixels, threads, "model.fp32.onnx", seconds))
    if with_torch and "architecture" in manifest.extra:
        rows.append(bench_torch(manifest, pixels, threads, seconds))
    size_mb = sum((model_dir / f).stat().st_size for f in manifest.files) / 2**20
    return {"model": str(model_dir), "artifact_mb": round(size_mb, 2),
            "model_onnx_mb": round((model_dir / "model.onnx").stat().st_size / 2**20, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()], "cpu_count": os.cpu_count(), "cases": rows}


COLUMNS = (("runtime", "runtime"), ("file", "file"), ("precision", "prec"), ("batch", "batch"),
           ("threads", "threads"), ("p50_ms", "p50 ms/batch"), ("images_per_s", "images/s"))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per case (at least 3 calls)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    result = run(args.model, args.batch, args.threads, args.seconds, not args.no_torch)
    print(format_table(result["cases"], COLUMNS))
    print(f"\nartifact (files in the manifest): {result['artifact_mb']} MiB; model.onnx {result['model_onnx_mb']} MiB; "
          f"load average {result['load_average']} on {result['cpu_count']} CPUs")
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

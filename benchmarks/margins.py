"""How far a JPEG 2000 frame may be reduced: the shipped model's outputs, full against reduced
decoding, as the reduced frame's size nears the model's input.

    python -m benchmarks.margins [--sides 1700,1900,...] [--margins 1.0,1.05,...] [--blocks] [--json OUT.json]

`radedge.images.codecs.jpeg2000.MARGIN` (M) picks the coarsest resolution level whose frame is at
least M times the size the preprocessing resizes to. The differences it causes depend on the
level's ratio (reduced size / resized size), on the wavelet (lossless 5/3, lossy 9/7) and on the
image's own texture, so they are measured over many frames, not the few full-size files:
centre crops, at native pixel pitch (a crop keeps the detector's texture where a resize would
smooth it), of the four full-size radiographs of shared/data (STUDY05 2972 x 2840, and the three
covid-19 originals of images/full-res, 4280 x 3520 and smaller), cut to each long side in
`--sides`, each written as JPEG 2000 lossless and lossy (ratio 20, as `benchmarks.dicom`'s full-size
files). Every level that a margin in `--margins` picks is scored (batch 1), and the largest
difference of the network's outputs against full decoding is kept.

The summary gives, for each margin, the worst difference over the levels it picks: the shipped
MARGIN is the smallest one whose worst case stays well inside the 0.03 the project allows.
`--blocks` reads every sample as a block, lossy (9/7) ones included, as before `codecs.wavelet`.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from radedge.images.codecs import jpeg2000
from radedge.images.dicom import read_dicom
from radedge.images.preprocess import preprocess

from .dicom import DATA, FULL_RES, STUDY05, _write_kind, model_path, twelve_bit
from export.cli import command_parser, run_command

SIDES = (1700, 1900, 2100, 2300, 2500, 2700, 2900, 3100, 3300, 3500, 3700, 3900, 4100)
MARGINS = tuple(round(1 + 0.05 * k, 2) for k in range(31))  # 1.0 to 2.5
KINDS = ("j2k-lossless", "j2k-lossy")


def sources() -> dict[str, np.ndarray]:
    """name -> 12-bit pixels of the full-size radiographs (as `benchmarks.dicom.fullsize_folder`)."""
    import pydicom

    out = {"STUDY05": pydicom.dcmread(DATA / STUDY05["j2k-lossless"]).pixel_array}
    out.update((path.stem, twelve_bit(path)) for path in sorted(FULL_RES.glob("*.jpg")))
    return out


def centre_crop(pixels: np.ndarray, side: int) -> np.ndarray | None:
    """The centre of `pixels` with its long side cut to `side`, the aspect kept; None if smaller."""
    rows, cols = pixels.shape
    scale = side / max(rows, cols)
    if scale > 1:
        return None
    h, w = round(rows * scale), round(cols * scale)
    top, left = (rows - h) // 2, (cols - w) // 2
    return np.ascontiguousarray(pixels[top:top + h, left:left + w])


def measure(sides: Sequence[int] = SIDES, margins: Sequence[float] = MARGINS,
            model: str = "default", blocks: bool = False) -> list[dict[str, Any]]:
    """One row per (crop, kind, level picked by some margin): ratio, the margins that pick it, and
    the largest network-output difference against full decoding."""
    from radedge.images.scorer import ImageScorer

    path_, _ = model_path(model)
    scorer = ImageScorer.load(str(path_), batch_size=1, reduced=False)
    spec = scorer.spec
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="radedge-margins-") as tmp:
        for name, pixels in sources().items():
            for side in sides:
                crop = centre_crop(pixels, side)
                if crop is None:
                    continue
                for kind in KINDS:
                    path = Path(tmp) / f"{name}-{side}-{kind}.dcm"
                    _write_kind(crop, kind, path)
                    rows += levels_of(path, name, kind, scorer, spec, margins, blocks)
                    path.unlink()
    return rows


def levels_of(path: Path, name: str, kind: str, scorer: Any, spec: dict, margins: Sequence[float],
              blocks: bool = False) -> list[dict[str, Any]]:
    """The rows of one file: each distinct level the margins pick, scored against full decoding
    (`blocks`: its samples read as blocks whatever the wavelet)."""
    full = read_dicom(path, voi=spec["voi"])
    reference = scorer.infer(preprocess(full.image, spec)[None])[0]
    trained = np.isfinite(reference)
    picked: dict[str, dict[str, Any]] = {}
    for margin in margins:
        red = read_at_margin(path, spec, margin)
        if not red.decoded.startswith("jpeg2000"):
            continue
        if red.decoded not in picked:
            kernel = "box" if blocks else red.kernel
            out = scorer.infer(preprocess(red.image, spec, red.shape, red.origin, kernel)[None])[0]
            ratio = max(red.image.shape) / spec["size"]
            picked[red.decoded] = {"source": name, "kind": kind, "shape": list(full.image.shape),
                                   "decoded": red.decoded, "kernel": kernel, "ratio": round(ratio, 3),
                                   "max_diff": float(np.abs(out - reference)[trained].max()), "margins": []}
        picked[red.decoded]["margins"].append(margin)
    return list(picked.values())


def read_at_margin(path: Path, spec: dict, margin: float) -> Any:
    """`read_dicom` reduced with `jpeg2000.MARGIN` set to `margin` for the call."""
    shipped, jpeg2000.MARGIN = jpeg2000.MARGIN, margin
    try:
        return read_dicom(path, voi=spec["voi"], decode_for=spec)
    finally:
        jpeg2000.MARGIN = shipped


def worst_by_margin(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each margin: the levels it picks, per kind, and their worst difference."""
    margins = sorted({m for r in rows for m in r["margins"]})
    out = []
    for m in margins:
        entry: dict[str, Any] = {"margin": m}
        for kind in KINDS:
            diffs = [r["max_diff"] for r in rows if r["kind"] == kind and m in r["margins"]]
            entry[kind] = {"files": len(diffs), "worst": max(diffs, default=float("nan")),
                           "over_0.02": sum(d > 0.02 for d in diffs), "over_0.03": sum(d > 0.03 for d in diffs)}
        out.append(entry)
    return out


def format_rows(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'source':28s} {'kind':13s} {'shape':>11s} {'decoded':15s} {'kernel':6s} {'ratio':>6s} {'network':>8s}"]
    for r in sorted(rows, key=lambda r: (r["kind"], r["ratio"])):
        shape = "x".join(map(str, r["shape"]))
        lines.append(f"{r['source'][:28]:28s} {r['kind']:13s} {shape:>11s} {r['decoded']:15s} {r['kernel']:6s} "
                     f"{r['ratio']:6.2f} {r['max_diff']:8.4f}")
    return "\n".join(lines)


def format_summary(worst: Sequence[dict[str, Any]]) -> str:
    head = "".join(f"  {k + ':':>13s} {'files':>5s} {'worst':>7s} {'>0.02':>5s} {'>0.03':>5s}" for k in KINDS)
    lines = [f"{'margin':>6s}{head}"]
    for e in worst:
        cells = "".join(f"  {'':13s} {e[k]['files']:5d} {e[k]['worst']:7.4f} {e[k]['over_0.02']:5d} "
                        f"{e[k]['over_0.03']:5d}" for k in KINDS)
        lines.append(f"{e['margin']:6.2f}{cells}")
    lines.append(f"shipped: jpeg2000.MARGIN = {jpeg2000.MARGIN}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = command_parser("benchmarks.margins", __doc__.split("\n")[0])
    ap.add_argument("--sides", default=",".join(map(str, SIDES)), help="long sides of the centre crops, in pixels")
    ap.add_argument("--margins", default=",".join(map(str, MARGINS)), help="JPEG 2000 margins to try")
    ap.add_argument("--model", default="default", help="default | model name or folder")
    ap.add_argument("--blocks", action="store_true", help="read every sample as a block (lossy ones too)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows and the summary here")
    args = ap.parse_args(argv)
    try:
        sides = [int(s) for s in args.sides.split(",")]
        margins = [float(s) for s in args.margins.split(",")]
    except ValueError:
        ap.error("--sides takes integers and --margins numbers, comma-separated")
    if not sides or min(sides) < 64 or not margins or min(margins) < 1:
        ap.error("--sides must be at least 64 pixels and --margins at least 1")
    rows = measure(sides, margins, args.model, args.blocks)
    worst = worst_by_margin(rows)
    print(format_rows(rows))
    print()
    print(format_summary(worst))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "by_margin": worst}, indent=1))
    return 0


if __name__ == "__main__":
    run_command(main, "benchmarks.margins")

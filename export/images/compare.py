"""Rep-GLS vs plain BCE (and report-guided rates vs source priors only), several seeds each.

    python -m export.images.compare --rates gls bce --seeds 0 1 2 [--train-blocks 0] [--epochs 12]

Every run trains on the same patient-level split and the same cached stem features (kept on disk
under --runs, so only the first run pays for the stem); a seed changes the head's initialisation,
the batch order and which cached view each epoch draws. Each run leaves
`<runs>/<tag>/<rates>-s<seed>/{checkpoint.pt,val_probs.npy}` and is not redone when they exist, so
the command can be stopped and resumed. It prints, per source and finding, the validation AUC mean
and standard deviation over the seeds of each rate mode, and writes the same as JSON.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from radedge.labels import FINDINGS

from .data import DEFAULT_IMAGES, Sample
from .metrics import per_source_metrics
from .model import ViTSpec
from .rates import RATE_MODES, assign_rates
from .train import TrainConfig, prepare_data, save_checkpoint, train
from ..cli import command_parser, run_command

log = logging.getLogger("export.images.compare")
REPO = Path(__file__).resolve().parents[2]
DEFAULT_RUNS = REPO / "runs" / "image-vit"


def run_dir(runs: Path, cfg: TrainConfig) -> Path:
    return runs / f"tb{cfg.spec.train_blocks}-e{cfg.epochs}-v{cfg.views}" / f"{cfg.rates}-s{cfg.seed}"


def train_or_load(cfg: TrainConfig, runs: Path, images_root: Path = DEFAULT_IMAGES,
                  data: tuple[list[Sample], list[Sample]] | None = None) -> tuple[Path, np.ndarray, list[Sample]]:
    """Train one (rates, seed) run unless its folder already holds it; (folder, val_probs, val)."""
    folder = run_dir(runs, cfg)
    train_set, val = data if data is not None else prepare_data(replace(cfg, rates="gls"), images_root)
    if (folder / "val_probs.npy").is_file() and (folder / "checkpoint.pt").is_file():
        return folder, np.load(folder / "val_probs.npy"), val
    t0 = time.time()
    result = train(cfg, images_root, data=(assign_rates(train_set, cfg.rates), val), cache_dir=runs / "features")
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(result, folder)
    np.save(folder / "val_probs.npy", result.val_probs)
    (folder / "metrics.json").write_text(json.dumps({"minutes": round((time.time() - t0) / 60, 1),
                                                    "validation": per_source_metrics(val, result.val_probs),
                                                    "history": result.history}, indent=1) + "\n")
    log.info("%s: %.1f min", folder, (time.time() - t0) / 60)
    return folder, result.val_probs, val


def summarise(val: Sequence[Sample], probs: dict[str, list[np.ndarray]]) -> dict[str, Any]:
    """{mode: {source: {finding: {mean, sd, runs}}}} of validation AUC over the seeds of each mode."""
    out: dict[str, Any] = {}
    for mode, runs in probs.items():
        metrics = [per_source_metrics(val, p) for p in runs]
        out[mode] = {}
        for src in metrics[0]:
            rows = {}
            for f in [*FINDINGS, "mean"]:
                values = [m[src]["mean_auc"] if f == "mean" else m[src]["auc"][f] for m in metrics]
                if any(v is None for v in values):
                    continue
                rows[f] = {"mean": round(float(np.mean(values)), 4), "sd": round(float(np.std(values, ddof=1)), 4)
                           if len(values) > 1 else 0.0, "runs": values}
            out[mode][src] = rows
    return out


def table(summary: dict[str, Any]) -> str:
    """Markdown: per source and finding, mean +- sd of the AUC over seeds for each rate mode."""
    modes = list(summary)

    def n_runs(mode: str) -> int:
        return next((len(r["runs"]) for rows in summary[mode].values() for r in rows.values()), 0)

    lines = ["| source | finding | " + " | ".join(f"{m} (mean ± sd, {n_runs(m)} seeds)" for m in modes) + " |",
             "|---|---|" + "---|" * len(modes)]
    for src, rows in summary[modes[0]].items():
        for f in rows:
            cells = [summary[m].get(src, {}).get(f) for m in modes]
            lines.append(f"| {src} | {'**mean AUC**' if f == 'mean' else f} | "
                         + " | ".join("-" if c is None else f"{c['mean']:.3f} ± {c['sd']:.3f}" for c in cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    ap = command_parser("export.images.compare", __doc__)
    ap.add_argument("--rates", nargs="+", choices=RATE_MODES, default=["gls", "bce"],
                    help="label-rate modes to compare (GLS rates, class priors, plain BCE)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds per mode")
    ap.add_argument("--train-blocks", type=int, default=0, help="last stem blocks fine-tuned")
    ap.add_argument("--epochs", type=int, default=12, help="epochs per training run")
    ap.add_argument("--views", type=int, default=3,
                    help="augmented views per training image cached besides the clean one")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="folder for the runs' checkpoints and logs")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="training images (the data set folder)")
    ap.add_argument("--json", type=Path, default=None, help="default: <runs>/compare.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(spec=ViTSpec(train_blocks=args.train_blocks), epochs=args.epochs, views=args.views,
                      threads=args.threads, max_minutes=1e9)
    data = prepare_data(cfg, args.images)
    probs: dict[str, list[np.ndarray]] = {}
    for seed in args.seeds:
        for mode in args.rates:
            _, p, val = train_or_load(replace(cfg, rates=mode, seed=seed), args.runs, args.images, data)
            probs.setdefault(mode, []).append(p)
    summary = summarise(data[1], probs)
    print(table(summary))
    path = args.json or args.runs / f"compare-tb{args.train_blocks}-e{args.epochs}-v{args.views}.json"
    path.write_text(json.dumps({"config": cfg.to_dict(), "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    run_command(main, "export.images.compare")

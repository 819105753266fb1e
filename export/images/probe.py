"""Rep-GLS vs BCE (and report-guided rates vs source priors) on a cheap model, with many seeds.

    python -m export.images.probe [--seeds 0 1 2 3 4] [--epochs 40] [--json runs/image-vit/probe.json]

Training the shipped ViT once takes 10-60 min on this shared 2-core CPU, so a seed study of it does
not fit; this one measures the *loss* on a head that trains in seconds: the frozen EfficientNet-Lite0
stem (the shipped model's own, cached features of export.images.compare's first run, clean + 3
augmented views), global average and max pooling (2 x 112 values), and a small MLP (256 hidden, GELU,
dropout 0.2) with 14 sigmoid outputs, trained with the masked GLS loss for each rate mode on the same
patient-level split. A seed changes the initialisation, batch order and drawn views. Printed: per
source and finding, the validation AUC mean and standard deviation over seeds per mode.
It is **not** the shipped model: it says what the rates do on this data, not what the ViT scores.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from ..cli import command_parser, run_command
from ..common import seed_everything
from .compare import DEFAULT_RUNS, summarise, table
from .data import DEFAULT_IMAGES, stack_labels
from .gls import gls_loss
from .model import ViTSpec, build_model
from .rates import RATE_MODES, assign_rates
from .train import TrainConfig, cache_features, prepare_data, preprocess_spec

log = logging.getLogger("export.images.probe")


@torch.no_grad()
def pooled(model, feats: torch.Tensor, cut: int, batch: int = 64) -> torch.Tensor:
    """[n, views, C, h, w] cached features at `cut` -> [n, views, 2 * 112] (mean and max pooled stem output)."""
    out = []
    for view in range(feats.shape[1]):
        rows = []
        for i in range(0, len(feats), batch):
            x = model.stem.rest(feats[i:i + batch, view].float(), cut)
            rows.append(torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], dim=1))
        out.append(torch.cat(rows))
    return torch.stack(out, dim=1)


def head(width: int) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 256), nn.GELU(), nn.Dropout(0.2), nn.Linear(256, 14))


def train_probe(x: torch.Tensor, samples, seed: int, epochs: int, lr: float = 1e-3, batch: int = 64) -> nn.Module:
    seed_everything(seed)
    targets, mask, rates = (torch.from_numpy(a) for a in stack_labels(samples))
    net = head(x.shape[-1])
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * math.ceil(len(x) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(x), generator=gen)
        view = torch.randint(0, x.shape[1], (len(x),), generator=gen)
        for b in range(0, len(x), batch):
            idx = order[b:b + batch]
            loss = gls_loss(net(x[idx, view[idx]]), targets[idx], rates[idx], mask[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


def main(argv: Sequence[str] | None = None) -> None:
    ap = command_parser("export.images.probe", __doc__)
    ap.add_argument("--rates", nargs="+", choices=RATE_MODES, default=list(RATE_MODES), help="rate modes compared")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="seeds per mode")
    ap.add_argument("--epochs", type=int, default=40, help="epochs per head")
    ap.add_argument("--runs", type=Path, default=DEFAULT_RUNS, help="where the cached stem features are kept")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="shared/data/images")
    ap.add_argument("--json", type=Path, default=None, help="default: <runs>/probe.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(1)
    cfg = TrainConfig(spec=ViTSpec())
    train_set, val = prepare_data(cfg, args.images)
    model, _ = build_model(cfg.spec)
    model.eval()
    cut = cfg.cut(model)
    pre = preprocess_spec(cfg.spec)
    folder = args.runs / "features"
    kept = folder / "pooled.pt"  # [train, val] pooled features: pooling is the slow part
    if kept.is_file():
        x_train, x_val = torch.load(kept, weights_only=True)
    else:
        x_train = pooled(model, cache_features(model, train_set, pre, cfg.views, cfg.view_seed, cut=cut, folder=folder), cut)
        x_val = pooled(model, cache_features(model, val, pre, 0, cfg.view_seed, cut=cut, folder=folder), cut)[:, 0]
        torch.save([x_train, x_val], kept)
    probs: dict[str, list[np.ndarray]] = {}
    for mode in args.rates:
        samples = assign_rates(train_set, mode)
        for seed in args.seeds:
            net = train_probe(x_train, samples, seed, args.epochs)
            with torch.no_grad():
                probs.setdefault(mode, []).append(torch.sigmoid(net(x_val)).numpy())
            log.info("%s seed %d done", mode, seed)
    np.savez(args.runs / "probe_probs.npz", **{mode: np.stack(p) for mode, p in probs.items()})
    summary = summarise(val, probs)
    print(table(summary))
    path = args.json or args.runs / "probe.json"
    path.write_text(json.dumps({"model": "frozen stem, mean+max pooled, MLP head", "epochs": args.epochs,
                                "seeds": args.seeds, "summary": summary}, indent=1) + "\n")


if __name__ == "__main__":
    run_command(main, "export.images.probe")

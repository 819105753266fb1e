"""Train the image ViT with the GLS loss (r = 0 everywhere gives the plain BCE baseline).

The frozen stem's output is computed once per image for a few augmented views (view 0 is the
un-augmented image) and cached as float16; each epoch draws one view per image. With a patch stem
nothing is frozen and the cached "features" are the preprocessed pixels themselves. Everything is
seeded (numpy, torch, view order) and bounded by epochs and by a wall-clock budget.

    python -m export.images.train --out runs/image-vit/gls --rates gls
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from radedge.cli import Progress
from radedge.labels import FINDINGS

from ..cli import command_parser, run_command
from ..common import seed_everything
from .data import DEFAULT_IMAGES, Augment, Sample, load_pixels, load_sources, split_by_patient, stack_labels
from .gls import gls_loss
from .model import ImageViT, ViTSpec, build_model
from .rates import RATE_MODES, assign_rates, describe

log = logging.getLogger("export.images.train")


def preprocess_spec(spec: ViTSpec) -> dict[str, Any]:
    """The manifest's preprocess dict for this model (radedge.images.preprocess reads it)."""
    return {"size": spec.size, "resize": "letterbox", "channels": 3, "mean": [0.5], "std": [0.5], "voi": True}


@dataclass
class TrainConfig:
    spec: ViTSpec = field(default_factory=ViTSpec)
    rates: str = "gls"  # "gls", "priors" or "bce" (rates.RATE_MODES)
    sources: tuple[str, ...] = ("nih", "pediatric", "covid")
    epochs: int = 30
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    views: int = 3  # augmented views per training image, besides the clean one
    seed: int = 0
    threads: int = 1
    max_minutes: float = 12.0  # stop training (not caching) after this much wall time
    pretrained: bool = True
    # Stem blocks run before caching (at most the frozen ones): one cache at 8 serves both the frozen
    # stem and fine-tuning of its last 3 blocks.
    cache_cut: int = 8
    view_seed: int = 0  # seed of the cached augmented views (fixed, so that runs with other seeds share them)

    def cut(self, model: ImageViT) -> int:
        return min(self.cache_cut, model.frozen_blocks)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["spec"] = self.spec.to_dict()
        return d


@torch.no_grad()
def cache_features(model: ImageViT, samples: Sequence[Sample], pre: dict[str, Any], views: int, seed: int,
                   batch: int = 32, cut: int | None = None, folder: Path | None = None) -> torch.Tensor:
    """float16 [n, views + 1, ...] output of the first `cut` stem blocks; view 0 is un-augmented.
    Deterministic per seed; with `folder`, kept on disk under a key of everything it depends on
    (the stem is the slow part on a CPU, and every training run of a comparison shares it)."""
    path = None
    if folder is not None:
        stem = [model.spec.stem, model.spec.size, float(next(model.stem.parameters(), torch.zeros(1)).sum())]
        key = hashlib.sha256(json.dumps([[str(s.path) for s in samples], pre, views, seed, cut, stem,
                                         Augment().__dict__]).encode()).hexdigest()[:16]
        path = folder / f"features-{key}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
    model.eval()
    augment = Augment()
    out = None
    with Progress(" images", quiet=False, total=(views + 1) * len(samples), desc="stem features", mininterval=2) as bar:
        for v in range(views + 1):
            rng = np.random.default_rng([seed, v])
            for start in range(0, len(samples), batch):
                chunk = samples[start:start + batch]
                pixels = np.stack([load_pixels(s, pre, augment if v else None, rng) for s in chunk])
                feats = model.features(torch.from_numpy(pixels), cut).to(torch.float16)
                if out is None:
                    out = torch.empty((len(samples), views + 1, *feats.shape[1:]), dtype=torch.float16)
                out[start:start + len(chunk), v] = feats
                bar.update(len(chunk))
    assert out is not None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
    return out


@torch.no_grad()
def predict_features(model: ImageViT, feats: torch.Tensor, cut: int | None = None, batch: int = 64) -> np.ndarray:
    """Sigmoid probabilities [n, 14] from cached features [n, ...] (one view)."""
    model.eval()
    out = [torch.sigmoid(model.from_features(feats[i:i + batch].float(), cut)) for i in range(0, len(feats), batch)]
    return torch.cat(out).numpy()


@torch.no_grad()
def embed_features(model: ImageViT, feats: torch.Tensor, cut: int | None = None, batch: int = 64) -> np.ndarray:
    """Pooled embeddings [n, dim] from cached features [n, ...] (one view)."""
    model.eval()
    return torch.cat([model.embedding(feats[i:i + batch].float(), cut) for i in range(0, len(feats), batch)]).numpy()


def lr_at(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def train_head(model: ImageViT, feats: torch.Tensor, samples: Sequence[Sample], cfg: TrainConfig) -> list[dict]:
    """Train everything after the frozen stem on cached features; returns per-epoch log rows."""
    targets, mask, rates = (torch.from_numpy(a) for a in stack_labels(samples))
    params = model.trainable_parameters()
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = len(samples)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    warmup = int(cfg.warmup_epochs * steps_per_epoch)
    start, step, history = time.time(), 0, []
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, generator=gen)
        view = torch.randint(0, feats.shape[1], (n,), generator=gen)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, warmup, cfg.lr)
            logits = model.from_features(feats[idx, view[idx]].float(), cfg.cut(model))
            loss = gls_loss(logits, targets[idx], rates[idx], mask[idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            running += float(loss.detach()) * len(idx)
            step += 1
        minutes = (time.time() - start) / 60
        history.append({"epoch": epoch + 1, "loss": round(running / n, 5), "minutes": round(minutes, 2)})
        log.info("epoch %d/%d loss %.4f (%.1f min)", epoch + 1, cfg.epochs, running / n, minutes)
        if minutes > cfg.max_minutes:
            log.warning("time budget of %.1f min reached after epoch %d: stopping", cfg.max_minutes, epoch + 1)
            break
    return history


@dataclass
class TrainResult:
    model: ImageViT
    config: TrainConfig
    train: list[Sample]
    val: list[Sample]
    val_probs: np.ndarray
    history: list[dict]
    stem_weights: str | None
    rate_summary: dict


def prepare_data(cfg: TrainConfig, images_root: Path) -> tuple[list[Sample], list[Sample]]:
    """Patient-level split of the sources, with GLS rates set on the training side."""
    train, val = split_by_patient(load_sources(images_root, cfg.sources))
    return assign_rates(train, cfg.rates), val


def train(cfg: TrainConfig, images_root: Path = DEFAULT_IMAGES,
          data: tuple[list[Sample], list[Sample]] | None = None,
          cache: tuple[torch.Tensor, torch.Tensor] | None = None, cache_dir: Path | None = None) -> TrainResult:
    """Train one model. `data` / `cache` let a caller reuse the split and cached features across runs
    (`cache` must be `cache_features` output at `cfg.cut(model)`); `cache_dir` keeps them on disk."""
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model, weights = build_model(cfg.spec, cfg.pretrained)
    train_set, val_set = data if data is not None else prepare_data(cfg, images_root)
    pre = preprocess_spec(cfg.spec)
    if cache is None:
        t0 = time.time()
        cut = cfg.cut(model)
        cache = (cache_features(model, train_set, pre, cfg.views, cfg.view_seed, cut=cut, folder=cache_dir),
                 cache_features(model, val_set, pre, 0, cfg.view_seed, cut=cut, folder=cache_dir))
        log.info("cached %d train x %d views and %d val features in %.1f min", len(train_set), cfg.views + 1,
                 len(val_set), (time.time() - t0) / 60)
    seed_everything(cfg.seed)
    history = train_head(model, cache[0], train_set, cfg)
    val_probs = predict_features(model, cache[1][:, 0], cfg.cut(model))
    return TrainResult(model, cfg, list(train_set), list(val_set), val_probs, history, weights, describe(train_set))


def main(argv: Sequence[str] | None = None) -> None:
    ap = command_parser("export.images.train", __doc__)
    ap.add_argument("--out", type=Path, required=True, help="folder for checkpoint.pt and train.json")
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="training images (the data set folder)")
    ap.add_argument("--rates", choices=RATE_MODES, default="gls",
                    help="label-rate mode: GLS rates, class priors or plain BCE")
    ap.add_argument("--stem", choices=("effnet-lite0", "patch"), default="effnet-lite0",
                    help="image stem: pretrained EfficientNet-Lite0 blocks or a plain patch embedding")
    ap.add_argument("--size", type=int, default=192, help="input size in pixels (square)")
    ap.add_argument("--epochs", type=int, default=30, help="training epochs")
    ap.add_argument("--views", type=int, default=3,
                    help="augmented views per training image cached besides the clean one")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--max-minutes", type=float, default=12.0,
                    help="stop training (not feature caching) after this many minutes")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = TrainConfig(spec=ViTSpec(size=args.size, stem=args.stem), rates=args.rates, epochs=args.epochs,
                      views=args.views, threads=args.threads, max_minutes=args.max_minutes, seed=args.seed)
    result = train(cfg, args.images)
    args.out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(result, args.out)
    from .metrics import per_source_metrics

    print(json.dumps(per_source_metrics(result.val, result.val_probs), indent=2))


def save_checkpoint(result: TrainResult, out: Path) -> Path:
    path = out / "checkpoint.pt"
    torch.save({"state_dict": result.model.state_dict(), "config": result.config.to_dict(),
                "history": result.history, "rates": result.rate_summary,
                "stem_weights": result.stem_weights}, path)
    return path


def load_checkpoint(path: Path) -> tuple[ImageViT, dict]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    spec = ViTSpec(**ckpt["config"]["spec"])
    model, _ = build_model(spec, pretrained=False)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


if __name__ == "__main__":
    run_command(main, "export.images.train")

"""Distil the teachers' pseudo-labels into a small encoder student with 14 four-way heads.

    python -m export.reports.distill corpus.jsonl -o runs/student --base PATH [--layers 3] [--epochs 6]
    python -m export.reports.distill corpus.jsonl -o runs/deberta --base deberta-config.json --train-tokenizer 4000

`--base` is any Hugging Face encoder folder (weights + tokenizer.json), or a config (folder or
config.json) that is initialised at random; with `--train-tokenizer N` a WordPiece tokenizer of N
tokens is trained on the training reports with the `tokenizers` library. Text becomes model inputs
through `radedge.reports.windows` only, so the student is served exactly as it was trained.

Loss: the cross-entropy between the student's class distribution and the soft target of each finding
(the teachers' probabilities when the corpus has them, else one-hot), times the target's confidence,
times a class weight that lifts rare classes of each finding (sqrt of majority / class frequency,
clipped to [1, 3]: enough to keep rare classes in view without
buying their recall with the precision the teacher had). Reports in the hold-out (`export.splits`) are never trained on.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from radedge.labels import N_CLASSES, N_FINDINGS
from radedge.reports.sections import findings_text
from radedge.reports.windows import ReportWindows

from ..common import seed_everything
from ..splits import is_holdout
from .student import TOKENIZER_JSON, ReportStudent, load_encoder, save_student
from ..cli import command_parser, run_command

log = logging.getLogger("export.reports.distill")


# ---- the corpus ---------------------------------------------------------------------------------
def read_corpus(path: str | Path) -> list[dict[str, Any]]:
    """The labelled records of a pseudo-label corpus (records with an error or no label are skipped)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("classes") is not None and not rec.get("error"):
                records.append(rec)
    return records


def dedupe(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first record of each distinct text: a sentence repeated in hundreds of reports
    ("No pneumothorax.") is one example, not hundreds."""
    seen: set[str] = set()
    out = []
    for rec in records:
        if rec["text"] not in seen:
            seen.add(rec["text"])
            out.append(rec)
    return out


def training_records(records: Sequence[dict[str, Any]], include_holdout: bool = False) -> list[dict[str, Any]]:
    """Records to train on: outside the hold-out (a sentence record follows its report, `source_id`),
    distinct texts only."""
    keep = [r for r in records if include_holdout or not is_holdout(str(r.get("source_id", r["id"])))]
    return dedupe(keep)


def targets(records: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Soft targets `[n, 14, 4]` and confidences `[n, 14]` of corpus records."""
    q = np.zeros((len(records), N_FINDINGS, N_CLASSES), dtype=np.float32)
    conf = np.ones((len(records), N_FINDINGS), dtype=np.float32)
    eye = np.eye(N_CLASSES, dtype=np.float32)
    for i, rec in enumerate(records):
        q[i] = np.asarray(rec["probs"], dtype=np.float32) if rec.get("probs") else eye[np.asarray(rec["classes"])]
        if rec.get("confidence") is not None:
            conf[i] = np.asarray(rec["confidence"], dtype=np.float32)
    return q, conf


def class_weights(q: np.ndarray, cap: float = 3.0) -> np.ndarray:
    """`[14, 4]` weights: sqrt(frequency of the finding's commonest class / this class's), in [1, cap]."""
    freq = q.sum(axis=0) + 1.0
    return np.clip(np.sqrt(freq.max(axis=1, keepdims=True) / freq), 1.0, cap).astype(np.float32)


# ---- tokenizers ---------------------------------------------------------------------------------
def train_tokenizer(texts: Sequence[str], vocab_size: int, out: Path) -> Path:
    """A lower-cased WordPiece tokenizer ([CLS] text [SEP]) trained on the reports the student reads."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    out.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(out))
    return out


def load_tokenizer(path: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(path))


# ---- training -----------------------------------------------------------------------------------
def soft_cross_entropy(logits: torch.Tensor, q: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean over rows and findings of weight * (-sum_k q_k log p_k)."""
    logp = torch.log_softmax(logits, dim=-1)
    return (weight * -(q * logp).sum(-1)).mean()


def train(records: Sequence[dict[str, Any]], model: ReportStudent, windows: ReportWindows, *, epochs: int,
          batch_size: int, lr: float, seed: int, warmup: float = 0.06, weight_decay: float = 0.01,
          max_minutes: float | None = None) -> dict[str, Any]:
    """Train in place; returns a log (loss per epoch, steps, seconds). Each window learns its report's target."""
    from transformers import get_linear_schedule_with_warmup

    seed_everything(seed)
    q, conf = targets(records)
    cw = class_weights(q)
    weight = conf * (q * cw[None]).sum(-1)  # expected class weight under the soft target, times confidence
    wins = windows.encode([r["text"] for r in records])
    if not wins:
        raise ValueError("no training windows: every report is empty")
    steps_per_epoch = math.ceil(len(wins) / batch_size)
    total = steps_per_epoch * epochs
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(warmup * total), total)
    rng = np.random.default_rng(seed)
    q_t, w_t = torch.from_numpy(q), torch.from_numpy(weight)
    history: dict[str, Any] = {"windows": len(wins), "reports": len(records), "epoch_loss": [], "steps": 0}
    start = time.monotonic()
    for epoch in range(epochs):
        model.train()
        running, n = 0.0, 0
        for batch in windows.batches(wins, batch_size, rng=rng):
            owners = torch.from_numpy(batch.owners)
            logits = model(torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask))
            loss = soft_cross_entropy(logits, q_t[owners], w_t[owners])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            running += loss.item() * len(owners)
            n += len(owners)
            history["steps"] += 1
            if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
                break
        history["epoch_loss"].append(round(running / max(n, 1), 5))
        log.info("epoch %d/%d: loss %.4f (%.0f s)", epoch + 1, epochs, running / max(n, 1), time.monotonic() - start)
        if max_minutes is not None and time.monotonic() - start > 60 * max_minutes:
            log.warning("stopped after %.1f minutes (--max-minutes)", max_minutes)
            history["stopped_early"] = True
            break
    history["seconds"] = round(time.monotonic() - start, 1)
    return history


# ---- the command --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = command_parser("export.reports.distill", __doc__.split("\n\n")[0])
    p.add_argument("corpus", type=Path, help="pseudo-label corpus (.jsonl from export.reports.pseudolabel)")
    p.add_argument("-o", "--out", type=Path, required=True, help="student folder to write")
    p.add_argument("--base", required=True, help="Hugging Face encoder folder, or a config folder / config.json")
    p.add_argument("--random-init", action="store_true", help="ignore the base's weights (config only)")
    p.add_argument("--layers", type=int, help="keep only the first N encoder layers")
    p.add_argument("--train-tokenizer", type=int, metavar="VOCAB",
                   help="train a WordPiece tokenizer of VOCAB tokens on the training reports (implies random init)")
    p.add_argument("--max-length", type=int, default=128, help="tokens per window")
    p.add_argument("--stride", type=int, default=32, help="tokens shared by consecutive windows of a long report")
    p.add_argument("--epochs", type=int, default=6, help="training epochs")
    p.add_argument("--batch-size", type=int, default=16, help="windows per training batch")
    p.add_argument("--lr", type=float, default=1e-4, help="learning rate (AdamW)")
    p.add_argument("--seed", type=int, default=13, help="training seed")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the machine is shared)")
    p.add_argument("--max-minutes", type=float, help="stop training after this long (bounded runs)")
    p.add_argument("--limit", type=int, help="train on the first N training reports only (tests)")
    p.add_argument("--include-holdout", action="store_true", help="train on the hold-out too (never for metrics)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    records = read_corpus(args.corpus)
    train_recs = training_records(records, args.include_holdout)
    if args.limit:
        train_recs = train_recs[:args.limit]
    log.info("%d labelled reports in %s, %d for training", len(records), args.corpus, len(train_recs))

    args.out.mkdir(parents=True, exist_ok=True)
    base = Path(args.base)
    if args.train_tokenizer:
        texts = [findings_text(r["text"]) for r in train_recs]  # what the windows will read
        tok_path = train_tokenizer([t for t in texts if t.strip()], args.train_tokenizer, args.out / TOKENIZER_JSON)
    else:
        tok_path = base / TOKENIZER_JSON
        if not tok_path.is_file():
            raise SystemExit(f"{tok_path}: the base has no tokenizer.json; pass --train-tokenizer VOCAB")
    tokenizer = load_tokenizer(tok_path)
    windows = ReportWindows(tokenizer, args.max_length, args.stride)
    encoder = load_encoder(base, layers=args.layers,
                           vocab_size=tokenizer.get_vocab_size() if args.train_tokenizer else None,
                           random_init=args.random_init or bool(args.train_tokenizer))
    model = ReportStudent(encoder)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("student: %s, %d layers, hidden %d, %.1f M parameters", encoder.config.model_type,
             encoder.config.num_hidden_layers, encoder.config.hidden_size, n_params / 1e6)
    history = train(train_recs, model, windows, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    seed=args.seed, max_minutes=args.max_minutes)
    info = {
        "base": str(args.base), "model_type": encoder.config.model_type,
        "layers": encoder.config.num_hidden_layers, "hidden": encoder.config.hidden_size,
        "parameters": n_params, "max_length": args.max_length, "stride": args.stride,
        "tokenizer": "trained on the corpus" if args.train_tokenizer else f"{args.base}/tokenizer.json",
        "corpus": str(args.corpus), "train_reports": len(train_recs), "seed": args.seed,
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "threads": args.threads,
        "history": history, "command": "python -m export.reports.distill " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    save_student(model.eval(), args.out, info, tok_path)
    log.info("wrote %s (%.0f s of training)", args.out, history["seconds"])
    return 0


if __name__ == "__main__":
    run_command(main, "export.reports.distill")

"""The sentence-level report student: corpus, cached features, training with two signals, prediction.

Why sentences (radedge.reports.sentences): ~14,000 sentences (5,400 distinct) instead of ~1,800
reports, each short enough that a negation's scope is inside it, no truncation of long reports, and
the sentence that decided a label is its evidence. The report label is the CheXpert aggregation of
the sentence labels (`radedge.reports.sentences.aggregate`, the runtime's own function).

Two signals, one loss (the CheXbert idea as a joint loss instead of two stages):
- the rule teacher's four-way label of every sentence, No Finding included (the rules' own No Finding:
  a sentence naming an abnormality outside the 13 findings, "granuloma", is not normal), with class
  weights that lift rare classes;
- the expert gold of the report (gold-dev.csv, presence only) on the findings it maps to: the report's
  probability of a positive finding is the largest over its sentences, of No Finding the smallest
  (the same rules as `aggregate`), and a binary cross-entropy pulls them to the gold (positives weighted
  by sqrt(negatives / positives), capped). Gold says nothing about negative vs uncertain vs not
  mentioned: that part stays the teacher's.

Cheap on a shared CPU: with `frozen` > 0 the embeddings and the first `frozen` encoder layers keep their
pretrained weights, their outputs for every distinct sentence are computed once and cached, and only
the top layers and the finding heads train (a fold takes minutes, not hours). With `frozen` = 0 the
whole encoder trains from token ids (the DeBERTa-v2 candidate, random init).
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from radedge.eval import Gold, read_gold
from radedge.labels import BLANK, N_CLASSES, N_FINDINGS, NO_FINDING, POSITIVE
from radedge.reports.rules import RuleLabeler
from radedge.reports.sections import findings_text
from radedge.reports.sentences import aggregate, sentences
from radedge.reports.windows import ReportWindows

from .student import FindingHeads, ReportStudent

log = logging.getLogger("export.reports.sentence_student")


# ---- the corpus ---------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Reports as lists of distinct sentences, with the teacher's sentence labels and the gold."""

    ids: list[str]
    texts: list[str]
    sentences: list[str]  # distinct sentence texts
    members: list[np.ndarray]  # per report: indices into `sentences`, in reading order
    teacher: np.ndarray  # int64 [n_sentences, 14]: rule classes, the rules' own No Finding
    gold: Gold | None = None  # rows aligned to `ids`
    extra_sentences: int = 0  # sentences from texts without gold (e.g. clinical notes)

    @property
    def gold_targets(self) -> tuple[np.ndarray, np.ndarray]:
        """float [n, 14] gold presence and bool [14] findings the gold scores."""
        assert self.gold is not None
        from radedge.labels import FINDING_INDEX

        mask = np.zeros(N_FINDINGS, dtype=bool)
        mask[[FINDING_INDEX[f] for f in self.gold.scored]] = True
        return (self.gold.classes == POSITIVE).astype(np.float32), mask


def build_corpus(ids: Sequence[str], texts: Sequence[str], gold_path: Path | None,
                 rules: RuleLabeler | None = None, extra_texts: Sequence[str] = ()) -> Corpus:
    """Split every report's read text into sentences, label each distinct sentence with the rules.
    `extra_texts` (no gold, e.g. clinical notes) add teacher-labelled sentences only."""
    rules = rules or RuleLabeler.load()
    index: dict[str, int] = {}
    members = []
    for text in texts:
        members.append(np.array([index.setdefault(s, len(index)) for s in sentences(findings_text(text))],
                                dtype=np.int64))
    n_report_sents = len(index)
    for text in extra_texts:
        for s in sentences(findings_text(text)):
            index.setdefault(s, len(index))
    sents = list(index)
    teacher = np.stack([np.asarray(rules.classify(s), dtype=np.int64) for s in sents]) if sents else \
        np.zeros((0, N_FINDINGS), dtype=np.int64)
    gold = None
    if gold_path is not None:
        g = read_gold(gold_path)
        row = {gid: r for r, gid in enumerate(g.ids)}
        rows = np.array([row[i] for i in ids])
        gold = Gold(list(ids), g.classes[rows], g.kind, g.scored, g.has_ids)
    return Corpus(list(ids), list(texts), sents, members, teacher, gold, len(sents) - n_report_sents)


# ---- features -----------------------------------------------------------------------------------
class Features:
    """Model inputs of every distinct sentence: token ids (frozen = 0) or the cached output of the
    frozen lower layers (float32: the exported model must be the function that was trained), padded per batch."""

    def __init__(self, rows: list[np.ndarray], is_states: bool, pad_id: int = 0) -> None:
        self.rows, self.is_states, self.pad_id = rows, is_states, pad_id

    def batch(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(self.rows[i]) for i in idx)
        mask = torch.zeros((len(idx), longest), dtype=torch.int64)
        if self.is_states:
            x = torch.zeros((len(idx), longest, self.rows[idx[0]].shape[1]), dtype=torch.float32)
        else:
            x = torch.full((len(idx), longest), self.pad_id, dtype=torch.int64)
        for r, i in enumerate(idx):
            n = len(self.rows[i])
            x[r, :n] = torch.from_numpy(self.rows[i])
            mask[r, :n] = 1
        return x, mask


def token_rows(windows: ReportWindows, texts: Sequence[str]) -> list[np.ndarray]:
    """The first window's token ids of each sentence (the runtime reads longer sentences in more
    windows; the few over max_length train on their start)."""
    first: dict[int, np.ndarray] = {}
    for w in windows.encode_prepared(list(texts)):
        first.setdefault(w.owner, w.ids)
    return [first[i] for i in range(len(texts))]


def extended_mask(mask: torch.Tensor) -> torch.Tensor:
    """BERT's additive attention mask `[batch, 1, 1, tokens]` from a 0/1 mask."""
    return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min


def frozen_states(encoder: nn.Module, frozen: int, ids: list[np.ndarray], pad_id: int,
                  batch_size: int = 64) -> list[np.ndarray]:
    """Outputs of the embeddings + first `frozen` layers of a BERT encoder for each row of ids."""
    feats = Features(ids, False, pad_id)
    order = np.argsort([len(r) for r in ids], kind="stable")
    out: list[np.ndarray | None] = [None] * len(ids)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size].tolist()
            x, mask = feats.batch(idx)
            h = encoder.embeddings(input_ids=x)
            ext = extended_mask(mask)
            for layer in encoder.encoder.layer[:frozen]:
                h = _layer_out(layer(h, attention_mask=ext))
            for r, i in enumerate(idx):
                out[i] = h[r, :len(ids[i])].numpy().copy()
    return out  # type: ignore[return-value]


def _layer_out(result: Any) -> torch.Tensor:
    return result[0] if isinstance(result, tuple) else result


class Tail(nn.Module):
    """The trainable top of a frozen-bottom BERT student: the last encoder layers and the finding heads."""

    def __init__(self, layers: nn.ModuleList, heads: FindingHeads) -> None:
        super().__init__()
        self.layers, self.heads = layers, heads

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        ext = extended_mask(mask)
        for layer in self.layers:
            states = _layer_out(layer(states, attention_mask=ext))
        return self.heads(states, mask)


# ---- training -----------------------------------------------------------------------------------
@dataclass
class Recipe:
    epochs: int = 4
    reports_per_batch: int = 24
    lr: float = 2e-4
    gold_weight: float = 1.0
    class_weight_cap: float = 5.0
    gold_pos_weight_cap: float = 5.0
    seed: int = 13
    max_minutes: float | None = None
    extra_per_batch: int = 8  # teacher-only sentences (no gold) mixed into each batch
    history: dict[str, Any] = field(default_factory=dict)


def class_weights(teacher: np.ndarray, cap: float) -> np.ndarray:
    """`[14, 4]`: sqrt(count of the finding's commonest class / this class's count), in [1, cap]."""
    counts = np.stack([np.bincount(teacher[:, f], minlength=N_CLASSES) for f in range(N_FINDINGS)]) + 1.0
    return np.clip(np.sqrt(counts.max(axis=1, keepdims=True) / counts), 1.0, cap).astype(np.float32)


def train(model: nn.Module, feats: Features, corpus: Corpus, reports: Sequence[int], recipe: Recipe,
          extra: Sequence[int] = ()) -> dict[str, Any]:
    """Train `model` (inputs -> logits [m, 14, 4]) in place on the given report indices."""
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    reports = np.asarray([r for r in reports if len(corpus.members[r])], dtype=np.int64)
    seen = np.unique(np.concatenate([corpus.members[r] for r in reports]))
    cw = torch.from_numpy(class_weights(corpus.teacher[seen], recipe.class_weight_cap))
    teacher = torch.from_numpy(corpus.teacher)
    use_gold = corpus.gold is not None and recipe.gold_weight > 0
    if use_gold:
        gold_np, gmask_np = corpus.gold_targets
        g = gold_np[reports]
        pos = g.sum(0) + 1.0
        pw = np.clip(np.sqrt((len(g) - pos + 1.0) / pos), 1.0, recipe.gold_pos_weight_cap)
        pw[NO_FINDING] = 1.0
        gold_t, gmask, posw = torch.from_numpy(gold_np), torch.from_numpy(gmask_np), torch.from_numpy(pw.astype(np.float32))
    steps_per_epoch = math.ceil(len(reports) / recipe.reports_per_batch)
    total = steps_per_epoch * recipe.epochs
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, 0.06 * total)) *
                                              max(0.0, 1.0 - s / total))
    extra = np.asarray(extra, dtype=np.int64)
    history: dict[str, Any] = {"reports": len(reports), "sentences": int(len(seen)), "epoch_loss": [], "steps": 0}
    start = time.monotonic()
    f_idx = torch.arange(N_FINDINGS)
    for epoch in range(recipe.epochs):
        model.train()
        order = rng.permutation(reports)
        running = 0.0
        for s in range(0, len(order), recipe.reports_per_batch):
            chunk = order[s:s + recipe.reports_per_batch]
            parts = [corpus.members[r] for r in chunk]
            if len(extra):
                parts.append(rng.choice(extra, size=min(recipe.extra_per_batch, len(extra)), replace=False))
            sent, inverse = np.unique(np.concatenate(parts), return_inverse=True)
            x, mask = feats.batch(sent.tolist())
            logp = torch.log_softmax(model(x, mask), dim=-1)  # [m, 14, 4]
            t = teacher[sent]  # [m, 14]
            nll = -logp.gather(-1, t[..., None])[..., 0]
            loss = (cw[f_idx[None, :], t] * nll).mean()
            if use_gold:
                p_pos = logp[..., POSITIVE].exp()
                rep, k = [], 0
                for part in parts[:len(chunk)]:
                    rows = torch.from_numpy(inverse[k:k + len(part)])
                    k += len(part)
                    pr = p_pos[rows]
                    rep.append(torch.cat([pr[:, :NO_FINDING].max(0).values if NO_FINDING else pr.new_zeros(0),
                                          pr[:, NO_FINDING:NO_FINDING + 1].min(0).values,
                                          pr[:, NO_FINDING + 1:].max(0).values]))
                prob = torch.stack(rep).clamp(1e-6, 1 - 1e-6)
                y = gold_t[torch.from_numpy(chunk)]
                bce = -(posw * y * prob.log() + (1 - y) * (1 - prob).log())
                loss = loss + recipe.gold_weight * bce[:, gmask].mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            running += loss.item()
            history["steps"] += 1
            if recipe.max_minutes is not None and time.monotonic() - start > 60 * recipe.max_minutes:
                break
        history["epoch_loss"].append(round(running / steps_per_epoch, 5))
        log.info("epoch %d/%d: loss %.4f (%.0f s)", epoch + 1, recipe.epochs, running / steps_per_epoch,
                 time.monotonic() - start)
        if recipe.max_minutes is not None and time.monotonic() - start > 60 * recipe.max_minutes:
            history["stopped_early"] = True
            break
    history["seconds"] = round(time.monotonic() - start, 1)
    return history


def sentence_probs(model: nn.Module, feats: Features, idx: Sequence[int], batch_size: int = 128) -> np.ndarray:
    """Class probabilities `[len(idx), 14, 4]` of the given distinct sentences."""
    model.eval()
    idx = list(idx)
    order = sorted(range(len(idx)), key=lambda j: len(feats.rows[idx[j]]))
    out = np.zeros((len(idx), N_FINDINGS, N_CLASSES), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            pos = order[s:s + batch_size]
            x, mask = feats.batch([idx[j] for j in pos])
            out[pos] = torch.softmax(model(x, mask), dim=-1).numpy()
    return out


def report_classes(corpus: Corpus, probs_by_sentence: dict[int, np.ndarray], reports: Sequence[int]) -> np.ndarray:
    """Classes `[len(reports), 14]` by `aggregate` over each report's sentences."""
    out = np.zeros((len(reports), N_FINDINGS), dtype=np.int8)
    for k, r in enumerate(reports):
        m = corpus.members[r]
        p = np.stack([probs_by_sentence[int(i)] for i in m]) if len(m) else np.zeros((0, N_FINDINGS, N_CLASSES))
        out[k] = aggregate(p)[0]
    return out


def predict_reports(model: nn.Module, feats: Features, corpus: Corpus, reports: Sequence[int]) -> np.ndarray:
    sent = sorted({int(i) for r in reports for i in corpus.members[r]})
    probs = sentence_probs(model, feats, sent) if sent else np.zeros((0, N_FINDINGS, N_CLASSES))
    return report_classes(corpus, dict(zip(sent, probs)), reports)


def teacher_report_classes(corpus: Corpus) -> np.ndarray:
    """The rules' report labels recomposed from their sentence labels by `aggregate` (one-hot
    probabilities): how much the sentence unit itself costs, before any learning."""
    eye = np.eye(N_CLASSES, dtype=np.float32)
    return report_classes(corpus, {i: eye[corpus.teacher[i]] for i in range(len(corpus.sentences))},
                          range(len(corpus.ids)))


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


__all__ = ["Corpus", "build_corpus", "Features", "token_rows", "frozen_states", "Tail", "Recipe", "train",
           "sentence_probs", "predict_reports", "teacher_report_classes", "BLANK", "ReportStudent"]

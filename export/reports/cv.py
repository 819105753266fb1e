"""Cross-validation folds over the Open-i dev reports, and the scores every candidate is chosen by.

Why k-fold and not one hold-out: 449 held-out reports have 1-3 gold positives for several findings,
so one split cannot separate candidates (a lead seen there did not hold on unseen reports). Every
dev report is scored exactly once, by a model that never saw it; mean and spread over the folds say
how much of a difference is noise.

Identical texts stay together: reports whose read text (FINDINGS + IMPRESSION, what the labelers
read) is the same, after case and white space are folded, fall in one fold, so a model is never
scored on a text it was trained on (Open-i has many verbatim normal reports).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from radedge.eval import EvalResult, Gold, score
from radedge.reports.sections import findings_text

SIX = ("Atelectasis", "Cardiomegaly", "Pleural Effusion", "Pneumonia", "Pneumothorax", "No Finding")


def text_key(text: str) -> str:
    """What makes two reports 'the same text' for the folds: the read text, case and spacing folded."""
    return re.sub(r"\s+", " ", findings_text(text)).strip().lower()


def fold_of(texts: Sequence[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold index `[n]` of each report: a hash of its `text_key` (and the seed) modulo k, so identical
    texts always share a fold and a report's fold does not depend on which other reports are listed."""
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    keys = [f"{seed}:{text_key(t)}".encode("utf-8") for t in texts]
    return np.array([int(hashlib.sha256(key).hexdigest(), 16) % k for key in keys], dtype=np.int64)


@dataclass(frozen=True)
class FoldScore:
    """The numbers a candidate is chosen by, on one fold."""

    macro_f1: float  # positive, mapped findings with a gold positive in the fold
    six_mean: float  # the six ChestX-ray8 one-to-one findings
    per_finding: dict[str, float]

    @classmethod
    def of(cls, result: EvalResult) -> "FoldScore":
        pos = result.scores["positive"]
        return cls(result.macro_f1, float(np.mean([pos[f].f1 for f in SIX])),
                   {f: s.f1 for f, s in pos.items()})


def fold_scores(gold: Gold, pred: np.ndarray, folds: np.ndarray) -> list[FoldScore]:
    """Score class predictions `[n, 14]` (rows aligned to `gold`) fold by fold."""
    out = []
    for f in range(int(folds.max()) + 1):
        rows = np.flatnonzero(folds == f)
        sub = Gold([gold.ids[i] for i in rows], gold.classes[rows], gold.kind, gold.scored, gold.has_ids)
        out.append(FoldScore.of(score(sub, pred[rows])))
    return out


def summary(scores: Sequence[FoldScore]) -> dict[str, list[float]]:
    """name -> [mean, sd] over folds for macro F1, the six-finding mean, No Finding and Pneumothorax."""
    rows = {"macro_f1": [s.macro_f1 for s in scores], "six_mean": [s.six_mean for s in scores],
            "no_finding_f1": [s.per_finding["No Finding"] for s in scores],
            "pneumothorax_f1": [s.per_finding["Pneumothorax"] for s in scores]}
    return {k: [round(float(np.mean(v)), 4), round(float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, 4)]
            for k, v in rows.items()}


def format_row(name: str, s: dict[str, list[float]]) -> str:
    return (f"{name:<28s} " + " ".join(f"{s[k][0]:.3f}±{s[k][1]:.3f}" for k in
                                       ("macro_f1", "six_mean", "no_finding_f1", "pneumothorax_f1")))


HEADER = f"{'labeler':<28s} {'macro F1':>11s} {'six mean':>11s} {'No Finding':>11s} {'Pneumothx':>11s}"

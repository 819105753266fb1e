"""Cross-validation folds over the Open-i dev reports, and the scores every candidate is chosen by.

Why k-fold and not one hold-out: 449 held-out reports have 1-3 gold positives for several findings,
so one split cannot separate candidates (a lead seen there did not hold on unseen reports). Every
dev report is scored exactly once, by a model that never saw it; mean and spread over the folds say
how much of a difference is noise.

Identical texts stay together: reports whose read text (FINDINGS + IMPRESSION, what the labelers
read) is the same, after case and white space are folded, fall in one fold, so a model is never
scored on a text it was trained on (Open-i has many verbatim normal reports).

Rare findings: a fold without a gold positive has no F1 for that finding (it is left out of that
fold's means, not counted as 0), and the pooled out-of-fold score (every report predicted once, all
folds counted together) is given beside the fold mean, with a bootstrap interval over reports: with
15 Pneumothorax positives in 5 folds, the fold mean of F1 is dominated by folds holding one or two
(Forman and Scholz, "Apples-to-apples in cross-validation studies", SIGKDD Explorations 2010,
recommend the pooled F1 for exactly this case).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Sequence

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
        """Findings without a gold positive here have no F1 (NaN) and stay out of the six-finding mean."""
        per = {f: s.f1 if s.support else float("nan") for f, s in result.scores["positive"].items()}
        return cls(result.macro_f1, float(np.nanmean([per[f] for f in SIX])), per)


def subset(gold: Gold, rows: np.ndarray) -> Gold:
    """The gold of `rows` only."""
    return Gold([gold.ids[i] for i in rows], gold.classes[rows], gold.kind, gold.scored, gold.has_ids)


def fold_scores(gold: Gold, pred: np.ndarray, folds: np.ndarray) -> list[FoldScore]:
    """Score class predictions `[n, 14]` (rows aligned to `gold`) fold by fold."""
    out = []
    for f in range(int(folds.max()) + 1):
        rows = np.flatnonzero(folds == f)
        out.append(FoldScore.of(score(subset(gold, rows), pred[rows])))
    return out


METRICS = ("macro_f1", "six_mean", "no_finding_f1", "pneumothorax_f1")


def _metrics(s: FoldScore) -> dict[str, float]:
    return {"macro_f1": s.macro_f1, "six_mean": s.six_mean, "no_finding_f1": s.per_finding["No Finding"],
            "pneumothorax_f1": s.per_finding["Pneumothorax"]}


def summary(scores: Sequence[FoldScore]) -> dict[str, list[float]]:
    """name -> [mean, sd] over the folds where it is defined, for macro F1, the six-finding mean,
    No Finding and Pneumothorax."""
    out = {}
    for k in METRICS:
        v = np.array([_metrics(s)[k] for s in scores], dtype=np.float64)
        v = v[~np.isnan(v)]
        sd = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        out[k] = [round(float(np.mean(v)), 4) if len(v) else float("nan"), round(sd, 4)]
    return out


def _bootstrap(n: int, at: Callable[[np.ndarray], dict[str, float]], boot: int, seed: int) -> dict[str, list[float]]:
    """name -> [value of `at` on all n rows, 2.5th, 97.5th percentile over `boot` resamples of the rows]."""
    point = at(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = [at(rng.integers(0, n, n)) for _ in range(boot)]
    return {k: [round(point[k], 4), *(round(float(q), 4) for q in np.nanpercentile([d[k] for d in draws], [2.5, 97.5]))]
            for k in METRICS}


def pooled(gold: Gold, pred: np.ndarray, boot: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """name -> [value, 2.5th, 97.5th percentile] of the pooled out-of-fold scores: all reports scored
    at once, the interval from `boot` resamples of the reports (with replacement)."""
    def at(rows: np.ndarray) -> dict[str, float]:
        return _metrics(FoldScore.of(score(subset(gold, rows), pred[rows])))

    return _bootstrap(len(gold.ids), at, boot, seed)


def paired_gain(gold: Gold, pred: np.ndarray, base: np.ndarray, boot: int = 1000,
                seed: int = 0) -> dict[str, list[float]]:
    """name -> [pooled score of `pred` minus that of `base`, 2.5th, 97.5th percentile], both scored
    on the same bootstrap resamples of the reports: whether a lead over `base` is more than noise."""
    def diff(rows: np.ndarray) -> dict[str, float]:
        sub = subset(gold, rows)
        a, b = _metrics(FoldScore.of(score(sub, pred[rows]))), _metrics(FoldScore.of(score(sub, base[rows])))
        return {k: a[k] - b[k] for k in METRICS}

    return _bootstrap(len(gold.ids), diff, boot, seed)


def format_row(name: str, s: dict[str, list[float]]) -> str:
    """One table line of `summary`: fold mean ± sd."""
    return f"{name:<38s} " + " ".join(f"{s[k][0]:.3f}±{s[k][1]:.3f}   " for k in METRICS)


def format_pooled(s: dict[str, list[float]]) -> str:
    """The line under a labeler's row for `pooled`: the value and its interval."""
    return f"{'  pooled [95% interval]':<38s} " + " ".join(f"{s[k][0]:.3f} [{s[k][1]:.2f},{s[k][2]:.2f}]"
                                                           for k in METRICS)


def format_gain(s: dict[str, list[float]]) -> str:
    """The line for `paired_gain`: the difference from the rules and its interval."""
    return f"{'  minus rules, paired [95% interval]':<38s} " + " ".join(
        f"{s[k][0]:+.3f} [{s[k][1]:+.2f},{s[k][2]:+.2f}]" for k in METRICS)


HEADER = f"{'labeler':<38s} {'macro F1':<16s} {'six mean':<16s} {'No Finding':<16s} {'Pneumothorax':<16s}"

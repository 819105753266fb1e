"""Evaluation of report labels against gold: per-finding precision / recall / F1 and macro averages.

Two gold formats:

- **CheXpert**: a CSV with the 14 finding columns (values 1.0 / 0.0 / -1.0 / empty) and either a
  `Reports` column or an id column (`id`, `ID`, `study_id`, ...). Positive, negative and uncertain are
  each scored one-vs-rest per finding; the macro average of a class is over the findings with at least
  one gold instance of that class.
- **Open-i** (shared/data/openi/gold-dev.csv): `id` + the ChestX-ray14 findings + `Normal`, presence
  only, mapped to CheXpert with `CHESTXRAY14_TO_CHEXPERT` (Lung Lesion = Mass or Nodule). Only
  positive is scored (a prediction is positive only when its class is positive: uncertain, negative
  and blank count as not positive); macro over the mapped findings with at least one gold positive,
  plus the mean over the six ChestX-ray8 findings beside the published values
  (`CHESTXRAY8_OPENI_F1`, Wang et al. CVPR 2017 Table 2).

Predictions: a CheXpert-format CSV (rows aligned to the gold by order, or by id when both files have
an `id` column; extra columns such as `Reports` or `Error` are ignored) or JSONL records with `id` and
`labels` (finding -> 1.0 / 0.0 / -1.0 / null, or a list of 14), aligned by id. A gold file without an
id column numbers its rows from 1, as `radedge label-reports` does.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .labels import (
    CLASSES,
    FINDINGS,
    FINDING_INDEX,
    NEGATIVE,
    NO_FINDING,
    N_FINDINGS,
    POSITIVE,
    UNCERTAIN,
    csv_to_class,
)

# ChestX-ray14 -> CheXpert (shared/data/README.md, after Wang et al. CVPR 2017 and Irvin et al. AAAI 2019).
# Emphysema, Fibrosis and Hernia have no CheXpert equivalent and are not scored.
CHESTXRAY14_TO_CHEXPERT: dict[str, str] = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Effusion": "Pleural Effusion",
    "Infiltration": "Lung Opacity",
    "Mass": "Lung Lesion",
    "Nodule": "Lung Lesion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
    "Pleural_Thickening": "Pleural Other",
    "Normal": "No Finding",
    "No Finding": "No Finding",
}

# The six one-to-one findings of the ChestX-ray8 labeler (Wang et al. CVPR 2017, Table 2) and its F1 on Open-i.
CHESTXRAY8_OPENI_F1: dict[str, float] = {
    "Atelectasis": 0.91,
    "Cardiomegaly": 0.88,
    "Pleural Effusion": 0.87,
    "Pneumonia": 0.77,
    "Pneumothorax": 0.86,
    "No Finding": 0.93,
}


def map_chestxray14(present: Mapping[str, int | bool]) -> dict[str, int]:
    """Presence of CheXpert findings from ChestX-ray14 presence flags (any source name present -> 1)."""
    out: dict[str, int] = {}
    for source, target in CHESTXRAY14_TO_CHEXPERT.items():
        if source in present:
            out[target] = max(out.get(target, 0), int(bool(present[source])))
    return out


PathLike = str | os.PathLike
ID_COLUMNS = ("id", "ID", "Id", "study_id", "report_id", "filename", "Path")
SCORED_CLASSES = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}
_CLASS_BY_NAME = {name: i for i, name in enumerate(CLASSES)}


# -- reading -------------------------------------------------------------------------------------

@dataclass
class Gold:
    """Gold labels aligned to CheXpert findings.

    `classes` is int8 [n, 14] (CheXpert gold: the class of every finding; Open-i: POSITIVE where
    annotated, BLANK elsewhere); `scored` lists the findings this gold can score; `kind` is
    "chexpert" or "openi"."""

    ids: list[str]
    classes: np.ndarray
    kind: str
    scored: tuple[str, ...]
    has_ids: bool = True


def _open_csv(path: PathLike) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f) if row]  # a blank line is no row (as pandas reads CSV)
    if not rows:
        raise ValueError(f"{path}: empty CSV")
    return [h.strip() for h in rows[0]], rows[1:]


def _id_column(header: Sequence[str]) -> int | None:
    for name in ID_COLUMNS:
        if name in header:
            return header.index(name)
    return None


def _csv_classes(path: PathLike, rows: Sequence[Sequence[str]], cols: Sequence[int | None]) -> np.ndarray:
    """Classes int8 [n, 14] from CheXpert CSV cells; `cols[f]` is the column of FINDINGS[f] (None: absent).
    Absent columns and missing cells are BLANK."""
    classes = np.zeros((len(rows), N_FINDINGS), dtype=np.int8)
    for r, row in enumerate(rows):
        for f, c in enumerate(cols):
            if c is not None and c < len(row):
                try:
                    classes[r, f] = csv_to_class(row[c])
                except ValueError as exc:
                    raise ValueError(f"{path}: row {r + 2}, column {FINDINGS[f]!r}: {exc}") from None
    return classes


def read_gold(path: PathLike) -> Gold:
    """Gold labels from a CheXpert-format or Open-i-format CSV (detected from the header)."""
    header, rows = _open_csv(path)
    id_col = _id_column(header)
    ids = [row[id_col].strip() for row in rows] if id_col is not None else [str(i) for i in range(1, len(rows) + 1)]
    # CheXpert gold names at least one CheXpert-only column ("Pleural Effusion", "Lung Opacity", ...);
    # it may leave out findings it does not score
    chexpert_only = [name for name in FINDINGS if name not in CHESTXRAY14_TO_CHEXPERT]
    if any(name in header for name in chexpert_only):
        cols = [header.index(name) if name in header else None for name in FINDINGS]
        classes = _csv_classes(path, rows, cols)
        scored = tuple(name for name, c in zip(FINDINGS, cols) if c is not None)
        return Gold(ids, classes, "chexpert", scored, id_col is not None)
    sources = [name for name in header if name in CHESTXRAY14_TO_CHEXPERT]
    if not sources or id_col is None:
        raise ValueError(f"{path}: not a CheXpert gold (14 finding columns) nor an Open-i gold "
                         f"(id + ChestX-ray14 columns); header: {header[:6]}...")
    classes = np.zeros((len(rows), N_FINDINGS), dtype=np.int8)
    for source in sources:
        c = header.index(source)
        f = FINDING_INDEX[CHESTXRAY14_TO_CHEXPERT[source]]
        for r, row in enumerate(rows):
            try:
                present = float(row[c]) == 1.0
            except (ValueError, IndexError):
                raise ValueError(f"{path}: row {r + 2}, column {source!r}: want 0 or 1") from None
            if present:
                classes[r, f] = POSITIVE
    scored = tuple(name for name in FINDINGS if name in {CHESTXRAY14_TO_CHEXPERT[s] for s in sources})
    return Gold(ids, classes, "openi", scored)


def _label_value(value: Any) -> int:
    if isinstance(value, str) and value.strip().lower() in _CLASS_BY_NAME:
        return _CLASS_BY_NAME[value.strip().lower()]
    return csv_to_class(value)


def read_predictions(path: PathLike) -> tuple[list[str] | None, np.ndarray]:
    """Predicted classes int8 [n, 14] and their ids (None for a CSV without an id column)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        ids, rows = [], []
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    labels = record["labels"]
                    if isinstance(labels, dict):
                        row = [_label_value(labels.get(name)) for name in FINDINGS]
                    elif isinstance(labels, list) and len(labels) == N_FINDINGS:
                        row = [_label_value(v) for v in labels]
                    else:
                        raise ValueError("labels must be an object keyed by finding or a list of 14")
                    if record.get("error"):
                        raise ValueError(f"an error record ({record['error']}): it has no labels to score")
                    ids.append(str(record["id"]))
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    raise ValueError(f"{path}: line {number}: {exc}") from None
                rows.append(row)
        _check_unique(path, ids)
        return ids, np.asarray(rows, dtype=np.int8).reshape(-1, N_FINDINGS)
    header, body = _open_csv(path)
    missing = [name for name in FINDINGS if name not in header]
    if missing:
        raise ValueError(f"{path}: not a CheXpert-format prediction CSV, missing columns {missing}")
    if "Error" in header:
        failed = [n for n, row in enumerate(body, start=2) if len(row) > header.index("Error")
                  and row[header.index("Error")].strip()]
        if failed:
            raise ValueError(f"{path}: {len(failed)} error record(s) (rows {failed[:3]}...): they have no labels "
                             f"to score; fix those inputs, or drop their rows to score the rest")
    classes = _csv_classes(path, body, [header.index(name) for name in FINDINGS])
    id_col = header.index("id") if "id" in header else None
    ids = [row[id_col].strip() if id_col < len(row) else "" for row in body] if id_col is not None else None
    if ids is not None:
        _check_unique(path, ids)
    return ids, classes


def _check_unique(path: PathLike, ids: Sequence[str]) -> None:
    """ValueError when an id has two predictions (which one to score would be a guess)."""
    seen: set[str] = set()
    for pid in ids:
        if pid in seen:
            raise ValueError(f"{path}: id {pid!r} has more than one prediction")
        seen.add(pid)


def align(gold: Gold, pred_ids: list[str] | None, pred: np.ndarray, path: PathLike = "predictions") -> np.ndarray:
    """Predictions reordered to the gold rows: by id when both sides have ids, else by order."""
    if pred_ids is not None and (gold.has_ids or pred_ids == gold.ids):
        index = {pid: i for i, pid in enumerate(pred_ids)}
        missing = [gid for gid in gold.ids if gid not in index]
        if missing:
            raise ValueError(f"{path}: no prediction for {len(missing)} gold ids, e.g. {missing[:3]}")
        return pred[[index[gid] for gid in gold.ids]]
    if len(pred) != len(gold.ids):
        raise ValueError(f"{path}: {len(pred)} prediction rows for {len(gold.ids)} gold rows "
                         f"(rows are aligned by order when there are no ids)")
    return pred


# -- scoring -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Score:
    """Counts for one finding and class (one-vs-rest) and the metrics from them."""

    tp: int
    fp: int
    fn: int

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.support if self.support else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {"precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "support": self.support, "tp": self.tp, "fp": self.fp, "fn": self.fn}


def _score(pred: np.ndarray, gold: np.ndarray) -> Score:
    return Score(int((pred & gold).sum()), int((pred & ~gold).sum()), int((~pred & gold).sum()))


@dataclass
class EvalResult:
    """Scores of one prediction file against one gold file; print `table()`, dump `to_dict()`."""

    kind: str
    n_reports: int
    scores: dict[str, dict[str, Score]]  # class name -> finding -> Score
    macro: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> p/r/f1 + findings
    micro: dict[str, dict[str, float]] = field(default_factory=dict)
    chestxray8: dict[str, dict[str, float]] = field(default_factory=dict)  # finding -> ours, published

    @property
    def macro_f1(self) -> float:
        """Macro F1 of the positive class (the headline figure)."""
        return self.macro["positive"]["f1"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_reports": self.n_reports,
            "scores": {c: {f: s.to_dict() for f, s in by_f.items()} for c, by_f in self.scores.items()},
            "macro": self.macro,
            "micro": self.micro,
            "chestxray8": self.chestxray8,
        }

    def table(self) -> str:
        lines = [f"{self.kind} gold, {self.n_reports} reports"]
        for cls, by_finding in self.scores.items():
            lines.append("")
            lines.append(f"{cls:<28s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'support':>8s}")
            for finding, s in by_finding.items():
                lines.append(f"  {finding:<26s} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} {s.support:8d}")
            for name, avg in (("macro", self.macro.get(cls)), ("micro", self.micro.get(cls))):
                if avg:
                    lines.append(f"  {name + ' (' + str(int(avg['findings'])) + ' findings)':<26s} "
                                 f"{avg['precision']:9.3f} {avg['recall']:7.3f} {avg['f1']:6.3f}")
        if self.chestxray8:
            lines.append("")
            lines.append(f"{'ChestX-ray8 six findings':<28s} {'ours F1':>9s} {'published':>10s}")
            for finding, row in self.chestxray8.items():
                lines.append(f"  {finding:<26s} {row['ours']:9.3f} {row['published']:10.2f}")
        return "\n".join(lines)


def _averages(by_finding: dict[str, Score]) -> tuple[dict[str, float], dict[str, float]]:
    used = [s for s in by_finding.values() if s.support > 0]
    if not used:
        return {}, {}
    macro = {"precision": float(np.mean([s.precision for s in used])),
             "recall": float(np.mean([s.recall for s in used])),
             "f1": float(np.mean([s.f1 for s in used])), "findings": len(used)}
    pooled = Score(sum(s.tp for s in used), sum(s.fp for s in used), sum(s.fn for s in used))
    micro = {"precision": pooled.precision, "recall": pooled.recall, "f1": pooled.f1, "findings": len(used)}
    return macro, micro


def score(gold: Gold, pred: np.ndarray) -> EvalResult:
    """Score aligned predictions `[n, 14]` against `gold`."""
    if pred.shape != gold.classes.shape:
        raise ValueError(f"predictions {pred.shape} do not match gold {gold.classes.shape}")
    classes = {"positive": POSITIVE} if gold.kind == "openi" else SCORED_CLASSES
    result = EvalResult(gold.kind, len(gold.ids), {})
    for name, cls in classes.items():
        by_finding = {}
        for finding in gold.scored:
            f = FINDING_INDEX[finding]
            if f == NO_FINDING and cls != POSITIVE:
                continue  # No Finding takes only positive / blank
            by_finding[finding] = _score(pred[:, f] == cls, gold.classes[:, f] == cls)
        result.scores[name] = by_finding
        result.macro[name], result.micro[name] = _averages(by_finding)
    if gold.kind == "openi":
        pos = result.scores["positive"]
        six = {f: {"ours": pos[f].f1, "published": v} for f, v in CHESTXRAY8_OPENI_F1.items() if f in pos}
        if six:
            six["mean"] = {"ours": float(np.mean([r["ours"] for r in six.values()])),
                           "published": float(np.mean([r["published"] for r in six.values()]))}
        result.chestxray8 = six
    return result


def _subset(gold: Gold, ids: Iterable[str]) -> tuple[Gold, np.ndarray]:
    wanted = {str(i).strip() for i in ids}
    if not wanted:
        raise ValueError("no ids to evaluate on (an empty selection would score nothing)")
    rows = [i for i, gid in enumerate(gold.ids) if gid in wanted]
    missing = wanted - {gold.ids[i] for i in rows}
    if missing:
        raise ValueError(f"{len(missing)} of the requested ids are not in the gold, e.g. {sorted(missing)[:3]}")
    return Gold([gold.ids[i] for i in rows], gold.classes[rows], gold.kind, gold.scored, gold.has_ids), np.asarray(rows)


def evaluate(gold: PathLike | Gold, pred: PathLike | np.ndarray, ids: Iterable[str] | None = None) -> EvalResult:
    """Score predictions (a file, or a class array aligned to the gold rows) against gold (a file or
    a `Gold`), optionally only on the reports whose ids are in `ids`."""
    if not isinstance(gold, Gold):
        gold = read_gold(gold)
    if isinstance(pred, np.ndarray):
        classes = align(gold, None, pred.astype(np.int8))
    else:
        pred_ids, classes = read_predictions(pred)
        classes = align(gold, pred_ids, classes, pred)
    if ids is not None:
        gold, rows = _subset(gold, ids)
        classes = classes[rows]
    return score(gold, classes)


def read_ids(path: PathLike) -> list[str]:
    """Ids from a file: one per line (blank lines and `#` comments skipped), or a CSV's first column
    when the first line is a header named `id`."""
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if lines and lines[0].split(",")[0].strip() == "id":
        lines = [line.split(",")[0].strip() for line in lines[1:]]
    if not lines:
        raise ValueError(f"{path}: no ids in the file (an empty selection would score nothing)")
    return lines


__all__ = ["Gold", "Score", "EvalResult", "read_gold", "read_predictions", "align", "score", "evaluate",
           "read_ids"]

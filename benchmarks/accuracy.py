"""Accuracy in the same report as the speed: radedge.eval on the labels the end-to-end run produced.

Report models are scored on the Open-i hold-out of export/splits.py; the rule labeler, which learns
nothing, also on every dev report. A model trained on every dev report (the shipped default is:
its choice rests on cross-validation instead) has seen the hold-out: `seen_holdout` says so and the
harness prints it beside the rows. Gold: shared/data/openi/gold-dev.csv,
positive findings mapped to CheXpert (radedge.eval's Open-i rules). Image AUCs come from the image
helper's evaluation (export/images/evaluate.py) when it and the export extra are installed.

    python -m benchmarks.accuracy rules [--gold gold-dev.csv|gold-dev-negbio.csv] [--json OUT]
    python -m benchmarks.accuracy rules-cv [--folds 5] [--candidate NAME=LEXICONS | +NAME=SOURCE ...]

`rules` labels every report of shared/data/openi/reports.jsonl (its `text`, through
`sections.findings_text`, exactly as `ReportLabeler.load("rules")` does) with the rule labeler, scores
the positive labels against the gold with radedge.eval, and prints the per-finding table, the macro
F1 over the mapped findings and the ChestX-ray8 six-finding comparison, then the single-thread
classify throughput (sections + classify, in process; not the CSV->CSV figure).

`rules-cv` shows that a rule decided on Open-i dev is not overfit to it: each candidate lexicon (the
packaged one, and each variant of benchmarks/lexicon_variants/ or --candidate) is scored on every fold;
per fold the candidate best on the other folds is "chosen" and its held-out numbers are reported.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from radedge import eval as rad_eval
from radedge.reports.rules import RuleLabeler
from radedge.reports.sections import findings_text

from .data import OPENI, holdout_ids
from export.cli import command_parser, run_command


# ---- rows for the harness -------------------------------------------------------------------------
def _rows(task: str, model: str, split: str, result: Any, source: str) -> list[dict[str, Any]]:
    """The macro F1 row (micro F1 and per-finding F1 kept as fields) and the ChestX-ray8 comparison row."""
    pos = result.scores.get("positive", {})
    rows = [{"task": task, "model": model, "split": split, "n": result.n_reports,
             "metric": f"macro F1 positive ({int(result.macro['positive']['findings'])} findings)",
             "value": round(result.macro_f1, 4), "micro_f1": round(result.micro["positive"]["f1"], 4),
             "per_finding": {f: round(s.f1, 4) for f, s in pos.items() if s.support}, "source": source}]
    six = result.chestxray8.get("mean") if result.chestxray8 else None
    if six:
        rows.append({"task": task, "model": model, "split": split, "n": result.n_reports,
                     "metric": f"ChestX-ray8 six-finding mean F1 (published {six['published']:.3f})",
                     "value": round(six["ours"], 4), "source": source})
    return rows


def report_accuracy(predictions: Mapping[str, np.ndarray], ids: Sequence[str], gold_name: str = "gold-dev.csv"
                    ) -> list[dict[str, Any]]:
    """Rows for each labeler's predictions ([n, 14] classes over `ids`, in order)."""
    gold = rad_eval.read_gold(OPENI / gold_name)
    index = {gid: i for i, gid in enumerate(gold.ids)}
    held = holdout_ids(list(gold.ids))
    ids = [str(i) for i in ids]
    splits = {"held-out": [i for i in ids if i in held], "all dev": ids}
    rows: list[dict[str, Any]] = []
    source = "radedge.eval via benchmarks/accuracy.py"
    for label, pred in predictions.items():
        full = np.zeros(gold.classes.shape, dtype=np.int8)
        full[[index[i] for i in ids]] = pred
        for split, subset in splits.items():
            if split == "all dev" and label != "rules":
                continue  # models trained on the rest of dev: only the hold-out is an honest number
            if not subset:
                continue
            result = rad_eval.evaluate(gold, full, ids=subset)
            rows += _rows("report-labels", label, f"Open-i {split} ({gold_name})", result, source)
    return rows


def seen_holdout(model_dir: Path, ids: Sequence[str]) -> str | None:
    """A note when the model's manifest says it was trained on more dev reports than lie outside the
    hold-out (so its hold-out rows are not held out), else None."""
    from radedge.manifest import Manifest

    trained = (Manifest.read(model_dir).provenance.get("training") or {}).get("reports")
    ids = [str(i) for i in ids]
    outside = len(ids) - len(holdout_ids(ids))
    if not trained or trained <= outside:
        return None
    return (f"{Path(model_dir).name} was trained on {trained} Open-i dev reports, hold-out included: its "
            f"'Open-i held-out' rows were seen in training; its cross-validated scores are in its MODEL_CARD.md")


def image_accuracy(model_dir) -> list[dict[str, Any]]:
    """Rows from export/images/evaluate.py: per source mean AUC (per-finding AUCs kept) of the shipped
    graph, its fp32 export and the BCE baseline (each when present), and the int8-vs-fp32 AUC shift."""
    from export.images.evaluate import evaluate

    report = evaluate(model_dir)
    source = "export/images/evaluate.py:evaluate"
    name = report["model"].rstrip("/").split("/")[-1]
    rows: list[dict[str, Any]] = []
    for label, by_source in report["mean_auc"].items():
        for src, value in by_source.items():
            aucs = {f: v["auc"] if label == "shipped" else v.get(label) for f, v in report["auc"].get(src, {}).items()}
            if value is not None:
                rows.append({"task": "image-findings", "model": f"{name} {label}",
                             "split": f"{src} validation (patient-level)", "n": report["validation_images"],
                             "metric": f"mean AUC ({len(aucs)} findings)", "value": value,
                             "per_finding": aucs, "source": source})
    shift = report["targets"].get("int8_vs_fp32_max_auc_shift")
    if shift is not None:
        rows.append({"task": "image-findings", "model": name, "split": "all validation sources",
                     "n": report["validation_images"], "metric": "max |AUC int8 - AUC fp32|",
                     "value": shift, "source": source})
    return rows


# ---- the rule labeler alone -----------------------------------------------------------------------
def load_reports(path: Path) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"{path} not found (shared/data must sit beside the checkout, or set RADEDGE_SHARED)")
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def label_all(labeler: RuleLabeler, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """Classes [n, 14], wall seconds and process CPU seconds (section extraction + classify, one
    thread). CPU time is quoted beside wall time because other jobs may share the cores."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = np.stack([labeler.classify(findings_text(t)) for t in texts]) if texts else np.zeros((0, 14), np.int8)
    return out, time.perf_counter() - wall, time.process_time() - cpu


# Published Open-i results, quoted for comparison (whole Open-i, positive findings vs the manual
# annotation). ChestX-ray8: Wang et al. CVPR 2017, Table 2, "Total" over 8 findings + Normal.
# NegBio: Peng et al., AMIA Jt Summits 2018 (PMC5961822): "Overall, NegBio achieved a higher precision
# of 89.8%, recall of 85.0%, and F1-score of 87.3% on OpenI" (as quoted by a secondary source; the
# paper's per-finding table could not be retrieved here).
PUBLISHED_TOTAL = {"ChestX-ray8 (Wang 2017)": (0.90, 0.91, 0.90), "NegBio (Peng 2018)": (0.898, 0.850, 0.873)}
# The CheXpert findings that stand for ChestX-ray8's eight + Normal (Infiltration -> Lung Opacity,
# Mass / Nodule -> Lung Lesion).
CHESTXRAY8_SET = ("No Finding", "Atelectasis", "Cardiomegaly", "Pleural Effusion", "Lung Opacity", "Lung Lesion",
                  "Pneumonia", "Pneumothorax")


def pooled(scores: dict[str, rad_eval.Score], findings: tuple[str, ...]) -> rad_eval.Score:
    """Micro-averaged counts over `findings` (those present in `scores`)."""
    used = [scores[f] for f in findings if f in scores]
    return rad_eval.Score(sum(s.tp for s in used), sum(s.fp for s in used), sum(s.fn for s in used))


def rules_main(args: argparse.Namespace) -> int:
    """The rule labeler's per-finding table, macro F1, ChestX-ray8 comparison and speed."""
    reports = load_reports(args.reports)
    labeler = RuleLabeler.load(args.lexicons)
    texts = [r["text"] for r in reports]
    pred, _, _ = label_all(labeler, texts)
    timings = [label_all(labeler, texts)[1:] for _ in range(max(1, args.repeat))]
    seconds, cpu_seconds = min(t[0] for t in timings), min(t[1] for t in timings)

    gold = rad_eval.read_gold(args.gold)
    ids = [r["id"] for r in reports]
    result = rad_eval.evaluate(gold, rad_eval.align(gold, ids, pred, args.reports))
    print(result.table())
    macro, micro = result.macro["positive"], result.micro["positive"]
    print()
    print(f"gold: {args.gold}")
    print(f"macro F1 (positive, {int(macro['findings'])} mapped findings): {macro['f1']:.3f}   "
          f"micro P/R/F1: {micro['precision']:.3f} / {micro['recall']:.3f} / {micro['f1']:.3f}")
    if "mean" in result.chestxray8:
        six = result.chestxray8["mean"]
        print(f"ChestX-ray8 six-finding mean F1: ours {six['ours']:.3f}, published {six['published']:.3f} "
              f"(Wang et al. CVPR 2017, Table 2)")
    positive = result.scores["positive"]
    for label, findings in (("ChestX-ray8 set", CHESTXRAY8_SET),
                            ("ChestX-ray8 set without Lung Opacity", tuple(f for f in CHESTXRAY8_SET
                                                                          if f != "Lung Opacity"))):
        s = pooled(positive, findings)
        print(f"micro P/R/F1 over the {label} ({len(findings)} findings): "
              f"{s.precision:.3f} / {s.recall:.3f} / {s.f1:.3f}")
    for name, (p, r, f1) in PUBLISHED_TOTAL.items():
        print(f"published overall P/R/F1, {name}: {p:.3f} / {r:.3f} / {f1:.3f}")
    rate = len(texts) / seconds if seconds else float("inf")
    cpu_rate = len(texts) / cpu_seconds if cpu_seconds else float("inf")
    print(f"throughput: {len(texts)} reports in {seconds:.3f} s wall = {rate:,.0f} reports/s "
          f"({1e3 * seconds / max(1, len(texts)):.3f} ms/report); CPU time {cpu_seconds:.3f} s = "
          f"{cpu_rate:,.0f} reports/s (findings_text + classify, one thread, best of {args.repeat}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if args.json:
        payload = result.to_dict() | {"reports_per_s": rate, "cpu_reports_per_s": cpu_rate, "gold": str(args.gold)}
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


# ---- rule variants, chosen by cross-validation over the dev reports ----------------------------------
VARIANTS = Path(__file__).parent / "lexicon_variants"  # extra lexicon sources: one rule each
CV_SALT = "radedge-rules-cv-v1:"


def cv_folds(texts: Sequence[str], k: int) -> np.ndarray:
    """Fold of each report (0..k-1) from a salted hash of the text the labelers read, so identical
    texts always share a fold."""
    from export.splits import salted_percent

    return np.array([salted_percent(findings_text(t), CV_SALT) * k // 100 for t in texts], dtype=np.int64)


def _two_numbers(gold: rad_eval.Gold, pred: np.ndarray, ids: Sequence[str]) -> tuple[float, float]:
    """(macro F1 over the mapped findings, ChestX-ray8 six-finding mean F1) on `ids`."""
    result = rad_eval.evaluate(gold, pred, ids=list(ids))
    return result.macro["positive"]["f1"], result.chestxray8.get("mean", {}).get("ours", float("nan"))


def rules_cv_main(args: argparse.Namespace) -> int:
    """k-fold choice among rule variants: for each fold, the variant with the best macro F1 (then
    six-finding mean) on the other k-1 folds is scored on the held-out fold. Prints every variant's
    held-out numbers per fold, the choice, and the mean and spread."""
    reports = load_reports(args.reports)
    texts, ids = [r["text"] for r in reports], [str(r["id"]) for r in reports]
    gold = rad_eval.read_gold(args.gold)
    index = {gid: i for i, gid in enumerate(gold.ids)}
    candidates = {"packaged": RuleLabeler.load()}
    for spec in args.candidate or [f"+{p.name}={p}" for p in sorted(VARIANTS.iterdir()) if p.is_dir()]:
        name, _, path = spec.partition("=")
        if name.startswith("+"):  # the packaged lexicon plus one extra source
            candidates[name] = RuleLabeler.load(extra=[path])
        else:
            candidates[name] = RuleLabeler.load(path)
    preds = {}
    for name, labeler in candidates.items():
        full = np.zeros(gold.classes.shape, dtype=np.int8)
        full[[index[i] for i in ids]] = label_all(labeler, texts)[0]
        preds[name] = full
    folds = cv_folds(texts, args.folds)
    held: dict[str, list[tuple[float, float]]] = {n: [] for n in [*candidates, "chosen"]}
    print(f"{args.folds}-fold cross-validation over {len(ids)} Open-i dev reports ({args.gold.name}); "
          f"held-out macro F1 / six-finding mean F1")
    for k in range(args.folds):
        test = [i for i, f in zip(ids, folds) if f == k]
        train = [i for i, f in zip(ids, folds) if f != k]
        on_train = {n: _two_numbers(gold, p, train) for n, p in preds.items()}
        chosen = max(on_train, key=lambda n: on_train[n])
        cells = []
        for n, p in preds.items():
            numbers = _two_numbers(gold, p, test)
            held[n].append(numbers)
            cells.append(f"{n} {numbers[0]:.3f} / {numbers[1]:.3f}")
            if n == chosen:
                held["chosen"].append(numbers)
        print(f"  fold {k} ({len(test)} reports): " + "   ".join(cells) + f"   -> chosen on the other folds: {chosen}")
    for n, values in held.items():
        v = np.array(values)
        print(f"  {n:<24} macro F1 {v[:, 0].mean():.3f} +- {v[:, 0].std():.3f}   "
              f"six-finding mean {v[:, 1].mean():.3f} +- {v[:, 1].std():.3f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = command_parser("benchmarks.accuracy", __doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("rules", help="rule labeler accuracy and in-process speed on the Open-i dev reports")
    p.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl", help="Open-i reports (.jsonl)")
    p.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv", help="Open-i gold labels (.csv)")
    p.add_argument("--lexicons", type=Path, default=None, help="lexicon folder (default: packaged)")
    p.add_argument("--repeat", type=int, default=3, help="timing passes (best is reported)")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    p.set_defaults(run=rules_main)
    p = sub.add_parser("rules-cv", help="choose among rule variants by k-fold cross-validation on Open-i dev")
    p.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl", help="Open-i reports (.jsonl)")
    p.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv", help="Open-i gold labels (.csv)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--candidate", action="append", metavar="NAME=LEXICONS",
                   help="a lexicon root to compare with the packaged one; +NAME=SOURCE adds one source to "
                        "the packaged lexicon (default: each folder of benchmarks/lexicon_variants)")
    p.set_defaults(run=rules_cv_main)
    args = ap.parse_args(argv)
    return args.run(args)

if __name__ == "__main__":
    run_command(main, "benchmarks.accuracy")

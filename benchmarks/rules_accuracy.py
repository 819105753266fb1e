"""Rule labeler accuracy and in-process speed on the Open-i dev reports.

    python -m benchmarks.rules_accuracy [--gold gold-dev.csv|gold-dev-negbio.csv] [--json OUT]

Labels every report of shared/data/openi/reports.jsonl (its `text`, through
`sections.findings_text`, exactly as `ReportLabeler.load("rules")` does) with the rule labeler, scores
the positive labels against the gold with radedge.eval, and prints the per-finding table, the macro
F1 over the mapped findings and the ChestX-ray8 six-finding comparison, then the single-thread
classify throughput (sections + classify, in process; not the CSV->CSV figure).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from benchmarks.data import OPENI
from radedge import eval as rad_eval
from radedge.reports.rules import RuleLabeler
from radedge.reports.sections import findings_text


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl")
    parser.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv")
    parser.add_argument("--lexicons", type=Path, default=None, help="lexicon folder (default: packaged)")
    parser.add_argument("--repeat", type=int, default=3, help="timing passes (best is reported)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    raise SystemExit(main())

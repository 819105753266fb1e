"""Held-out gold numbers for report labelers: the student (int8 / fp32 ONNX) and its teacher, same reports.

    python -m export.reports.gold models/report-student [rules runs/fp32-model ...]

Every labeler runs through `ReportLabeler` (the runtime path) on the Open-i dev reports that
`export.splits` holds out, and is scored by `radedge.eval` against `gold-dev.csv` (positive findings,
macro F1 over the mapped findings). The same ids are written by `--write-ids` for `radedge eval --ids`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from radedge.eval import EvalResult, evaluate, read_gold
from radedge.reports.labeler import ReportLabeler

from ..splits import is_holdout
from ..cli import command_parser, run_command

OPENI = Path(os.environ.get("RADEDGE_SHARED", Path(__file__).resolve().parents[3] / "shared")) / "data" / "openi"


def read_openi(reports: Path) -> tuple[list[str], list[str]]:
    """(ids, texts) of an Open-i reports.jsonl, in file order."""
    ids, texts = [], []
    with open(reports, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            ids.append(str(rec["id"]))
            texts.append(rec.get("text") or "")
    return ids, texts


def holdout_ids(reports: Path) -> list[str]:
    return [i for i in read_openi(reports)[0] if is_holdout(i)]


def gold_eval(labeler: ReportLabeler, reports: Path, gold: Path, only_holdout: bool = True) -> EvalResult:
    """Score a labeler on the (held-out) reports against the gold file."""
    ids, texts = read_openi(reports)
    keep = [k for k, i in enumerate(ids) if is_holdout(i) or not only_holdout]
    results = labeler([texts[k] for k in keep], [ids[k] for k in keep])
    g = read_gold(gold)
    row = {gid: r for r, gid in enumerate(g.ids)}
    pred = np.zeros((len(g.ids), 14), dtype=np.int8)
    for res in results:
        pred[row[res.id]] = res.classes
    return evaluate(g, pred, ids=[ids[k] for k in keep])


def main(argv: Sequence[str] | None = None) -> int:
    p = command_parser("export.reports.gold", __doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=["default", "rules"], help="model folders/names, or 'rules'")
    p.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl", help="Open-i reports (.jsonl)")
    p.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv", help="Open-i gold labels (.csv)")
    p.add_argument("--all", action="store_true", help="score every dev report (trained-on ones included)")
    p.add_argument("--write-ids", type=Path, help="write the held-out ids, one per line, and exit")
    p.add_argument("--table", action="store_true", help="print the per-finding tables too")
    args = p.parse_args(argv)
    if args.write_ids:
        args.write_ids.write_text("\n".join(holdout_ids(args.reports)) + "\n", encoding="utf-8")
        return 0
    for model in args.models:
        result = gold_eval(ReportLabeler.load(model, threads=1), args.reports, args.gold, not args.all)
        print(f"{model}: macro F1 (positive, {int(result.macro['positive']['findings'])} findings) = "
              f"{result.macro_f1:.4f} on {result.n_reports} {'dev' if args.all else 'held-out'} reports")
        if args.table:
            print(result.table())
    return 0


if __name__ == "__main__":
    run_command(main, "export.reports.gold")

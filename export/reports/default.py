"""Rebuild the shipped default report model, `models/report-student/`, from one command.

    python -m export.reports.default                       # cross-validate, train on all dev, export, gate
    python -m export.reports.default --candidate minilm-l3-adapter --folds 5
    python -m export.reports.default --card-only           # rewrite MODEL_CARD.md from the manifest

Steps:
1. k-fold cross-validation of the rules and the candidate on the Open-i dev reports
   (`python -m export.reports.select`; fold results in runs/report-cv/ are reused when present);
2. train the candidate on every dev report (the sentence-level recipe of export.reports.sentence_student:
   rule teacher on each sentence + gold-dev.csv on each report);
3. export (export.reports.onnx): ONNX, parity, int8, the int8-vs-fp32 gate, the degenerate-student gate
   and the quality gate (the shipped row's cross-validated macro F1 and six-finding mean at least the
   rules'); a candidate that fails any writes nothing;
4. models/report-student with the cross-validated numbers in its manifest and MODEL_CARD.md. What
   ships is a rule/student combination (`choose_row` says why not the pure student): the rules' four
   classes for the 13 findings, the model's learned No Finding, and on the findings cross-validation
   picks (`select.model_uncertain_findings`) the model's uncertain over a rules positive.

Seeds are fixed; torch runs on `--threads` (default 1: the machine is shared). Work files go to
runs/report-default/ (git-ignored).
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from radedge.reports.labeler import SENTENCE

from . import select
from .cv import HEADER, METRICS, format_row
from .gold import OPENI, read_openi
from .onnx import ExportError, export_student
from .sentence_student import Tail, build_corpus, sentence_probs, train
from .student import ReportStudent, save_student
from ..cli import command_parser, run_command

log = logging.getLogger("export.reports.default")
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "report-student"
WORK = ROOT / "runs" / "report-default"
READING = {"unit": SENTENCE, "no_finding": "learned"}


def full_student(built: select.Built) -> ReportStudent:
    """The trained candidate as one ReportStudent (token ids -> logits), the module that is exported:
    a frozen-bottom candidate's trained top layers already live inside its encoder."""
    if isinstance(built.model, Tail):
        student = ReportStudent(built.encoder)
        student.heads = built.model.heads
        return student.eval()
    return built.model.student.eval()


def tail_vs_full(built: select.Built, student: ReportStudent, rows: Sequence[np.ndarray], pad_id: int,
                 n: int = 64) -> float:
    """Max |probability difference| between the cached-feature model that was trained and the
    assembled student on the first n sentences (they must be the same function)."""
    from .sentence_student import Features

    idx = list(range(min(n, len(rows))))
    trained = sentence_probs(built.model, built.feats, idx)
    ids, mask = Features(list(rows), False, pad_id).batch(idx)
    with torch.inference_mode():
        full = torch.softmax(student(ids, mask), dim=-1).numpy()
    return float(np.abs(trained - full).max())


def choose_row(cv: dict[str, Any], student: str, ship: str) -> str:
    """The cross-validated row that ships (`--ship`). auto: of the two rule/student combinations, the
    one with the higher cross-validated macro F1 among those reaching the rules on macro F1 and the
    six-finding mean. A pure student only when asked: the Open-i gold says "present" and nothing
    else, so cross-validation cannot see a student that reads negations and hedges wrongly, and the
    certainty set (benchmarks.certainty) showed this happens; the combinations keep the rules' reading."""
    table, rules = cv["table"], cv["table"]["rules"]
    rows = {"student": student, "combination": select.combination_name(student),
            "uncertain": select.uncertain_name(student)}
    if ship != "auto":
        return rows[ship]

    def reaches(row: str) -> bool:
        return row in table and all(table[row][m][0] >= rules[m][0] for m in ("macro_f1", "six_mean"))

    ok = [rows[k] for k in ("uncertain", "combination") if reaches(rows[k])]
    if not ok:
        raise SystemExit(f"no rule/student combination of {student} reaches the rules in cross-validation; "
                         f"nothing shipped (table: {json.dumps(table)})")
    return max(ok, key=lambda row: table[row]["macro_f1"][0])


def reading_of(row: str, student: str, cv: dict[str, Any]) -> dict[str, Any]:
    """The manifest's "reading" for the shipped row: the sentence unit, and for a combination the
    findings taken from the rules and those where the model's uncertain overrules a rules positive."""
    if row == student:
        return dict(READING)
    out = dict(READING, rules_findings=list(select.RULES_FINDINGS))
    if row == select.uncertain_name(student):
        out["model_uncertain"] = list(cv["model_uncertain"][student])
    return out


def uncertain_text(reading: dict[str, Any]) -> str:
    """The card's sentence on `model_uncertain` (empty when the combination has none)."""
    names = reading.get("model_uncertain") or []
    if not names:
        return ""
    return f"""
On {", ".join(names)}, a mention the rules read as positive and the model as uncertain is
uncertain (-1.0), with the model's probabilities and evidence: through the expert annotations the
model learned which mentions the annotators did not code as present (an "opacity" that is not an
infiltrate). These findings were chosen by cross-validation (export.reports.select: a finding is
taken when this raises its out-of-fold F1 by more than {select.UNCERTAIN_MARGIN}; in the table the choice
is itself nested, made on the other folds)."""


def table_rows(rows: dict[str, dict[str, list[float]]], cell: Callable[[list[float]], str]) -> str:
    """Markdown table lines, one per labeler: its name, then `cell` of each metric."""
    return "\n".join(f"| {n} | " + " | ".join(cell(row[k]) for k in METRICS) + " |" for n, row in rows.items())


def card(name: str, c: select.Candidate, cv: dict[str, Any], measured: dict[str, Any], info: dict[str, Any]) -> str:
    """MODEL_CARD.md text, from the measured results only (`info["command"]` rebuilds the model)."""
    table = table_rows(cv["table"], lambda v: f"{v[0]:.3f} ± {v[1]:.3f}")
    pooled = table_rows(cv.get("pooled", {}), lambda v: f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]")
    gains = table_rows(cv.get("paired_gain_over_rules", {}), lambda v: f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]")
    r = c.recipe
    h = info["history"]
    row = info["cv_row"]
    what = (f"""**What ships: the pure distilled student** (cross-validated row `{row}` below).""" if row == c.name else
            f"""**What ships: a rule/student combination, not a pure student** (cross-validated row `{row}`
below). The rule labeler runs beside the model: the 13 findings other than No Finding (their four-way
class and evidence) are the rules'; the distilled model gives No Finding (learned, see below; blanked
by the model's own positive or uncertain findings), which is blanked again when the rules find any
of the 13 positive or uncertain: No Finding needs both to find nothing.{uncertain_text(info["reading"])}
Why: the Open-i gold says "present" and nothing else, so cross-validation cannot see a student that
reads negations and hedges wrongly; the certainty set (`python -m benchmarks.certainty`) showed the
pure student (row `{c.name}`) does, so the combination keeps the rules' reading of every mention.
The pure student's numbers are in the same table.""")
    return f"""# report-student

{what}

A distilled report labeler: 14 CheXpert findings x 4 classes (not mentioned / positive / negative /
uncertain) from the FINDINGS and IMPRESSION sections of a chest X-ray report, read one sentence at a
time. int8 ONNX, run by `radedge label-reports` and `ReportLabeler.load("default")` on onnxruntime;
no torch, no network.

**Not a clinical device.** A research tool for organising and searching report collections. It was
trained on labels produced by rules and on the Open-i MeSH annotations, not validated for diagnosis,
triage or any decision about a patient.

## How it reads a report
The read text (radedge.reports.sections) is split into sentences (radedge.reports.sentences); each
distinct sentence goes through the model (windows of {info['max_length']} tokens, stride {info['stride']}); per
finding the report takes CheXpert's precedence over its sentences (positive > uncertain > negative >
not mentioned). **No Finding is learned**, not derived: a sentence is "normal" unless it reports an
abnormality, including ones outside the 13 findings (emphysema, granuloma, scoliosis...); the report
is No Finding when every sentence is normal and no other finding but Support Devices is positive or
uncertain. Evidence: the sentence that decided each label (for No Finding, every sentence).

## How it was made
- Student: {c.describe}. Per-finding attention pooling (one learned query per finding), a linear layer
  per finding to 4 logits.
- Teacher: the rule labeler (`radedge.reports.rules`, packaged lexicons) on every distinct sentence of
  the {cv['reports']} Open-i dev reports (and the covid-cases clinical notes, teacher only),
  its own No Finding included; class weights sqrt(majority / class), capped at {r.class_weight_cap}.
- Expert signal: gold-dev.csv (MeSH-derived, presence only) on the 11 findings it maps to, through
  the same aggregation (a report's positive probability is the largest over its sentences, No
  Finding's the smallest), binary cross-entropy weight {r.gold_weight}, positives weighted by
  sqrt(negatives / positives) capped at {r.gold_pos_weight_cap}. Gold never decides negative vs
  uncertain vs not mentioned: that is the teacher's. Note: through the gold, Lung Opacity leans towards
  the annotators' "Infiltrate" and Pleural Other towards pleural thickening.
- Training: {r.epochs} epochs, {r.reports_per_batch} reports per batch, lr {r.lr}, seed {r.seed};
  {h['steps']} steps in {h['seconds']:.0f} s on all dev reports.
- Export: ONNX (opset 17), parity max |logit diff| = {measured['parity_max_abs_logit_diff']:.2e};
  onnxruntime dynamic int8 (per-channel, MatMul + embedding Gather); int8-vs-fp32 label agreement
  {measured['int8_fp32_label_agreement']:.4f} (gate >= 0.99) on the dev reports; not degenerate;
  quality gate passed (below).
- Rebuild: `{info['command'].strip()}`

## Cross-validated accuracy (what the choice and the quality gate use)
{cv['folds']}-fold cross-validation over the {cv['reports']} Open-i dev reports (export.reports.cv: folds by a hash
of the read text, identical texts in one fold); each fold scored by a model trained on the other
folds; gold gold-dev.csv, positive findings, `radedge.eval`'s scorer: macro F1 over the mapped
findings with a gold positive in the fold, and the mean of the six ChestX-ray8 findings. Mean ± sd
over folds (`python -m export.reports.select --folds {cv['folds']}` re-measures it). The rules were written
looking at all dev reports, so their numbers here are optimistic.

| labeler | macro F1 | six-finding mean | No Finding F1 | Pneumothorax F1 |
|---|---|---|---|---|
{table}

Pooled out-of-fold (every dev report scored once, by the model of its fold; 95% bootstrap interval
over reports). A fold without a gold positive gives no F1 for that finding; with 15 Pneumothorax
positives in {cv['folds']} folds the fold mean above rests on a few per fold, so the pooled figure is the one
to read for rare findings (export.reports.cv says why):

| labeler | macro F1 | six-finding mean | No Finding F1 | Pneumothorax F1 |
|---|---|---|---|---|
{pooled}

Against the rules, paired (each score minus the rules', both on the same bootstrap resamples of the
reports; an interval above 0 is a lead that is not noise):

| labeler | macro F1 | six-finding mean | No Finding F1 | Pneumothorax F1 |
|---|---|---|---|---|
{gains}

Shipped: `{name}`, trained on all dev reports with the same recipe. Shipped row minus rules:
macro F1 {cv['table'][row]['macro_f1'][0] - cv['table']['rules']['macro_f1'][0]:+.3f}, six-finding mean
{cv['table'][row]['six_mean'][0] - cv['table']['rules']['six_mean'][0]:+.3f}: read them against the spread over folds. Fold results are
reused from runs/report-cv/ when present (the teacher labels they were trained with are those of the
rules at the time they were computed); delete that folder to retrain every fold with the current rules.
"""


def write_card(out: Path, c: select.Candidate, cv: dict[str, Any], measured: dict[str, Any],
               info: dict[str, Any]) -> None:
    """MODEL_CARD.md into the exported model folder, and the manifest's file hashes updated for it."""
    from radedge.manifest import Manifest, file_hashes

    (out / "MODEL_CARD.md").write_text(card("report-student", c, cv, measured, info), encoding="utf-8")
    manifest = Manifest.read(out)
    manifest.files = file_hashes(out, ["model.onnx", "tokenizer.json", "MODEL_CARD.md"])
    manifest.write(out)


def rewrite_card(out: Path) -> None:
    """`--card-only`: the card of an exported model rewritten from what its manifest recorded (the
    cross-validation, the export's measurements, the student and its training), without training."""
    from radedge.manifest import Manifest

    manifest = Manifest.read(out)
    student = manifest.provenance["student"]
    info = dict(student, history=manifest.provenance["training"])
    metrics = manifest.metrics
    c = select.CANDIDATES[student["candidate"]]
    write_card(out, c, metrics["cross_validation"], metrics, info)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    for name in ("export.reports.default", "export.reports.select", "export.reports.onnx",
                 "export.reports.sentence_student"):
        logging.getLogger(name).setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    p = command_parser("export.reports.default", __doc__.split("\n\n")[0])
    p.add_argument("--candidate", default="deberta-v2-l3", choices=sorted(select.CANDIDATES),
                   help="student candidate to train and ship")
    p.add_argument("--folds", type=int, default=3, help="cross-validation folds of the quality gate")
    p.add_argument("--reports", type=Path, default=OPENI / "reports.jsonl", help="Open-i reports (.jsonl) to train on")
    p.add_argument("--gold", type=Path, default=OPENI / "gold-dev.csv",
                   help="Open-i gold labels (.csv) of the quality gate")
    p.add_argument("--out", type=Path, default=SHIPPED, help="model folder to write (the shipped one by default)")
    p.add_argument("--work", type=Path, default=WORK, help="working folder (pseudo-labels, checkpoints, caches)")
    p.add_argument("--cv-work", type=Path, default=select.WORK,
                   help="working folder of the cross-validation (shared with export.reports.select)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    p.add_argument("--ship", choices=("auto", "student", "combination", "uncertain"), default="auto",
                   help="auto: the better rule/student combination (rules + learned No Finding; 'uncertain': "
                        "also the model's uncertain over a rules positive on the findings chosen by "
                        "cross-validation) whose cross-validated macro F1 and six-finding mean reach the "
                        "rules', else nothing; student: the pure student")
    p.add_argument("--card-only", action="store_true",
                   help="rewrite MODEL_CARD.md of the model in --out from its manifest (no training)")
    args = p.parse_args(argv)
    if args.card_only:
        rewrite_card(args.out)
        return 0
    torch.set_num_threads(args.threads)
    started = time.monotonic()
    select.main(["--folds", str(args.folds), "--only", args.candidate, "--reports", str(args.reports),
                 "--gold", str(args.gold), "--work", str(args.cv_work), "--threads", str(args.threads)])
    cv = json.loads((args.cv_work / f"k{args.folds}" / "summary.json").read_text())
    c = select.CANDIDATES[args.candidate]
    shipped_row = choose_row(cv, c.name, args.ship)
    reading = reading_of(shipped_row, c.name, cv)
    log.info("shipping %s (cross-validated row %r)", "the pure student" if shipped_row == c.name else
             "the rule/student combination", shipped_row)
    ids, texts = read_openi(args.reports)
    corpus = build_corpus(ids, texts, args.gold, extra_texts=select.extra_texts(select.COVID_NOTES))
    extra = np.arange(len(corpus.sentences) - corpus.extra_sentences, len(corpus.sentences))
    built = select.build(c, corpus, list(range(len(corpus.sentences))), args.work, {}, args.cv_work / "cache")
    history = train(built.model, built.feats, corpus, range(len(ids)), c.recipe, extra)
    student = full_student(built)
    windows = select.windows_for(built.tokenizer_file)
    from .sentence_student import token_rows

    diff = tail_vs_full(built, student, token_rows(windows, corpus.sentences[:64]), windows.pad_id)
    log.info("trained model vs assembled student: max |p difference| %.2e", diff)
    if diff > 1e-3:
        raise SystemExit(f"the assembled student differs from the trained one by {diff:.2e}")
    info = {"base": c.base, "candidate": c.name, "describe": c.describe, "layers": c.layers, "frozen": c.frozen,
            "adapter": c.adapter,
            "max_length": select.MAX_LENGTH, "stride": select.STRIDE, "reading": reading, "cv_row": shipped_row,
            "recipe": {k: v for k, v in vars(c.recipe).items() if k != "history"}, "history": history,
            "command": "python -m export.reports.default " + " ".join(argv)}
    staged = args.work / "student"
    save_student(student, staged, info, built.tokenizer_file)
    dev_texts = [t for t in texts if t.strip()]
    try:
        measured = export_student(staged, args.out, dev_texts, name="report-student", cv=cv, cv_name=shipped_row,
                                  metrics={"cross_validation": cv},
                                  provenance={"teacher": "rules (radedge.reports.rules) + gold-dev.csv",
                                              "command": info["command"]})
    except ExportError as exc:
        print(f"report default: {c.name} not shipped: {exc}", file=sys.stderr)
        return 1
    write_card(args.out, c, cv, measured, info)
    print(HEADER)
    for n, row in cv["table"].items():
        print(format_row(n, row))
    log.info("shipped %s to %s in %.1f minutes", c.name, args.out, (time.monotonic() - started) / 60)
    return 0


if __name__ == "__main__":
    run_command(main, "export.reports.default")

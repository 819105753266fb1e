"""Label a report corpus with the teachers, for distillation.

    python -m export.reports.pseudolabel INPUT -o corpus.jsonl --teacher rules
    python -m export.reports.pseudolabel INPUT -o corpus.jsonl --teacher llm  --endpoint http://gpu-box:8000/v1 --llm-model NAME
    python -m export.reports.pseudolabel INPUT -o corpus.jsonl --teacher both --endpoint ... --llm-model ...

INPUT is anything `radedge label-reports` reads (radedge.io.readers: CSV, JSONL, .txt folder, Open-i XML).
Teachers see what the student will read: the FINDINGS / IMPRESSION sections (radedge.reports.sections).

Each corpus record: `id`, `text` (the report as given), `classes` (14 class indices), `probs` (soft
targets `[14][4]`, when they are not one-hot), `confidence` (per finding), `teachers` (each
teacher's own classes or error) and `error` (set, and no labels, when no teacher could label the
report: never guessed). With both teachers, a finding on which they agree keeps its class with
confidence 1; where they disagree the target is the mixture LLM_WEIGHT * llm + (1 - LLM_WEIGHT) * rules
(the LLM's own soft distribution when it has one), with confidence DISAGREE_CONFIDENCE.

The output is appended record by record and a rerun resumes after the records it holds; the LLM's
answers are also cached (`--cache`), so a stopped run asks the endpoint only about new reports.
Provenance (teachers, prompt version, endpoint model, data, date, command) goes to `OUT.provenance.json`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from radedge.cli import Progress
from radedge.errors import InputError
from radedge.io.readers import FORMATS, ReaderOptions, count_reports, read_reports
from radedge.io.records import RecordWriter
from radedge.labels import N_CLASSES, N_FINDINGS, apply_no_finding
from radedge.manifest import sha256_file
from radedge.reports.labeler import decode_report
from radedge.reports.sections import findings_text

from ..cli import command_parser, run_command
from .teachers import TeacherLabel

log = logging.getLogger("export.reports.pseudolabel")

CHUNK = 64
LLM_WEIGHT = 0.6  # the LLM reads context the rules cannot; on a disagreement it leads, the rules still count
DISAGREE_CONFIDENCE = 0.5
SINGLE_CONFIDENCE = 0.8  # one of two teachers failed on this report: the other's label, less trusted


def combine(labels: dict[str, TeacherLabel]) -> dict[str, Any]:
    """One corpus target from the teachers' answers for one report (see the module docstring)."""
    ok = {name: lab for name, lab in labels.items() if lab.classes is not None}
    record: dict[str, Any] = {"teachers": {name: (lab.classes.tolist() if lab.classes is not None else
                                                   {"error": lab.error}) for name, lab in labels.items()}}
    if not ok:
        record["error"] = "; ".join(f"{n}: {lab.error}" for n, lab in labels.items())
        return record
    eye = np.eye(N_CLASSES, dtype=np.float32)

    def dist(lab: TeacherLabel) -> np.ndarray:
        return lab.probs if lab.probs is not None else eye[lab.classes.astype(np.int64)]

    if len(ok) == 1:
        (lab,) = ok.values()
        q = dist(lab)
        conf = np.full(len(lab.classes), 1.0 if len(labels) == 1 else SINGLE_CONFIDENCE, dtype=np.float32)
        classes = lab.classes.copy()
    else:
        llm, rules = ok["llm"], ok["rules"]
        agree = llm.classes == rules.classes
        mix = LLM_WEIGHT * dist(llm) + (1 - LLM_WEIGHT) * dist(rules)
        q = np.where(agree[:, None], eye[llm.classes.astype(np.int64)], mix)
        conf = np.where(agree, 1.0, DISAGREE_CONFIDENCE).astype(np.float32)
        classes = q.argmax(-1).astype(np.int8)
        record["agreement"] = round(float(agree.mean()), 4)
    classes = apply_no_finding(classes)
    q[0] = eye[classes[0]]  # No Finding follows the rule from the other findings
    record["classes"] = classes.tolist()
    if not np.array_equal(q, eye[classes.astype(np.int64)]):
        record["probs"] = np.round(q, 4).tolist()
    record["confidence"] = [round(float(c), 3) for c in conf]
    return record


def make_teachers(kind: str, args: argparse.Namespace) -> list[Any]:
    teachers: list[Any] = []
    if kind in ("rules", "both"):
        from .teachers.rules import RulesTeacher

        teachers.append(RulesTeacher(args.lexicons))
    if kind in ("llm", "both"):
        if not args.endpoint or not args.llm_model:
            raise SystemExit("--teacher llm/both needs --endpoint URL and --llm-model NAME")
        from .teachers.llm import LLMTeacher

        cache = args.cache or Path(str(args.out) + ".llm-cache.jsonl")
        teachers.append(LLMTeacher(args.endpoint, args.llm_model, cache, timeout=args.timeout,
                                   attempts=args.attempts, concurrency=args.concurrency,
                                   api_key=os.environ.get("RADEDGE_LLM_API_KEY")))
    return teachers


def label_chunk(teachers: Sequence[Any], chunk: Sequence[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """Corpus records for (id, report) pairs; unreadable reports get their error, unlabelled ones too."""
    out: list[dict[str, Any] | None] = [None] * len(chunk)
    texts: dict[int, str] = {}
    for i, (rid, report) in enumerate(chunk):
        try:
            texts[i] = decode_report(report)
        except InputError as exc:
            out[i] = {"id": rid, "text": None, "error": f"{type(exc).__name__}: {exc}"}
    model_texts = {i: findings_text(t) for i, t in texts.items()}
    for i, t in model_texts.items():
        if not t.strip():  # nothing to read: not mentioned everywhere (as at run time), no teacher asked
            out[i] = {"id": chunk[i][0], "text": texts[i], "teachers": {}, "classes": [0] * N_FINDINGS,
                      "confidence": [1.0] * N_FINDINGS}
    order = [i for i, t in model_texts.items() if t.strip()]
    answers = {t.name: t.label([model_texts[i] for i in order]) for t in teachers}
    for k, i in enumerate(order):
        labels = {name: ans[k] for name, ans in answers.items()}
        out[i] = {"id": chunk[i][0], "text": texts[i], **combine(labels)}
    return out  # type: ignore[return-value]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def sentence_chunk(teachers: Sequence[Any], records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Extra records: each sentence of each labelled report (of two sentences or more), labelled by
    the teachers on its own, with `source_id` naming its report (the hold-out follows the report).

    Why: a report-level target says which findings the report mentions, not where; a sentence's target
    ties each mention and its negation or hedge to a few words, which a small student learns faster."""
    pieces: list[tuple[Any, int, str]] = []
    for rec in records:
        if rec.get("error") or not rec.get("text"):
            continue
        sentences = [t.strip() for t in _SENTENCE_END.split(findings_text(rec["text"])) if t.strip()]
        if len(sentences) > 1:
            pieces += [(rec["id"], k, t) for k, t in enumerate(sentences)]
    if not pieces:
        return []
    answers = {t.name: t.label([text for _, _, text in pieces]) for t in teachers}
    return [{"id": f"{rid}#{k}", "source_id": rid, "segment": k, "text": text,
             **combine({name: ans[n] for name, ans in answers.items()})}
            for n, (rid, k, text) in enumerate(pieces)]


def pseudolabel(reports: Iterable[tuple[Any, Any]], teachers: Sequence[Any], writer: RecordWriter,
                chunk_size: int = CHUNK, sentences: bool = False,
                progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Label a stream of (id, report) pairs into `writer`, skipping ids it already holds (resume).
    With `sentences`, each report's sentences follow it as records of their own (`sentence_chunk`).
    `progress(n)` is told of every n reports done (an LLM teacher takes minutes)."""
    done = {str(r.get("id")) for r in writer.existing}
    stats = {"labelled": 0, "failed": 0, "resumed": len(done), "sentences": 0}
    it: Iterator[tuple[Any, Any]] = (pair for pair in reports if str(pair[0]) not in done)
    while chunk := list(itertools.islice(it, chunk_size)):
        recs = label_chunk(teachers, chunk)
        extra = sentence_chunk(teachers, recs) if sentences else []
        for rec in extra:
            if rec["id"] not in done:  # a resumed run may have written some of them already
                writer.write(rec)
                stats["sentences"] += 1
        for rec in recs:
            writer.write(rec)
            stats["failed" if rec.get("error") else "labelled"] += 1
        log.debug("%d labelled, %d failed", stats["labelled"], stats["failed"])
        if progress is not None:
            progress(len(chunk))
    return stats


def provenance(args: argparse.Namespace, teachers: Sequence[Any], argv: Sequence[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"input": str(args.input), "format": args.format}
    if args.input.is_file():
        data["sha256"] = sha256_file(args.input)
    return {
        "teachers": [t.provenance for t in teachers],
        "combine": {"llm_weight": LLM_WEIGHT, "disagree_confidence": DISAGREE_CONFIDENCE} if len(teachers) > 1
        else None,
        "text": "radedge.reports.sections.findings_text (what the student reads)",
        "data": data,
        "sentences": bool(args.sentences),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m export.reports.pseudolabel " + " ".join(argv),
    }


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    log.setLevel(logging.INFO)
    argv = list(sys.argv[1:] if argv is None else argv)
    p = command_parser("export.reports.pseudolabel", __doc__.split("\n\n")[0])
    p.add_argument("input", type=Path,
                   help="reports to label: CSV, JSONL, a .txt file or folder, Open-i XML (as radedge label-reports reads)")
    p.add_argument("-o", "--out", type=Path, required=True, help="corpus .jsonl")
    p.add_argument("--teacher", choices=("rules", "llm", "both"), default="rules",
                   help="who labels: the rule labeler, an LLM endpoint, or both")
    p.add_argument("--endpoint", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument("--llm-model", help="the model name the endpoint serves")
    p.add_argument("--cache", type=Path, help="LLM answer cache (.jsonl; default OUT.llm-cache.jsonl)")
    p.add_argument("--concurrency", type=int, default=4, help="LLM requests in flight at once")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per LLM request")
    p.add_argument("--attempts", type=int, default=4, help="tries per report before its LLM answer counts as failed")
    p.add_argument("--lexicons", help="rule lexicon folder (default: the packaged lexicons)")
    p.add_argument("--input-format", "--format", dest="format", choices=FORMATS, default="auto",
                   help="input format, as in radedge label-reports (auto: from the name)")
    p.add_argument("--text-column", help="older spelling of --text-field for CSV")
    p.add_argument("--id-column", help="older spelling of --id-field for CSV")
    p.add_argument("--text-field", help="CSV with a header or JSONL: the column / field holding the report text")
    p.add_argument("--id-field", help="CSV with a header or JSONL: the column / field holding the report id")
    p.add_argument("--sentences", action="store_true",
                   help="also label each sentence of each report as a record of its own (training augmentation)")
    p.add_argument("--overwrite", action="store_true", help="start the corpus afresh instead of resuming")
    args = p.parse_args(argv)
    reports = read_reports(args.input, args.format,
                           ReaderOptions(args.text_column, args.id_column, args.text_field, args.id_field))
    teachers = make_teachers(args.teacher, args)
    try:
        with RecordWriter(args.out, resume=not args.overwrite) as writer:
            prov = provenance(args, teachers, argv)
            Path(str(args.out) + ".provenance.json").write_text(json.dumps(prov, indent=2) + "\n", encoding="utf-8")
            with Progress(" reports", quiet=False, total=count_reports(args.input, args.format)) as bar:
                bar.update(0)
                stats = pseudolabel(reports, teachers, writer, sentences=args.sentences, progress=bar.update)
    finally:
        for t in teachers:
            t.close()
    print(f"pseudolabel: {stats['labelled']} labelled, {stats['failed']} failed, "
          f"{stats['resumed']} already in {args.out}" + (f", {stats['sentences']} sentence records" if args.sentences
                                                         else ""))
    return 0


if __name__ == "__main__":
    run_command(main, "export.reports.pseudolabel")

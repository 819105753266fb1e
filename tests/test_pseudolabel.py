"""Pseudo-labelling: teacher combination, corpus records with provenance, resume, and the LLM cache."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("httpx")

from export.reports import pseudolabel  # noqa: E402
from export.reports.teachers import TeacherLabel  # noqa: E402
from radedge.labels import BLANK, FINDINGS, NEGATIVE, POSITIVE, UNCERTAIN  # noqa: E402

EFF = FINDINGS.index("Pleural Effusion")
PTX = FINDINGS.index("Pneumothorax")


def _classes(**kw: int) -> np.ndarray:
    c = np.zeros(14, dtype=np.int8)
    for name, cls in kw.items():
        c[FINDINGS.index(name.replace("_", " "))] = cls
    return c


def test_agreement_is_confident_disagreement_is_soft():
    llm = TeacherLabel(_classes(Pleural_Effusion=POSITIVE, Pneumothorax=NEGATIVE))
    rules = TeacherLabel(_classes(Pleural_Effusion=UNCERTAIN, Pneumothorax=NEGATIVE))
    rec = pseudolabel.combine({"llm": llm, "rules": rules})
    assert rec["confidence"][PTX] == 1.0 and rec["confidence"][EFF] == pseudolabel.DISAGREE_CONFIDENCE
    np.testing.assert_allclose(rec["probs"][EFF], [0, 0.6, 0, 0.4], atol=1e-4)
    assert rec["classes"][EFF] == POSITIVE and rec["classes"][PTX] == NEGATIVE
    assert rec["classes"][0] == BLANK  # No Finding: blocked by the effusion
    assert rec["teachers"]["rules"][EFF] == UNCERTAIN


def test_one_teacher_failing_keeps_the_other_less_trusted():
    rec = pseudolabel.combine({"llm": TeacherLabel(None, error="timeout"),
                               "rules": TeacherLabel(_classes(Pneumothorax=POSITIVE))})
    assert rec["classes"][PTX] == POSITIVE and rec["confidence"][PTX] == pseudolabel.SINGLE_CONFIDENCE
    assert rec["teachers"]["llm"] == {"error": "timeout"} and "error" not in rec


def test_no_teacher_means_an_error_not_a_guess():
    rec = pseudolabel.combine({"llm": TeacherLabel(None, error="invalid answer: not JSON")})
    assert "classes" not in rec and "invalid answer" in rec["error"]


def _write_reports(path, n):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            text = "FINDINGS: Small left pleural effusion." if i % 2 else "FINDINGS: No pneumothorax."
            f.write(json.dumps({"id": f"R{i}", "text": f"INDICATION: pneumonia?\n\n{text} Case {i}."}) + "\n")
        f.write(json.dumps({"id": "EMPTY", "text": ""}) + "\n")


def test_rules_corpus_with_provenance(tmp_path):
    src, out = tmp_path / "reports.jsonl", tmp_path / "corpus.jsonl"
    _write_reports(src, 4)
    assert pseudolabel.main([str(src), "-o", str(out), "--teacher", "rules"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in recs] == ["R0", "R1", "R2", "R3", "EMPTY"]
    assert recs[1]["classes"][EFF] == POSITIVE and recs[0]["classes"][PTX] == NEGATIVE
    # The indication's "pneumonia?" is not read: teachers see the findings sections only.
    assert all(r["classes"][FINDINGS.index("Pneumonia")] == BLANK for r in recs)
    assert recs[-1]["classes"] == [0] * 14
    prov = json.loads((tmp_path / "corpus.jsonl.provenance.json").read_text())
    assert prov["teachers"][0]["teacher"] == "rules" and prov["data"]["sha256"]
    assert "--teacher rules" in prov["command"]


def test_both_teachers_and_a_stopped_run_resumes_from_the_cache(server, tmp_path):
    src, out = tmp_path / "reports.jsonl", tmp_path / "corpus.jsonl"
    _write_reports(src, 6)
    args = [str(src), "-o", str(out), "--teacher", "both", "--endpoint", server.url, "--llm-model", "m",
            "--timeout", "5"]
    assert pseudolabel.main(args) == 0
    asked = len(server.requests)
    assert asked == 6  # the empty report is not sent
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert recs[1]["teachers"]["llm"][EFF] == POSITIVE and recs[1]["teachers"]["rules"][EFF] == POSITIVE
    prov = json.loads((tmp_path / "corpus.jsonl.provenance.json").read_text())
    llm = [t for t in prov["teachers"] if t["teacher"] == "llm"][0]
    assert llm["model"] == "m" and llm["prompt_version"]

    # A run stopped part-way: the corpus lost its last records (one torn), the cache kept every answer.
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]) + lines[2][:10])
    assert pseudolabel.main(args) == 0
    assert len(server.requests) == asked  # nothing asked again
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in again] == [r["id"] for r in recs]
    assert again == recs

    # A new corpus file with the same cache: still nothing asked.
    out2 = tmp_path / "corpus2.jsonl"
    assert pseudolabel.main([*args[:1], "-o", str(out2), *args[3:], "--cache",
                             str(tmp_path / "corpus.jsonl.llm-cache.jsonl")]) == 0
    assert len(server.requests) == asked


def test_sentence_records_follow_their_report(tmp_path):
    src, out = tmp_path / "reports.jsonl", tmp_path / "corpus.jsonl"
    with open(src, "w", encoding="utf-8") as f:
        f.write(json.dumps({"id": "A", "text": "FINDINGS: Small left pleural effusion. No pneumothorax."}) + "\n")
        f.write(json.dumps({"id": "B", "text": "FINDINGS: Clear lungs."}) + "\n")
    assert pseudolabel.main([str(src), "-o", str(out), "--sentences"]) == 0
    recs = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(recs) == {"A", "A#0", "A#1", "B"}  # one-sentence reports add nothing
    assert recs["A#0"]["source_id"] == "A" and recs["A#0"]["text"] == "Small left pleural effusion."
    assert recs["A#0"]["classes"][EFF] == POSITIVE and recs["A#0"]["classes"][PTX] == BLANK
    assert recs["A#1"]["classes"][PTX] == NEGATIVE and recs["A#1"]["classes"][EFF] == BLANK
    # A rerun resumes: nothing is written twice.
    assert pseudolabel.main([str(src), "-o", str(out), "--sentences"]) == 0
    assert len(out.read_text().splitlines()) == 4


def test_distill_holds_out_sentences_with_their_report():
    pytest.importorskip("torch")
    from export.reports.distill import training_records
    from export.splits import is_holdout

    held = next(f"CXR{i}" for i in range(1, 200) if is_holdout(f"CXR{i}"))
    kept = next(f"CXR{i}" for i in range(1, 200) if not is_holdout(f"CXR{i}"))
    sentence_id = next(f"{held}#{k}" for k in range(200) if not is_holdout(f"{held}#{k}"))
    recs = [{"id": held, "text": "a. b."}, {"id": sentence_id, "source_id": held, "text": "a."},
            {"id": kept, "text": "c. d."}, {"id": f"{kept}#0", "source_id": kept, "text": "c."},
            {"id": "other", "text": "c."}]
    assert [r["id"] for r in training_records(recs)] == [kept, f"{kept}#0"]  # hold-out out, duplicate text out

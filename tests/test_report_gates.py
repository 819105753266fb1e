"""export.reports.onnx gates: a degenerate student (everything No Finding) and a student below its
teacher in cross-validation are refused and nothing is written; a sentence student's reading unit
reaches the manifest and the runtime. Marker `export` (needs torch + transformers)."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.export
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from export.reports import onnx as report_onnx  # noqa: E402
from export.reports.distill import train_tokenizer  # noqa: E402
from export.reports.student import ReportStudent, load_encoder, save_student  # noqa: E402
from radedge.labels import BLANK, NO_FINDING, POSITIVE  # noqa: E402
from radedge.manifest import Manifest  # noqa: E402
from radedge.reports.labeler import SENTENCE, ReportLabeler  # noqa: E402

TINY_BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 64, "max_position_embeddings": 64, "vocab_size": 200}
TEXTS = ["FINDINGS: Small left pleural effusion. No pneumothorax.", "FINDINGS: Heart size is normal.",
         "FINDINGS: Possible right lower lobe pneumonia.", "FINDINGS: Lungs are clear."]


def student_folder(tmp_path, bias: np.ndarray, reading=None):
    """A tiny BERT student whose logits are the given bias [14, 4] (heads' weights zeroed)."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps(TINY_BERT))
    tok = train_tokenizer([t for t in TEXTS] * 4, 200, tmp_path / "tokenizer.json")
    model = ReportStudent(load_encoder(config, random_init=True))
    with torch.no_grad():
        model.heads.weight.zero_()
        model.heads.bias.copy_(torch.from_numpy(bias))
    info = {"max_length": 32, "stride": 8, **({"reading": reading} if reading else {})}
    save_student(model.eval(), tmp_path / "student", info, tok)
    return tmp_path / "student"


def all_no_finding() -> np.ndarray:
    bias = np.zeros((14, 4), dtype=np.float32)
    bias[:, BLANK] = 5.0
    bias[NO_FINDING] = [0, 5, 0, 0]
    return bias


def test_degenerate_student_is_refused(tmp_path):
    student = student_folder(tmp_path, all_no_finding())
    out = tmp_path / "out"
    with pytest.raises(report_onnx.ExportError, match="degenerate"):
        report_onnx.export_student(student, out, TEXTS, gate=0.99)
    assert not out.exists() and not (tmp_path / "out.tmp").exists()


def test_degenerate_rule_on_labels():
    labels = np.zeros((10, 14), dtype=np.int8)
    labels[:, NO_FINDING] = POSITIVE
    assert "one label vector" in report_onnx.degenerate(labels)
    labels[:5, 10] = POSITIVE  # half effusion, half normal
    assert report_onnx.degenerate(labels) is None
    two = np.zeros((10, 14), dtype=np.int8)
    two[:5, NO_FINDING] = POSITIVE
    assert "no finding but No Finding" in report_onnx.degenerate(two)


CV = {"folds": 5, "table": {"rules": {"macro_f1": [0.77, 0.03], "six_mean": [0.87, 0.07]},
                            "good": {"macro_f1": [0.78, 0.03], "six_mean": [0.88, 0.05]},
                            "low-six": {"macro_f1": [0.80, 0.03], "six_mean": [0.86, 0.05]}}}


def test_quality_gate_compares_with_the_teacher():
    assert report_onnx.quality_gate(CV, "good")["teacher_cv"] == CV["table"]["rules"]
    with pytest.raises(report_onnx.ExportError, match="six_mean"):
        report_onnx.quality_gate(CV, "low-six")
    with pytest.raises(report_onnx.ExportError, match="no cross-validated"):
        report_onnx.quality_gate(CV, "missing")


def test_student_below_teacher_is_refused_before_anything_is_written(tmp_path):
    bias = np.zeros((14, 4), dtype=np.float32)
    student = student_folder(tmp_path, bias)
    out = tmp_path / "out"
    with pytest.raises(report_onnx.ExportError, match="below its teacher"):
        report_onnx.export_student(student, out, TEXTS, cv=CV, cv_name="low-six")
    assert not out.exists()


def test_sentence_reading_reaches_manifest_and_runtime(tmp_path):
    bias = np.zeros((14, 4), dtype=np.float32)
    bias[:, BLANK] = 5.0
    bias[NO_FINDING] = [0, 5, 0, 0]
    bias[10] = [0, 5, 0, 0]  # every sentence: effusion positive -> not degenerate in kind, still one vector
    student = student_folder(tmp_path, bias, {"unit": SENTENCE, "no_finding": "learned"})
    out = tmp_path / "out"
    with pytest.raises(report_onnx.ExportError, match="degenerate"):
        report_onnx.export_student(student, out, TEXTS)
    fp32 = tmp_path / "fp32"
    with pytest.raises(report_onnx.ExportError):
        report_onnx.export_student(student, out, TEXTS, keep_fp32=fp32)
    assert Manifest.read(fp32).extra["reading"]["unit"] == SENTENCE
    labeler = ReportLabeler.load(fp32)
    assert labeler.unit == SENTENCE
    text = "INDICATION: Dyspnée\r\n\r\nFINDINGS: No pneumothorax.\r\nHeart normal – stable."
    (r,) = labeler([text])
    assert r.classes[10] == POSITIVE and r.classes[NO_FINDING] == BLANK  # effusion rules No Finding out
    (start, end), = r.evidence["Pleural Effusion"]  # the deciding sentence, in report offsets
    assert text[start:end] in ("No pneumothorax.", "Heart normal – stable.")
    assert set(r.evidence) == {"Pleural Effusion"}


def test_rule_student_combination(tmp_path):
    """reading.rules_findings: the 13 findings are the rules' (class and evidence), No Finding the model's."""
    from radedge.labels import FINDINGS
    from radedge.reports.labeler import with_rule_classes

    bias = np.zeros((14, 4), dtype=np.float32)
    bias[:, BLANK] = 5.0
    bias[NO_FINDING] = [0, 5, 0, 0]  # the model finds every sentence normal
    bias[13] = [0, 5, 0, 0]  # and (wrongly) support devices everywhere: the rules overrule it
    reading = {"unit": SENTENCE, "no_finding": "learned", "rules_findings": list(FINDINGS[1:])}
    student = student_folder(tmp_path, bias, reading)
    out = tmp_path / "out"
    report_onnx.export_student(student, out, TEXTS)  # labels now vary with the text: not degenerate
    labeler = ReportLabeler.load(out)
    normal, effusion = labeler(["FINDINGS: No pneumothorax.\r\nHeart normal.", "FINDINGS: Small left effusion."])
    ptx = FINDINGS.index("Pneumothorax")
    assert normal.classes[13] == BLANK and normal.classes[ptx] == 2 and normal.classes[NO_FINDING] == POSITIVE
    text = "FINDINGS: No pneumothorax.\r\nHeart normal."
    assert any("pneumothorax" in text[s:e] for s, e in normal.evidence["Pneumothorax"])
    assert effusion.classes[10] == POSITIVE and effusion.classes[NO_FINDING] == BLANK  # rules' effusion blocks NF
    assert "No Finding" not in effusion.evidence
    model = np.zeros((2, 14), dtype=np.int8)
    model[:, NO_FINDING] = POSITIVE
    rules = np.zeros((2, 14), dtype=np.int8)
    rules[1, 10] = 3  # uncertain effusion
    both = with_rule_classes(model, rules, range(1, 14))
    assert both[0, NO_FINDING] == POSITIVE and both[1, NO_FINDING] == BLANK and both[1, 10] == 3


def test_model_uncertain_overrules_only_a_rules_positive(tmp_path):
    """reading.model_uncertain: where the rules read a positive and the model an uncertain, the cell is
    uncertain with the model's probabilities and evidence; the rules' negations stay negations."""
    from radedge.labels import FINDINGS, NEGATIVE, UNCERTAIN
    from radedge.reports.labeler import with_rule_classes

    pna = FINDINGS.index("Pneumonia")
    bias = np.zeros((14, 4), dtype=np.float32)
    bias[:, BLANK] = 5.0
    bias[NO_FINDING] = [0, 5, 0, 0]
    bias[pna] = [0, 0, 0, 5]  # the model reads every sentence as uncertain pneumonia
    reading = {"unit": SENTENCE, "no_finding": "learned", "rules_findings": list(FINDINGS[1:]),
               "model_uncertain": ["Pneumonia"]}
    report_onnx.export_student(student_folder(tmp_path, bias, reading), tmp_path / "out", TEXTS)
    labeler = ReportLabeler.load(tmp_path / "out")
    text = "FINDINGS: Right lower lobe pneumonia."
    positive, negated, silent = labeler([text, "FINDINGS: No pneumonia.", "FINDINGS: Heart normal."])
    assert positive.classes[pna] == UNCERTAIN and positive.probs[pna].argmax() == UNCERTAIN
    assert positive.probs[pna].max() < 1.0  # the model's probabilities, not the rules' one-hot
    (start, end), = positive.evidence["Pneumonia"]
    assert "pneumonia" in text[start:end]
    assert negated.classes[pna] == NEGATIVE and silent.classes[pna] == BLANK  # the rules' reading kept
    assert positive.classes[NO_FINDING] == BLANK
    seen: list[str] = []
    model_probs = labeler._model_probs
    labeler._model_probs = lambda sentences: seen.extend(sentences) or model_probs(sentences)
    effusion, = labeler(["FINDINGS: Small left effusion. Heart normal."])  # the rules' abnormal finding
    assert seen == []  # decides No Finding, and no model_uncertain finding is positive: no model call
    assert effusion.classes[10] == POSITIVE and effusion.classes[NO_FINDING] == BLANK
    assert effusion.probs[NO_FINDING].argmax() == BLANK and "No Finding" not in effusion.evidence
    labeler([text])
    assert seen  # a rules positive on a model_uncertain finding: the model reads the report
    model = np.full((3, 14), UNCERTAIN, dtype=np.int8)
    rules = np.array([[POSITIVE] * 14, [NEGATIVE] * 14, [BLANK] * 14], dtype=np.int8)
    both = with_rule_classes(model, rules, range(1, 14), [pna])
    assert both[:, pna].tolist() == [UNCERTAIN, NEGATIVE, BLANK]
    assert both[0, 1] == POSITIVE  # a finding not in model_uncertain keeps the rules' positive


def test_model_uncertain_must_be_rules_findings():
    from radedge.errors import ManifestError

    with pytest.raises(ManifestError, match="model_uncertain must be among rules_findings"):
        ReportLabeler(  # checked before the model is touched
            "x", None, windows=object(), backend=object(), rules_findings=["Edema"], model_uncertain=["Pneumonia"])

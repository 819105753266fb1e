"""End to end on a tiny random DebertaV2: pseudo-labels -> distil a few steps -> ONNX -> int8 -> gate ->
model folder -> ReportLabeler / label-reports. Marker `export` (needs torch + transformers)."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

pytestmark = pytest.mark.export
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from export.reports import distill, pseudolabel  # noqa: E402
from export.reports import onnx as report_onnx  # noqa: E402
from export.reports.student import load_student  # noqa: E402
from radedge.manifest import Manifest  # noqa: E402
from radedge.reports.labeler import ReportLabeler  # noqa: E402

TINY_DEBERTA = {
    "model_type": "deberta-v2", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 64, "max_position_embeddings": 128, "relative_attention": True,
    "position_buckets": 16, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
    "norm_rel_ebd": "layer_norm", "share_att_key": True, "type_vocab_size": 0, "vocab_size": 300,
}
PHRASES = ["Small left pleural effusion.", "No pneumothorax.", "Heart size is enlarged, cardiomegaly.",
           "Possible right lower lobe pneumonia.", "Lungs are clear. No acute disease.",
           "Mild pulmonary edema.", "Left basilar atelectasis.", "Sternotomy wires are present."]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    reports = tmp / "reports.jsonl"
    with open(reports, "w", encoding="utf-8") as f:
        for i in range(48):
            text = " ".join(PHRASES[(i + k) % len(PHRASES)] for k in range(1 + i % 3))
            f.write(json.dumps({"id": f"T{i}", "text": f"INDICATION: cough\n\nFINDINGS: {text}"}) + "\n")
    corpus = tmp / "corpus.jsonl"
    assert pseudolabel.main([str(reports), "-o", str(corpus), "--teacher", "rules"]) == 0
    config = tmp / "deberta"
    config.mkdir()
    (config / "config.json").write_text(json.dumps(TINY_DEBERTA))
    student = tmp / "student"
    assert distill.main([str(corpus), "-o", str(student), "--base", str(config), "--train-tokenizer", "300",
                         "--epochs", "2", "--batch-size", "8", "--lr", "1e-3", "--max-length", "24",
                         "--stride", "8", "--include-holdout"]) == 0
    texts = [json.loads(line)["text"] for line in reports.read_text().splitlines()]
    out = tmp / "report-tiny"
    measured = report_onnx.export_student(student, out, texts, gate=0.9, card="# tiny\n")
    return tmp, student, out, texts, measured


def test_student_is_a_deberta_v2(built):
    _, student, *_ = built
    model, info = load_student(student)
    assert model.encoder.config.model_type == "deberta-v2" and info["max_length"] == 24
    assert len(info["history"]["epoch_loss"]) == 2 and info["history"]["steps"] > 2


def test_export_parity_gate_and_manifest(built):
    _, _, out, _, measured = built
    assert measured["parity_max_abs_logit_diff"] <= 1e-3
    assert measured["int8_fp32_label_agreement"] >= 0.9
    manifest = Manifest.read(out)
    manifest.verify_files(out)
    assert manifest.precision == "int8" and manifest.max_length == 24 and manifest.stride == 8
    assert manifest.licence == "CC-BY-NC-ND-4.0"  # the writer states the training reports' terms
    assert set(manifest.files) == {"model.onnx", "tokenizer.json", "MODEL_CARD.md"}
    assert [t.name for t in manifest.inputs] == ["input_ids", "attention_mask"]
    assert manifest.provenance["student"]["model_type"] == "deberta-v2"
    assert "MatMulInteger" in (out / "model.onnx").read_bytes().decode("latin-1")  # really int8


def test_reportlabeler_labels_with_the_exported_model(built):
    _, _, out, texts, _ = built
    labeler = ReportLabeler.load(out)
    results = labeler(texts[:5] + ["", b"\xff\xfe bad bytes"])
    assert all(r.classes.shape == (14,) for r in results)
    assert np.allclose(results[0].probs.sum(-1), 1, atol=1e-4)
    assert results[5].classes.tolist() == [0] * 14 and results[6].error


def test_onnx_matches_pytorch_with_dynamic_batch_and_length(built):
    import onnxruntime as ort

    _, student, out, _, _ = built
    model, _ = load_student(student)
    fp32 = out.parent / "fp32.onnx"
    report_onnx.export_onnx(model, fp32)
    session = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    for batch, length in ((1, 5), (3, 24)):
        rng = np.random.default_rng(0)
        ids = rng.integers(5, model.encoder.config.vocab_size, size=(batch, length), dtype=np.int64)
        mask = np.ones_like(ids)
        mask[0, length // 2:] = 0
        ref = model(torch.from_numpy(ids), torch.from_numpy(mask)).detach().numpy()
        got = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})[0]
        assert got.shape == (batch, 14, 4) and np.abs(ref - got).max() < 1e-4


def test_failed_gate_writes_nothing(built, tmp_path):
    _, student, _, texts, _ = built
    out = tmp_path / "never"
    with pytest.raises(report_onnx.ExportError, match="gate"):
        report_onnx.export_student(student, out, texts[:8], gate=1.01)
    assert not out.exists()


def test_label_reports_cli_runs_the_exported_model(built, tmp_path):
    from click.testing import CliRunner

    from radedge.cli import main

    _, _, out, texts, _ = built
    src = tmp_path / "in.csv"
    src.write_text("\n".join('"' + t.replace('"', '""') + '"' for t in texts[:6]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["label-reports", str(src), "-o", str(tmp_path / "out.csv"),
                                       "--model", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and rows[0]["Reports"] == texts[0] and not any(r["Error"] for r in rows)

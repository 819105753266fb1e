"""A tiny end-to-end run of the image pipeline on generated images: train (GLS and BCE), export,
quantize, write the model folder, and score with ImageScorer (the runtime's API)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
cv2 = pytest.importorskip("cv2")

pytestmark = pytest.mark.export


def _make_table(folder: Path, n: int = 48) -> list[Path]:
    """Grey 'radiographs' where Pneumonia is a bright blob; the paired note hedges on half of them."""
    rng = np.random.default_rng(0)
    (folder / "img").mkdir(parents=True)
    rows, paths = [], []
    for i in range(n):
        sick = i % 2
        img = (rng.normal(0.4, 0.05, (80, 72)) * 255).clip(0, 255).astype(np.uint8)
        if sick:
            cv2.circle(img, (int(rng.integers(20, 52)), int(rng.integers(20, 60))), 12, 240, -1)
        path = folder / "img" / f"im{i:03d}.png"
        cv2.imwrite(str(path), img)
        paths.append(path)
        rows.append({"image": f"img/im{i:03d}.png", "patient_id": str(i // 2),
                     "Pneumonia": "1.0" if sick else "0.0", "No Finding": "0.0" if sick else "1.0",
                     "report": "Possible pneumonia." if i % 4 == 1 else ("Pneumonia." if sick else "Clear lungs.")})
    with open(folder / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return paths


def test_train_export_quantize_and_score(tmp_path: Path):
    from export.images.default import build
    from export.images.onnx import INT8_AUC_BOUND
    from export.images.model import ViTSpec
    from export.images.train import TrainConfig
    from radedge.images.scorer import ImageScorer
    from radedge.labels import FINDINGS
    from radedge.manifest import Manifest

    paths = _make_table(tmp_path / "data" / "table", n=120)
    cfg = TrainConfig(spec=ViTSpec(size=64, stem="effnet-lite0", dim=32, depth=1, heads=2), sources=("table",),
                      epochs=2, views=1, batch_size=8, max_minutes=1.0)
    out = tmp_path / "model"
    metrics = build(cfg, out, tmp_path / "runs", tmp_path / "data", name="tiny-vit", calib_images=8)

    assert (tmp_path / "runs" / "bce.onnx").is_file() and (tmp_path / "runs" / "model.fp32.onnx").is_file()
    assert not (out / "model.fp32.onnx").exists()  # the fp32 export is not shipped
    assert set(metrics["gls_vs_bce_pytorch"]) == {"gls", "bce"}
    manifest = Manifest.read(out)
    manifest.verify_files(out)
    assert manifest.licence == "CC-BY-NC-SA-4.0"  # the writer states the training images' terms
    assert set(manifest.files) == {"model.onnx", "ood.npz", "reliability.png", "MODEL_CARD.md"}
    # int8 ships only when a quantization mode passed its AUC gate; otherwise the fp32 graph does.
    chosen = metrics["quantization"]
    if chosen == "none":
        tried = metrics["quantization_tried_max_shift"].values()
        assert manifest.precision == "fp32" and all(v > INT8_AUC_BOUND for v in tried)
    else:
        assert manifest.precision == "int8" and metrics["quantization_tried_max_shift"][chosen] <= INT8_AUC_BOUND
    assert manifest.preprocess["size"] == 64 and set(manifest.thresholds) == set(FINDINGS)
    # Only Pneumonia and No Finding have labels in this table: nothing else may be reported.
    assert set(manifest.trained_findings) <= {"Pneumonia", "No Finding"} and "Pneumonia" in manifest.trained_findings
    assert set(manifest.calibration) == set(manifest.trained_findings)
    assert [o.name for o in manifest.outputs] == ["probs", "embedding"]
    assert manifest.ood["file"] == "ood.npz" and manifest.ood["thresholds"]["embedding"] > 0
    assert manifest.provenance["git_commit"] and manifest.provenance["command"]
    assert "NOT a medical device" in (out / "MODEL_CARD.md").read_text()
    json.dumps(manifest.to_dict())

    results = ImageScorer.load(out)(paths[:4])
    assert all(r.status in ("scored", "out-of-distribution") and r.ood_score is not None for r in results)
    scored = [r for r in results if r.status == "scored"]
    assert scored, "every training-like image was flagged out-of-distribution"
    for r in scored:
        trained = np.array([f in manifest.trained_findings for f in FINDINGS])
        assert np.all(np.isnan(r.probabilities[~trained])) and np.all(np.isnan(r.labels[~trained]))
        assert np.all((r.probabilities[trained] >= 0) & (r.probabilities[trained] <= 1))
        assert set(r.findings()) == set(manifest.trained_findings)
    noise = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    flagged = ImageScorer.load(out)(noise)  # one image, one result
    assert flagged.status == "out-of-distribution" and flagged.probabilities is None and flagged.ood_score > 1


def test_add_embedding_output_to_an_older_graph(tmp_path: Path):
    """A probs-only graph (as shipped before the embedding was an output) gains `embedding`: the
    input of the head, checked against the graph's own probs."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from export.images.onnx import add_embedding_output

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(14, 6)).astype(np.float32), "w")
    b = numpy_helper.from_array(np.zeros(14, np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Relu", ["pixels"], ["emb"]), helper.make_node("Gemm", ["emb", "w", "b"], ["logits"], transB=1),
         helper.make_node("Sigmoid", ["logits"], ["probs"])], "old",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 6])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 14])], initializer=[w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "old.onnx"))
    add_embedding_output(tmp_path / "old.onnx", tmp_path / "new.onnx")
    sess = ort.InferenceSession(str(tmp_path / "new.onnx"), providers=["CPUExecutionProvider"])
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [("probs", ["batch", 14]), ("embedding", ["batch", 6])]
    x = rng.normal(size=(3, 6)).astype(np.float32)
    probs, emb = sess.run(None, {"pixels": x})
    np.testing.assert_allclose(emb, np.maximum(x, 0), rtol=1e-6)
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-emb @ numpy_helper.to_array(w).T)), rtol=1e-5)

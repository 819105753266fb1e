"""Tiny ONNX models with manifests, generated in the tests (onnx.helper): no weights to download."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from radedge.labels import CLASSES, FINDINGS
from radedge.manifest import Manifest, TensorSpec, file_hashes

VOCAB_TEXTS = [
    "no acute cardiopulmonary abnormality",
    "there is a small left pleural effusion",
    "possible right lower lobe pneumonia",
    "heart size is normal no pneumothorax",
    "findings impression cardiomegaly edema atelectasis consolidation",
]


def rewrite_manifest(folder: Path, data: dict) -> None:
    """Replace a model's manifest.json as an export would (manifest.sha256 kept in step), so a test
    can change what the manifest says without tripping the tamper check."""
    import hashlib
    import json

    raw = json.dumps(data).encode("utf-8")
    (folder / "manifest.json").write_bytes(raw)
    (folder / "manifest.sha256").write_text(f"{hashlib.sha256(raw).hexdigest()}  manifest.json\n")


def _save(model: onnx.ModelProto, folder: Path) -> None:
    model.opset_import[0].version = 18
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))


def write_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"],
                                        show_progress=False)
    tok.train_from_iterator(VOCAB_TEXTS, trainer)
    tok.save(str(folder / "tokenizer.json"))


def write_report_model(folder: Path, max_length: int = 32, stride: int = 8, seed: int = 0,
                       masked_mean: bool = False) -> Path:
    """Mean of token ids -> linear -> [batch, 14, 4] logits: deterministic, depends on the text.

    masked_mean=True averages over real tokens only (sum(ids * mask) / sum(mask)), so, like a real
    encoder with an attention mask, a window's logits do not depend on the padding of its batch."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(1, 56)).astype(np.float32) / 50, "w")
    b = numpy_helper.from_array(rng.normal(size=(56,)).astype(np.float32), "b")
    shape = numpy_helper.from_array(np.array([-1, 14, 4], dtype=np.int64), "shape")
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids_f", "mask_f"], ["masked"]),
        *([helper.make_node("ReduceSum", ["masked", "axes"], ["total"], keepdims=1),
           helper.make_node("ReduceSum", ["mask_f", "axes"], ["count"], keepdims=1),
           helper.make_node("Div", ["total", "count"], ["pooled"])] if masked_mean else
          [helper.make_node("ReduceMean", ["masked", "axes"], ["pooled"], keepdims=1)]),
        helper.make_node("MatMul", ["pooled", "w"], ["lin"]),
        helper.make_node("Add", ["lin", "b"], ["flat"]),
        helper.make_node("Reshape", ["flat", "shape"], ["logits"]),
    ]
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    graph = helper.make_graph(
        nodes, "tiny-report",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 14, 4])],
        initializer=[w, b, shape, axes],
    )
    _save(helper.make_model(graph), folder)
    write_tokenizer(folder)
    Manifest(
        name=folder.name, task="report-labels", files=file_hashes(folder, ["model.onnx", "tokenizer.json"]),
        inputs=[TensorSpec("input_ids", "int64", ("batch", "sequence")),
                TensorSpec("attention_mask", "int64", ("batch", "sequence"))],
        outputs=[TensorSpec("logits", "float32", ("batch", 14, 4))],
        classes=list(CLASSES), tokenizer="tokenizer.json", max_length=max_length, stride=stride,
        provenance={"made_by": "tests/tiny_models.py"},
    ).write(folder)
    return folder


def write_image_model(folder: Path, size: int = 32, seed: int = 0) -> Path:
    """Global average pool -> linear -> sigmoid: [batch, 3, size, size] -> [batch, 14] probabilities."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = numpy_helper.from_array(rng.normal(size=(3, 14)).astype(np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixels"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["lin"]),
        helper.make_node("Sigmoid", ["lin"], ["probs"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny-image",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 14])],
        initializer=[w],
    )
    _save(helper.make_model(graph), folder)
    Manifest(
        name=folder.name, task="image-findings", files=file_hashes(folder, ["model.onnx"]),
        inputs=[TensorSpec("pixels", "float32", ("batch", 3, size, size))],
        outputs=[TensorSpec("probs", "float32", ("batch", 14))],
        preprocess={"size": size, "resize": "letterbox", "channels": 3, "mean": [0.5] * 3, "std": [0.25] * 3,
                    "voi": True},
        thresholds={name: 0.5 for name in FINDINGS},
        provenance={"made_by": "tests/tiny_models.py"},
    ).write(folder)
    return folder


def write_calibration_reports(tmp_path: Path) -> Path:
    """A folder of .txt reports in the tiny tokenizer's vocabulary, for int8 calibration."""
    folder = tmp_path / "calib-reports"
    folder.mkdir()
    for i, text in enumerate(VOCAB_TEXTS * 4):
        (folder / f"{i}.txt").write_text(f"FINDINGS: {text}.\nIMPRESSION: {text}.")
    return folder

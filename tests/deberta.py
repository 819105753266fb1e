"""A tiny DeBERTa-v2 (random weights, no download) exported to ONNX, for the TensorRT graph tests (export extra)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def export_tiny_deberta(path: Path, vocab_size: int = 100, report_head: bool = False) -> None:
    """A 2-layer, 32-wide DebertaV2 with relative attention (random weights; no download), exported by
    torch's TorchScript exporter with dynamic batch and sequence axes; `report_head` adds a linear
    head to [batch, 14, 4] logits, the report-model contract."""
    torch = pytest.importorskip("torch", reason="needs the export extra (torch)")
    transformers = pytest.importorskip("transformers", reason="needs the export extra (transformers)")
    import warnings

    cfg = transformers.DebertaV2Config(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                                       relative_attention=True, position_buckets=16, max_relative_positions=64,
                                       pos_att_type=["p2c", "c2p"], position_biased_input=False)
    torch.manual_seed(0)

    class Student(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = transformers.DebertaV2Model(cfg)
            self.head = torch.nn.Linear(32, 56)

        def forward(self, input_ids, attention_mask):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.head(hidden[:, 0]).reshape(-1, 14, 4) if report_head else hidden

    output = "logits" if report_head else "last_hidden_state"
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            output: {0: "batch"} if report_head else {0: "batch", 1: "sequence"}}
    ids = torch.randint(0, vocab_size, (2, 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings on branches self-attention never takes
        torch.onnx.export(Student().eval(), (ids, torch.ones_like(ids)), str(path),
                          input_names=["input_ids", "attention_mask"], output_names=[output], dynamic_axes=axes,
                          opset_version=17, dynamo=False)


def deberta_feeds() -> dict:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 100, size=(3, 20)).astype(np.int64)
    mask = np.ones_like(ids)
    mask[1, 11:] = 0
    return {"input_ids": ids, "attention_mask": mask}

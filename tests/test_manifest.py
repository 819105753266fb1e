"""radedge.manifest: round trip, file hashes, graph check, malformed manifests."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radedge import registry
from radedge.backends import open_backend
from radedge.errors import ManifestError
from radedge.manifest import Manifest


def test_manifest_roundtrip_and_graph_check(tiny_report_model: Path):
    m = Manifest.read(tiny_report_model)
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    m.verify_files(tiny_report_model)
    backend = open_backend(tiny_report_model, m)
    out = backend.run({"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.ones((2, 5), np.int64)})
    assert out["logits"].shape == (2, 14, 4)


def test_manifest_that_disagrees_with_graph_is_refused(tiny_image_model: Path):
    data = json.loads((tiny_image_model / "manifest.json").read_text())
    data["outputs"][0]["shape"] = ["batch", 13]
    (tiny_image_model / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="shape"):
        registry.open_model(tiny_image_model, "image-findings")


@pytest.mark.parametrize("broken", ["{", "[]", '{"name": "x"}'])
def test_malformed_manifest(tmp_path: Path, broken: str):
    (tmp_path / "manifest.json").write_text(broken)
    with pytest.raises(ManifestError):
        Manifest.read(tmp_path)

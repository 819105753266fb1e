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
from tests.tiny_models import rewrite_manifest


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
    rewrite_manifest(tiny_image_model, data)  # written consistently (manifest.sha256 matches), yet it lies
    with pytest.raises(ManifestError, match="shape"):
        registry.open_model(tiny_image_model, "image-findings")


@pytest.mark.parametrize("broken", ["{", "[]", '{"name": "x"}'])
def test_malformed_manifest(tmp_path: Path, broken: str):
    import hashlib

    (tmp_path / "manifest.json").write_text(broken)
    (tmp_path / "manifest.sha256").write_text(hashlib.sha256(broken.encode()).hexdigest() + "  manifest.json\n")
    with pytest.raises(ManifestError):  # protected, yet not a manifest
        Manifest.read(tmp_path)

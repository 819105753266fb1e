"""radedge.registry: finding models by name and path, refusing tampered ones."""
from __future__ import annotations

from pathlib import Path

import pytest

from radedge import registry
from radedge.errors import ChecksumError, ManifestError, ModelNotFoundError


def test_tampered_model_does_not_load(tiny_report_model: Path):
    with open(tiny_report_model / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ChecksumError):
        registry.open_model(tiny_report_model, "report-labels")


def test_registry_env_var_and_missing(tiny_image_model: Path, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_image_model.parent))
    assert registry.resolve("tiny-image", "image-findings") == tiny_image_model
    assert "tiny-image" in [e.name for e in registry.list_models()]
    with pytest.raises(ModelNotFoundError):
        registry.resolve("no-such-model", "image-findings")
    with pytest.raises(ManifestError, match="model, not"):
        registry.open_model("tiny-image", "report-labels")

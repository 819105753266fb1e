"""Labels, manifest, registry, backend and record writer: the runtime core."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radedge import eval as rad_eval
from radedge import labels, registry
from radedge.backends import open_backend
from radedge.errors import ChecksumError, DeviceUnavailableError, ManifestError, ModelNotFoundError
from radedge.io.records import RecordWriter
from radedge.manifest import Manifest


# ---- labels ------------------------------------------------------------------------------------
def test_schema_order_and_csv_values():
    assert labels.FINDINGS[0] == "No Finding" and labels.FINDINGS[-1] == "Support Devices"
    assert len(labels.FINDINGS) == 14
    assert [labels.class_to_csv(c) for c in range(4)] == ["", "1.0", "0.0", "-1.0"]
    assert [labels.csv_to_class(v) for v in ["", "1.0", "0", "-1.0", None]] == [0, 1, 2, 3, 0]
    with pytest.raises(ValueError):
        labels.csv_to_class("2.0")


def test_no_finding_rule_ignores_support_devices_and_negatives():
    c = np.zeros((3, 14), dtype=np.int64)
    c[0, labels.SUPPORT_DEVICES] = labels.POSITIVE
    c[1, labels.FINDING_INDEX["Edema"]] = labels.UNCERTAIN
    c[2, labels.FINDING_INDEX["Edema"]] = labels.NEGATIVE
    labels.apply_no_finding(c)
    assert list(c[:, labels.NO_FINDING]) == [labels.POSITIVE, labels.BLANK, labels.POSITIVE]


def test_gls_rates_sign_follows_hedging():
    p = np.zeros((4, 4), dtype=np.float32)
    p[0, labels.BLANK] = 1
    p[1, labels.UNCERTAIN] = 1
    p[2, labels.POSITIVE] = 1
    p[3, labels.NEGATIVE] = 1
    r = labels.gls_rates(p)
    assert r[0] == 0 and r[1] > 0 and r[2] < 0 and r[3] < 0
    assert np.all(np.abs(r) < 1)
    with pytest.raises(ValueError):
        labels.gls_rates(np.zeros((14, 3)))


def test_chestxray14_mapping_merges_mass_and_nodule():
    out = rad_eval.map_chestxray14({"Mass": 0, "Nodule": 1, "Effusion": 1, "Emphysema": 1})
    assert out["Lung Lesion"] == 1 and out["Pleural Effusion"] == 1 and "Emphysema" not in out


# ---- manifest and registry -------------------------------------------------------------------
def test_manifest_roundtrip_and_graph_check(tiny_report_model: Path):
    m = Manifest.read(tiny_report_model)
    assert Manifest.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    m.verify_files(tiny_report_model)
    backend = open_backend(tiny_report_model, m)
    out = backend.run({"input_ids": np.ones((2, 5), np.int64), "attention_mask": np.ones((2, 5), np.int64)})
    assert out["logits"].shape == (2, 14, 4)


def test_tampered_model_does_not_load(tiny_report_model: Path):
    with open(tiny_report_model / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ChecksumError):
        registry.open_model(tiny_report_model, "report-labels")


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


def test_registry_env_var_and_missing(tiny_image_model: Path, monkeypatch):
    monkeypatch.setenv(registry.ENV_VAR, str(tiny_image_model.parent))
    assert registry.resolve("tiny-image", "image-findings") == tiny_image_model
    assert "tiny-image" in [e.name for e in registry.list_models()]
    with pytest.raises(ModelNotFoundError):
        registry.resolve("no-such-model", "image-findings")
    with pytest.raises(ManifestError, match="model, not"):
        registry.open_model("tiny-image", "report-labels")


def test_missing_device_is_an_error_not_a_fallback(tiny_image_model: Path):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    m = Manifest.read(tiny_image_model)
    with pytest.raises(DeviceUnavailableError):
        open_backend(tiny_image_model, m, device="cuda")
    with pytest.warns(UserWarning):
        assert open_backend(tiny_image_model, m, device="auto").device == "cpu"


# ---- record writer ---------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_record_writer_resumes_after_torn_write(tmp_path: Path, suffix: str):
    out = tmp_path / f"out{suffix}"
    cols = ["id", "text"]
    with RecordWriter(out, cols, resume=False) as w:
        w.write({"id": "1", "text": "line one\nwith a newline, and comma"})
        w.write({"id": "2", "text": "two"})
    with open(out, "a", encoding="utf-8") as f:  # a kill in the middle of record 3
        f.write('3,"half a rec' if suffix == ".csv" else '{"id": "3", "te')
    with RecordWriter(out, cols, resume=True) as w:
        assert [r["id"] for r in w.existing] == ["1", "2"]
        assert w.existing[0]["text"] == "line one\nwith a newline, and comma"
        w.write({"id": "3", "text": "three"})
    with RecordWriter(out, cols, resume=True) as w:
        assert [str(r["id"]) for r in w.existing] == ["1", "2", "3"]


def test_record_writer_rejects_unknown_format(tmp_path: Path):
    with pytest.raises(ValueError):
        RecordWriter(tmp_path / "out.txt", ["a"])


# ---- conventions -----------------------------------------------------------------------------
def test_runtime_never_imports_torch_or_transformers():
    code = (
        "import sys, radedge, radedge.cli, radedge.registry, radedge.backends.onnxruntime, radedge.io.records\n"
        "import importlib\n"
        "for m in ['radedge.reports', 'radedge.images', 'radedge.eval']:\n"
        "    try: importlib.import_module(m)\n"
        "    except ModuleNotFoundError: pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_models_list_and_verify(tiny_report_model: Path, monkeypatch):
    from click.testing import CliRunner

    from radedge.cli import main

    monkeypatch.setenv(registry.ENV_VAR, str(tiny_report_model.parent))
    r = CliRunner().invoke(main, ["models", "list"])
    assert r.exit_code == 0 and "tiny-report" in r.output
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_report_model)])
    assert r.exit_code == 0, r.output
    (tiny_report_model / "tokenizer.json").write_text("{}")
    r = CliRunner().invoke(main, ["models", "verify", str(tiny_report_model)])
    assert r.exit_code == 2 and "sha256" in r.output

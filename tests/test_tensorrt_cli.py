"""`radedge build-engine` and `python -m runtimes.tensorrt`: options, error paths without a GPU, the
CPU-only prepare command."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from radedge.backends import tensorrt as trtb
from radedge.errors import BackendError
from tests.onnx_graphs import run_cpu
from tests.paths import ROOT


def _no_accelerator() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return True
    return trtb.cuda_device_count() == 0


@pytest.mark.skipif(not _no_accelerator(), reason="TensorRT and a GPU are present: the error path cannot happen")
def test_build_engine_without_gpu_or_tensorrt_exits_2_with_one_line(tiny_report_model):
    from radedge.cli import main

    result = CliRunner().invoke(main, ["build-engine", str(tiny_report_model)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1 and ("TensorRT" in lines[0] or "GPU" in lines[0])


def test_build_engine_passes_its_options_to_the_builder(tiny_report_model, tmp_path, monkeypatch):
    import json

    from radedge.cli import main

    calls = []

    def build_plan(model_dir, **kwargs):
        calls.append((model_dir, kwargs))
        return SimpleNamespace(plan=tmp_path / "x.plan", meta={"precision": kwargs["precision"]}, cached=False)

    builder = SimpleNamespace(build_plan=build_plan, resolve_model=lambda name: Path(name),
                              summary=lambda result: f"built {result.meta['precision']}")
    monkeypatch.setattr(trtb, "import_tensorrt", lambda: object())
    monkeypatch.setattr(trtb, "require_gpu", lambda device: None)
    monkeypatch.setattr(trtb, "import_builder", lambda model_dir=None: builder)
    runner = CliRunner()
    result = runner.invoke(main, ["build-engine", str(tiny_report_model), "--precision", "int8", "--calib",
                                  str(tmp_path), "--max-batch", "8", "--max-length", "16", "--cache-dir",
                                  str(tmp_path / "c"), "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"plan": str(tmp_path / "x.plan"), "precision": "int8"}
    assert calls == [(tiny_report_model, {"precision": "int8", "calib": str(tmp_path), "max_batch": 8,
                                          "max_length": 16, "cache_dir": str(tmp_path / "c"), "force": True})]
    assert runner.invoke(main, ["build-engine", str(tiny_report_model)]).output.strip() == "built fp16"
    assert runner.invoke(main, ["build-engine", str(tiny_report_model), "--precision", "fp32"]).exit_code == 2
    assert runner.invoke(main, ["build-engine", str(tiny_report_model), "--max-batch", "0"]).exit_code == 2


@pytest.mark.skipif(not _no_accelerator(), reason="TensorRT and a GPU are present: the error path cannot happen")
def test_runtimes_command_without_gpu_exits_2(tiny_report_model, capsys):
    from runtimes.tensorrt.__main__ import main

    assert main(["build", str(tiny_report_model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("runtimes.tensorrt: error:")


def test_runtimes_prepare_command_writes_a_graph_onnxruntime_runs(tiny_report_model, tmp_path, capsys):
    from runtimes.tensorrt.__main__ import main

    out = tmp_path / "prepared.onnx"
    assert main(["prepare", str(tiny_report_model), str(out)]) == 0
    ids = np.array([[2, 5, 9, 3]], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    np.testing.assert_allclose(run_cpu(onnx.load(str(out)), feeds)[0],
                               run_cpu(onnx.load(str(tiny_report_model / "model.onnx")), feeds)[0], rtol=1e-6)
    assert main(["prepare", str(tmp_path / "nowhere"), str(out)]) == 2


def test_builder_is_importable_from_the_checkout_and_missing_builder_is_explained(monkeypatch):
    assert hasattr(trtb.import_builder(), "build_plan")
    import importlib

    real = importlib.import_module

    def fail(name, *args):
        if name == "runtimes.tensorrt":
            raise ImportError("No module named 'runtimes'")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fail)
    with pytest.raises(BackendError, match="source checkout"):
        trtb.import_builder("models/report-student")



def test_module_help_runs():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "runtimes.tensorrt", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert "build" in out.stdout and "prepare" in out.stdout

"""`radedge build-engine` (runtimes.tensorrt.cli, a radedge plugin command) and `python -m runtimes.tensorrt`:
plugin discovery, options, error paths without a GPU, the CPU-only prepare command."""
from __future__ import annotations

import json
import sys
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from radedge import cli
from radedge.backends import cuda
from radedge.cli import PLUGIN_GROUP
from runtimes.tensorrt.cli import build_engine
from tests.onnx_graphs import run_cpu
from tests.paths import ROOT


def _no_accelerator() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return True
    return cuda.cuda_device_count() == 0


@pytest.fixture
def radedge_cli(monkeypatch):
    """The radedge group with the plugin commands pyproject.toml declares, as `pip install` registers
    them (the shared development install may predate the declaration)."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][PLUGIN_GROUP]
    points = {name: EntryPoint(name, value, PLUGIN_GROUP) for name, value in declared.items()}
    monkeypatch.setattr(cli, "plugin_commands", lambda: points)
    return cli.main


def test_build_engine_is_a_radedge_command_that_runtimes_provides(radedge_cli):
    assert "build-engine" in radedge_cli.list_commands(None)
    command = radedge_cli.get_command(None, "build-engine")
    assert command is build_engine and command.callback.__module__ == "runtimes.tensorrt.cli"
    result = CliRunner().invoke(radedge_cli, ["build-engine", "--help"])
    assert result.exit_code == 0 and "Build (or reuse) a TensorRT plan for MODEL" in result.output


def test_a_plugin_command_that_cannot_import_is_explained(monkeypatch):
    broken = EntryPoint("broken", "no_such_package.cli:command", PLUGIN_GROUP)
    monkeypatch.setattr(cli, "plugin_commands", lambda: {"broken": broken})
    result = CliRunner().invoke(cli.main, ["broken"])
    assert result.exit_code == 1 and "'broken' is not available: No module named 'no_such_package'" in result.output


@pytest.mark.skipif(not _no_accelerator(), reason="TensorRT and a GPU are present: the error path cannot happen")
def test_build_engine_without_gpu_or_tensorrt_exits_2_with_one_line(tiny_report_model, radedge_cli):
    result = CliRunner().invoke(radedge_cli, ["build-engine", str(tiny_report_model)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines() if hasattr(result, "stderr") else result.output.strip().splitlines()
    assert len(lines) == 1 and ("TensorRT" in lines[0] or "GPU" in lines[0])


def test_build_engine_without_the_builder_dependencies_exits_2_with_one_line(tiny_report_model, monkeypatch,
                                                                           radedge_cli):
    monkeypatch.setattr(cuda, "import_tensorrt", lambda: object())
    monkeypatch.setattr(cuda, "require_gpu", lambda device: None)
    monkeypatch.setitem(sys.modules, "runtimes.tensorrt.build", None)  # as when onnx is not installed
    result = CliRunner().invoke(radedge_cli, ["build-engine", str(tiny_report_model)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("radedge: error: the engine builder cannot load") \
        and "radedge[gpu]" in lines[0]


def test_build_engine_passes_its_options_to_the_builder(tiny_report_model, tmp_path, monkeypatch, radedge_cli):
    from runtimes.tensorrt import build

    calls = []

    def build_plan(model_dir, **kwargs):
        calls.append((model_dir, kwargs))
        return SimpleNamespace(plan=tmp_path / "x.plan", meta={"precision": kwargs["precision"]}, cached=False)

    monkeypatch.setattr(cuda, "import_tensorrt", lambda: object())
    monkeypatch.setattr(cuda, "require_gpu", lambda device: None)
    monkeypatch.setattr(build, "build_plan", build_plan)
    monkeypatch.setattr(build, "resolve_model", lambda name: Path(name))
    monkeypatch.setattr(build, "summary", lambda result: f"built {result.meta['precision']}")
    runner = CliRunner()
    result = runner.invoke(radedge_cli, ["build-engine", str(tiny_report_model), "--precision", "int8", "--calib",
                                         str(tmp_path), "--max-batch", "8", "--max-length", "16", "--cache-dir",
                                         str(tmp_path / "c"), "--force", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"plan": str(tmp_path / "x.plan"), "precision": "int8"}
    assert calls == [(tiny_report_model, {"precision": "int8", "calib": str(tmp_path), "max_batch": 8,
                                          "max_length": 16, "cache_dir": str(tmp_path / "c"), "force": True})]
    assert runner.invoke(radedge_cli, ["build-engine", str(tiny_report_model)]).output.strip() == "built fp16"
    assert runner.invoke(radedge_cli, ["build-engine", str(tiny_report_model), "--precision", "fp32"]).exit_code == 2
    assert runner.invoke(radedge_cli, ["build-engine", str(tiny_report_model), "--max-batch", "0"]).exit_code == 2


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


def test_module_help_runs():
    import subprocess

    out = subprocess.run([sys.executable, "-m", "runtimes.tensorrt", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert "build" in out.stdout and "prepare" in out.stdout

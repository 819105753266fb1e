"""The project's layering rules (DESIGN.md), checked on the source: benchmarks -> export -> radedge <- runtimes;
radedge never imports runtimes, export or benchmarks, the runtime never imports torch, nothing edits
sys.path, and commands stay thin (the pipelines are library functions)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

PACKAGES = ("radedge", "runtimes", "export", "benchmarks", "tests")


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    """Top-level names a module imports (absolute imports; relative ones stay inside its package)."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            roots.add(node.args[0].value.split(".")[0])
    return roots


@pytest.mark.parametrize("package, forbidden", [
    ("radedge", {"runtimes", "export", "benchmarks", "tests", "torch", "transformers", "optimum", "onnx"}),
    ("runtimes", {"export", "benchmarks", "tests", "torch"}),
    ("export", {"benchmarks", "tests"}),
])
def test_layers_import_one_way(package: str, forbidden: set[str]):
    bad = {str(p.relative_to(ROOT)): sorted(_imported_roots(p) & forbidden) for p in _sources(package)}
    assert {k: v for k, v in bad.items() if v} == {}


def test_nothing_edits_sys_path():
    edits = []
    for path in _sources(*PACKAGES):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            target = node.func.value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) else None
            if isinstance(node, (ast.Assign, ast.AugAssign)):
                target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Subscript):
                target = target.value
            if isinstance(target, ast.Attribute) and target.attr == "path" and getattr(target.value, "id", "") == "sys":
                edits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert edits == []


def test_commands_are_thin():
    """Commands parse options, call a pipeline and print: no worker pools, none over 150 lines."""
    for path in _sources("radedge/commands"):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= 150, path.name
        assert not {"concurrent", "multiprocessing", "threading"} & _imported_roots(path), path.name


def test_the_cpu_backend_does_not_load_the_tensorrt_backend():
    code = ("import sys, radedge.backends.onnxruntime as o\n"
            "o.providers_for('cpu'); o.provider_options(['CPUExecutionProvider'])\n"
            "assert 'radedge.backends.tensorrt' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


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

"""The benchmark harness (benchmarks/): the FLOP counter, `python -m benchmarks --quick`, the README block.

No timing is asserted anywhere (speed claims come from the benchmark command, not from tests): these
tests check that the harness measures, records and reports what it says it does.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


# ---- FLOP counter -----------------------------------------------------------------------------
def _flop_graph(path: Path) -> Path:
    """x [batch, 4, 16] -MatMul w1 [16, 32]-> [batch, 4, 32] -> reshape [batch*4, 32] -Gemm(w2 [8, 32], transB)->
    and a separate Conv path: img [batch, 3, 8, 8] * k [4, 3, 3, 3], pads 1 -> [batch, 4, 8, 8]."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("w1", (16, 32)), ("w2", (8, 32)), ("k", (4, 3, 3, 3)))]
    inits.append(numpy_helper.from_array(np.array([-1, 32], dtype=np.int64), "flat"))
    inits.append(numpy_helper.from_array(rng.standard_normal((5, 16)).astype(np.float32), "table"))
    nodes = [
        # weights x weights (like DeBERTa's relative-position projections): folded at load, not counted
        helper.make_node("Transpose", ["table"], ["table_t"]),
        helper.make_node("Transpose", ["w1"], ["w1_t"]),
        helper.make_node("MatMul", ["w1_t", "table_t"], ["folded"], name="folded_matmul"),
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Reshape", ["h", "flat"], ["h2"]),
        helper.make_node("Gemm", ["h2", "w2"], ["y"], transB=1),
        helper.make_node("Conv", ["img", "k"], ["z"], pads=[1, 1, 1, 1]),
    ]
    graph = helper.make_graph(
        nodes, "flops",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 16]),
         helper.make_tensor_value_info("img", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("folded", TensorProto.FLOAT, None)],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_flop_counter_known_answer(tmp_path: Path):
    from benchmarks.roofline import count_flops

    path = _flop_graph(tmp_path / "flops.onnx")
    per_batch = {"MatMul": 2 * 4 * 16 * 32, "Gemm": 2 * 4 * 32 * 8, "Conv": 2 * (4 * 8 * 8) * (3 * 3 * 3)}
    for batch in (1, 3):
        result = count_flops(path, {"batch": batch})
        assert result["unresolved"] == [] and result["nodes"] == 3
        assert result["by_op"] == {k: v * batch for k, v in per_batch.items()}
        assert result["total"] == batch * sum(per_batch.values())
        assert result["folded"] == 2 * 32 * 16 * 5  # [32, 16] x [16, 5], independent of the batch
    with pytest.raises(ValueError):
        count_flops(path, {})


def test_flop_counter_on_tiny_report_model(tiny_report_model: Path):
    from benchmarks.roofline import count_flops

    # mean over the sequence, then [batch, 1] x [1, 56]: independent of the sequence length.
    assert count_flops(tiny_report_model / "model.onnx", {"batch": 2, "sequence": 9})["total"] == 2 * 2 * 1 * 56


# ---- python -m benchmarks -----------------------------------------------------------------------
@pytest.fixture
def tiny_models_dir(tmp_path: Path) -> Path:
    from tests.tiny_models import write_image_model, write_report_model

    root = tmp_path / "models"
    write_report_model(root / "report-student", max_length=64)  # named as the shipped defaults
    write_image_model(root / "image-vit", size=32)
    return root


def test_benchmarks_quick_smoke(tiny_models_dir: Path, tmp_path: Path):
    from benchmarks.report import schema
    from benchmarks.report.readme import main as readme_main
    from benchmarks.run import main

    out = tmp_path / "results"
    sections = "peaks,latency-reports,latency-images,end-to-end-reports,end-to-end-images,ratios,roofline"
    code = main(["--quick", "--no-gpu", "--models", str(tiny_models_dir), "--out", str(out), "--only", sections])
    results = json.loads((out / "results.json").read_text())
    assert schema.validate(results) == [] and code == 0, results["errors"]
    assert results["format"] == schema.FORMAT and results["version"] == schema.VERSION
    assert results["errors"] == []
    assert {r["model"] for r in results["latency"]} == {"report-student", "image-vit"}
    assert all(r["fraction_of_peak"] is not None for r in results["latency"])
    assert {m["model"] for m in results["models"]} == {"report-student", "image-vit"}
    pngs = ["throughput_reports.png", "throughput_images.png", "latency_batch1.png", "end_to_end_reports_1.png"]
    for png in pngs:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert set(pngs) <= set(results["plots"])
    e2e = {r["name"]: r for r in results["end_to_end"]}
    assert e2e["report-student"]["ratio_vs_default"] == 1.0
    if "rules" in e2e:  # needs the Open-i reports beside the checkout
        assert e2e["rules"]["role"] == "peer" and e2e["rules"]["ratio_vs_default"] > 0

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- SECTION:performance -->\nSTALE-BLOCK\n<!-- /SECTION:performance -->\nend\n")
    assert readme_main([str(out / "results.json"), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("end\n") and "STALE-BLOCK" not in text
    assert "## Performance" in text and "report-student" in text


def test_schema_rejects_a_broken_file():
    from benchmarks.report import schema

    assert any("missing" in p for p in schema.validate({"format": schema.FORMAT}))


def test_gpu_variants_are_added_when_a_gpu_is_present(tiny_models_dir: Path, monkeypatch):
    """No GPU here: pretend nvidia-smi found one and onnxruntime has the CUDA / TensorRT providers."""
    import onnxruntime as ort

    from benchmarks import latency as variants

    assert all(v.device == "cpu" for v in variants.discover(root=tiny_models_dir))
    monkeypatch.setattr(variants, "gpus", lambda: [{"name": "NVIDIA Test GPU"}])
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    found = variants.discover("report-labels", root=tiny_models_dir)
    engines = {v.engine for v in found}
    assert {"ort-cpu", "ort-cuda", "ort-trt"} <= engines
    assert variants.discover("report-labels", include_gpu=False, root=tiny_models_dir)[0].engine == "ort-cpu"


def test_seen_holdout_notes_a_model_trained_on_the_hold_out(tmp_path):
    """The harness says when a report model's hold-out rows are not held out (trained on all dev)."""
    from pathlib import Path

    from benchmarks.accuracy import seen_holdout
    from benchmarks.data import holdout_ids
    from radedge.manifest import Manifest

    ids = [f"CXR{i}" for i in range(1, 401)]
    outside = len(ids) - len(holdout_ids(ids))
    manifest = Manifest.read(Path(__file__).resolve().parents[1] / "models" / "report-student")
    for trained, seen in ((outside, False), (len(ids), True)):
        manifest.provenance["training"] = {"reports": trained}
        manifest.write(tmp_path)
        note = seen_holdout(tmp_path, ids)
        assert (note is not None) == seen
        assert note is None or f"trained on {trained} Open-i dev reports" in note

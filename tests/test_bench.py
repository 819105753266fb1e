"""The benchmark harness: radedge.bench core, the FLOP counter, `radedge bench`, `python -m benchmarks --quick`.

No timing is asserted anywhere (speed claims come from the benchmark command, not from tests): these
tests check that the harness measures, records and reports what it says it does.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from radedge import bench
from radedge.manifest import TensorSpec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ---- radedge.bench ----------------------------------------------------------------------------
def test_measure_counts_calls_and_percentiles():
    calls = []
    latency = bench.measure(lambda: calls.append(1), items_per_call=4, warmup=2, iters=7)
    assert len(calls) == 9 and len(latency.samples_s) == 7
    d = latency.to_dict()
    assert d["p50_ms"] <= d["p95_ms"] <= d["p99_ms"] and d["items_per_call"] == 4 and d["calls"] == 7
    fixed = bench.Latency([0.1, 0.2, 0.3, 0.4], items_per_call=8)
    assert fixed.median_s == pytest.approx(0.25) and fixed.throughput == pytest.approx(32.0)


def test_measure_stops_at_max_seconds_after_min_iters():
    import time

    latency = bench.measure(lambda: time.sleep(0.01), warmup=0, iters=1000, max_seconds=0.0, min_iters=3)
    assert len(latency.samples_s) == 3


def test_synthetic_feeds_follow_specs():
    specs = [TensorSpec("input_ids", "int64", ("batch", "sequence")),
             TensorSpec("attention_mask", "int64", ("batch", "sequence")),
             TensorSpec("pixels", "float32", ("batch", 3, 8, 8))]
    feeds = bench.synthetic_feeds(specs, batch=2, sequence=5, vocab_size=50)
    assert feeds["input_ids"].shape == (2, 5) and feeds["input_ids"].max() < 50 and feeds["input_ids"].min() >= 5
    assert (feeds["attention_mask"] == 1).all() and feeds["pixels"].shape == (2, 3, 8, 8)
    with pytest.raises(ValueError):
        bench.synthetic_feeds(specs[:1], batch=1)


def test_parse_int_list_and_machine_info():
    assert bench.parse_int_list("1, 8,32") == [1, 8, 32]
    for bad in ("", "0", "a,b"):
        with pytest.raises(ValueError):
            bench.parse_int_list(bad)
    info = bench.machine_info()
    assert info["cpu_model"] and isinstance(info["cpu_flags"], list) and "CPUExecutionProvider" in info[
        "onnxruntime_providers"]


def test_peak_rss_sees_an_allocation():
    with bench.PeakRss() as rss:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block.sum()
    assert rss.peak_mb - rss.before_mb > 32


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


# ---- radedge bench ----------------------------------------------------------------------------
def test_radedge_bench_cli_on_tiny_model(tiny_report_model: Path, tmp_path: Path):
    from click.testing import CliRunner

    from radedge.cli import main

    out = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", "--model", str(tiny_report_model), "--batch-sizes", "1,2",
                                  "--seq-lens", "8,16", "--iters", "3", "--warmup", "1", "--json", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["format"] == "radedge-bench" and data["version"] == 1
    cases = data["cases"]
    assert {(c["batch"], c["sequence"]) for c in cases} == {(1, 8), (2, 8), (1, 16), (2, 16)}
    assert all(c["calls"] == 3 and c["p50_ms"] > 0 for c in cases)
    assert data["models"][0]["load_s"] > 0 and data["import_time"]["median_s"] > 0
    assert "tiny-report" in r.output and "p99 ms" in r.output


def test_radedge_bench_cli_errors(tmp_path: Path):
    from click.testing import CliRunner

    from radedge.cli import main

    r = CliRunner().invoke(main, ["bench", "--model", str(tmp_path / "nope")])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["bench", "--batch-sizes", "0"])
    assert r.exit_code == 2 and "positive integers" in r.output


# ---- python -m benchmarks -----------------------------------------------------------------------
@pytest.fixture
def tiny_models_dir(tmp_path: Path) -> Path:
    from tiny_models import write_image_model, write_report_model

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
    for png in ("throughput_vs_batch.png", "latency_batch1.png", "end_to_end.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
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


def test_radedge_bench_end_to_end_on_own_inputs(tiny_report_model: Path, tmp_path: Path):
    from click.testing import CliRunner

    from radedge.cli import main

    reports = tmp_path / "reports.csv"
    reports.write_text("No acute cardiopulmonary abnormality.\nSmall left pleural effusion.\n\n", encoding="utf-8")
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", "--model", "rules", "--model", str(tiny_report_model), "--inputs",
                                  str(reports), "--batch-sizes", "1", "--seq-lens", "8", "--iters", "2",
                                  "--json", str(out)])
    assert r.exit_code == 0, r.output
    cases = json.loads(out.read_text())["cases"]
    e2e = [c for c in cases if c["kind"] == "end-to-end"]
    assert [c["model"] for c in e2e] == ["rules", "tiny-report"] and all(c["batch"] == 3 for c in e2e)
    assert [c["kind"] for c in cases].count("model") == 1  # the rule labeler has no graph
    r = CliRunner().invoke(main, ["bench", "--model", "rules"])
    assert r.exit_code == 2 and "--inputs" in r.output

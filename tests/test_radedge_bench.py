"""radedge.bench (timing, memory, machine, synthetic inputs) and the `radedge bench` command.

No timing is asserted anywhere (speed claims come from the benchmark command, not from tests): these
tests check that it measures, records and reports what it says it does.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from radedge import bench
from radedge.manifest import TensorSpec


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


def test_parse_int_list():
    from radedge.commands.bench import parse_int_list

    assert parse_int_list("1, 8,32") == [1, 8, 32]
    for bad in ("", "0", "a,b"):
        with pytest.raises(ValueError):
            parse_int_list(bad)


def test_machine_info():
    info = bench.machine_info()
    assert info["cpu_model"] and isinstance(info["cpu_flags"], list) and "CPUExecutionProvider" in info[
        "onnxruntime_providers"]


def test_peak_rss_sees_an_allocation():
    with bench.PeakRss() as rss:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block.sum()
    assert rss.peak_mb - rss.before_mb > 32


# ---- radedge bench ----------------------------------------------------------------------------
def test_radedge_bench_cli_on_tiny_model(tiny_report_model: Path, tmp_path: Path):
    from click.testing import CliRunner

    from radedge.cli import main

    out = tmp_path / "bench.json"
    r = CliRunner().invoke(main, ["bench", "--model", str(tiny_report_model), "--batch-sizes", "1,2",
                                  "--seq-lens", "8,16", "--iters", "3", "--warmup", "1", "--json", str(out),
                                  "--plot", str(tmp_path / "plots" / "bench.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "plots" / "bench.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads(out.read_text())
    assert data["format"] == "radedge-bench" and data["version"] == 2
    assert data["machine"]["cpu_model"] and set(data) == {"format", "version", "machine", "models", "cases"}
    cases = data["cases"]
    assert {(c["batch"], c["sequence"]) for c in cases} == {(1, 8), (2, 8), (1, 16), (2, 16)}
    assert all(c["calls"] == 3 and c["p50_ms"] > 0 for c in cases)
    assert all(c["model"] == "tiny-report" and c["kind"] == "model" and c["peak_rss_mb"] > 0 for c in cases)
    assert data["models"][0]["load_s"] > 0 and data["models"][0]["model_bytes"] > 0
    assert "tiny-report" in r.output and "p99 ms" in r.output


def test_radedge_bench_cli_errors(tmp_path: Path):
    from click.testing import CliRunner

    from radedge.cli import main

    r = CliRunner().invoke(main, ["bench", "--model", str(tmp_path / "nope")])
    assert r.exit_code == 2
    r = CliRunner().invoke(main, ["bench", "--batch-sizes", "0"])
    assert r.exit_code == 2 and "positive integers" in r.output
    r = CliRunner().invoke(main, ["bench", "--model", "rules"])
    assert r.exit_code == 2 and "no model graph" in r.output


def test_radedge_bench_plot_without_matplotlib(monkeypatch, tmp_path: Path):
    import sys

    from click.testing import CliRunner

    from radedge.cli import main

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    r = CliRunner().invoke(main, ["bench", "--plot", str(tmp_path / "b.png")])
    assert r.exit_code == 2 and r.output.strip() == ("radedge: error: plots need matplotlib, which is not "
                                                     "installed: pip install matplotlib"), r.output

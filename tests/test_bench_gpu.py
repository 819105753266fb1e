"""benchmarks.gpu (the one-command GPU check) and benchmarks.report.gpu (its gpu.json and README block), on the CPU: its refusal to run without a GPU (exit 2,
one line per missing piece), argument parsing, the build step's bookkeeping (an int8 request that fell
back to fp16 is a failure; plans linked for the benchmark), the pytest step's summary, and gpu.json /
the README block made from a sample of the harness's results (figures invented for the test only)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gpu, parity
from benchmarks.report import gpu as gpu_report


def _no_accelerator() -> bool:
    found, problems = gpu.check()
    return bool(problems)


@pytest.mark.skipif(not _no_accelerator(), reason="this machine has what the GPU check needs")
def test_without_a_gpu_it_exits_2_naming_each_missing_piece(tmp_path, capsys):
    assert gpu.main(["--out", str(tmp_path), "--no-readme"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("benchmarks.gpu: cannot run here:")]
    assert lines and any("GPU" in line or "TensorRT" in line or "CUDAExecutionProvider" in line for line in lines)
    assert not (tmp_path / "gpu.json").exists()  # nothing measured, nothing written
    assert gpu.main(["--check"]) == 2


def test_arguments():
    args = gpu.parse_args([])
    assert args.out.name == "gpu-results" and not args.quick and not args.skip_tests and args.readme_from is None
    args = gpu.parse_args(["--out", "x", "--quick", "--skip-tests", "--no-readme"])
    assert args.out == Path("x") and args.quick and args.skip_tests and args.no_readme
    assert gpu.Grid.quick().report_batches == (1, 32) and max(gpu.Grid().report_batches) == gpu.MAX_BATCH


def test_build_step_flags_an_int8_fallback_and_links_every_plan(tmp_path, monkeypatch):
    models = gpu.shipped_models()
    if not models:
        pytest.skip("no model folder in models/")
    calls = []

    def fake_run(command, **kwargs):
        calls.append(command)
        precision = command[command.index("--precision") + 1]
        cache = Path(command[command.index("--cache-dir") + 1])
        cache.mkdir(parents=True, exist_ok=True)
        plan = cache / f"{Path(command[4]).name}.{precision}.plan"
        plan.write_bytes(b"plan")
        built = "fp16" if precision == "int8" and "report" not in command[4] else precision  # one fallback
        meta = {"plan": str(plan), "precision": built, "gate": None, "notes": ["int8 failed its accuracy gate"]}
        return subprocess.CompletedProcess(command, 0, json.dumps(meta), "")

    monkeypatch.setattr(gpu.subprocess, "run", fake_run)
    calib = {gpu.REPORT_TASK: tmp_path / "reports", gpu.IMAGE_TASK: tmp_path / "images"}
    rows = gpu.build_plans(models, tmp_path / "engines", calib)
    assert len(rows) == 2 * len(models) and len(calls) == len(rows)
    assert all(("--calib" in c) == (c[c.index("--precision") + 1] == "int8") for c in calls)
    assert all(c[c.index("--max-batch") + 1] == str(gpu.MAX_BATCH) for c in calls)
    for row in rows:
        fell_back = row["requested"] == "int8" and "report" not in row["model"]
        assert row["ok"] is not fell_back
        if fell_back:
            assert "asked for int8, built fp16" in row["error"]
    assert len(list((tmp_path / "engines" / "all").glob("*.plan"))) == len(rows)


def test_a_failed_build_keeps_its_last_error_line(tmp_path, monkeypatch):
    models = gpu.shipped_models()[:1]
    if not models:
        pytest.skip("no model folder in models/")
    monkeypatch.setattr(gpu.subprocess, "run", lambda command, **kw: subprocess.CompletedProcess(
        command, 2, "", "Traceback\nruntimes.tensorrt: error: no CUDA GPU"))
    rows = gpu.build_plans(models, tmp_path / "engines", {gpu.REPORT_TASK: tmp_path, gpu.IMAGE_TASK: tmp_path})
    assert [r["ok"] for r in rows] == [False, False]
    assert rows[0]["error"] == "runtimes.tensorrt: error: no CUDA GPU"


def test_tests_step_reuses_the_plans_and_keeps_the_printed_figures(tmp_path, monkeypatch):
    seen = {}

    def fake_run(command, **kwargs):
        seen.update(command=command, env=kwargs["env"])
        out = "tensorrt/cuda/fp16: label agreement 0.9990 over 6286 labels\n.....\n12 passed in 80.0s\n"
        return subprocess.CompletedProcess(command, 0, out, "")

    monkeypatch.setattr(gpu.subprocess, "run", fake_run)
    result = gpu.run_tests(tmp_path)
    assert seen["env"][parity.ENGINES_VAR] == str(tmp_path)
    assert "gpu or tensorrt" in seen["command"]
    assert result["ok"] and result["summary"] == "12 passed in 80.0s"
    assert result["figures"] == ["tensorrt/cuda/fp16: label agreement 0.9990 over 6286 labels"]


# ---- gpu.json and the README block from a sample of the harness's results ------------------------
def _latency(label, task, engine, device, batch, p50, throughput, sequence=128):
    return {"label": label, "model": label.split()[0], "task": task, "precision": label.split()[1], "engine": engine,
            "device": device, "batch": batch, "sequence": sequence if task == gpu.REPORT_TASK else None,
            "p50_ms": p50, "p99_ms": p50 * 1.5, "throughput_per_s": throughput}


SAMPLE = {
    "git_commit": "abc1234",
    "latency": [
        _latency("report-student int8 ort-cpu", gpu.REPORT_TASK, "ort-cpu", "cpu", 1, 5.0, 200.0),
        _latency("report-student int8 ort-cpu", gpu.REPORT_TASK, "ort-cpu", "cpu", 32, 50.0, 640.0),
        _latency("report-student int8 ort-cpu", gpu.REPORT_TASK, "ort-cpu", "cpu", 32, 20.0, 9999.0, sequence=64),
        _latency("report-student fp16 tensorrt", gpu.REPORT_TASK, "tensorrt", "cuda", 1, 0.25, 4000.0),
        _latency("report-student fp16 tensorrt", gpu.REPORT_TASK, "tensorrt", "cuda", 256, 6.0, 42000.0),
        _latency("image-vit fp16 tensorrt", gpu.IMAGE_TASK, "tensorrt", "cuda", 1, 0.4, 2500.0),
        _latency("image-vit fp16 tensorrt", gpu.IMAGE_TASK, "tensorrt", "cuda", 256, 40.0, 6400.0),
    ],
    "end_to_end": [
        {"label": "report-student int8 ort-cpu", "name": "report-student", "task": gpu.REPORT_TASK,
         "engine": "ort-cpu", "precision": "int8", "device": "cpu", "shipped": True, "throughput_per_s": 150.0,
         "items": 2285},
        {"label": "report-student fp16 tensorrt", "name": "report-student", "task": gpu.REPORT_TASK,
         "engine": "tensorrt", "precision": "fp16", "device": "cuda", "shipped": True, "throughput_per_s": 3000.0,
         "items": 2285},
    ],
    "host": [{"model": "report-student", "task": gpu.REPORT_TASK, "what": "tokenization into windows",
              "items": 2285, "throughput_per_s": 3500.0, "default": True}],
    "errors": [], "notes": [],
}


def test_model_rows_take_batch_1_at_128_tokens_and_the_best_batch():
    rows = {r["label"]: r for r in gpu_report.model_rows(SAMPLE)}
    cpu = rows["report-student int8 ort-cpu"]
    assert cpu["p50_ms_batch1"] == 5.0 and cpu["best_batch"] == 32 and cpu["best_throughput_per_s"] == 640.0
    assert cpu["end_to_end_per_s"] == 150.0  # the 64-token row (9999/s) is another sequence length
    trt = rows["report-student fp16 tensorrt"]
    assert trt["best_batch"] == 256 and trt["p99_ms_batch1"] == 0.375


def test_targets_are_judged_on_the_best_tensorrt_plan():
    judged = {(t["task"], t["metric"]): t for t in gpu_report.targets(gpu_report.model_rows(SAMPLE))}
    assert judged[(gpu.REPORT_TASK, "p50_ms_batch1")]["met"]            # 0.25 ms < 0.3
    assert judged[(gpu.REPORT_TASK, "best_throughput_per_s")]["met"]    # 42,000/s > 30,000
    image = judged[(gpu.IMAGE_TASK, "best_throughput_per_s")]
    assert not image["met"] and image["value"] == 6400.0                # < 10,000/s
    assert not any(t["met"] for t in gpu_report.targets([]))                    # nothing ran: nothing met


def test_report_parity_compares_each_gpu_labeler_with_the_cpu_one_on_the_holdout():
    from benchmarks.data import holdout_ids

    ids = [f"CXR{i}" for i in range(1, 400)]
    held = holdout_ids(ids)
    cpu = np.zeros((len(ids), 14), dtype=np.int8)
    gpu_labels = cpu.copy()
    outside = [k for k, i in enumerate(ids) if i not in held]
    gpu_labels[outside] = 1  # disagreement only outside the hold-out: not counted
    predictions = {"report-student int8 ort-cpu": cpu, "report-student fp16 tensorrt": gpu_labels}
    rows = gpu.report_parity(predictions, ids, SAMPLE["end_to_end"])
    assert len(rows) == 1 and rows[0]["ok"] and rows[0]["label_agreement"] == 1.0
    assert rows[0]["items"] == len(held)
    gpu_labels[[k for k, i in enumerate(ids) if i in held][:5]] = 2
    assert not gpu.report_parity(predictions, ids, SAMPLE["end_to_end"])[0]["ok"]


def _summary(tmp_path):
    found = {"gpus": [{"name": "NVIDIA H200"}], "tensorrt": "10.13.0", "onnxruntime": "1.22.0"}
    builds = [{"model": "report-student", "requested": "fp16", "ok": True, "seconds": 40.0}]
    tests = {"command": "python -m pytest -m 'gpu or tensorrt'", "ok": True, "summary": "12 passed"}
    parity_rows = [{"task": gpu.REPORT_TASK, "label": "report-student fp16 tensorrt", "items": 449,
                    "label_agreement": 0.999, "bound": 0.99, "ok": True}]
    return gpu_report.summarize(found, builds, tests, SAMPLE, parity_rows, {"check": {"seconds": 1.0}}, ["--quick"])


def test_summary_and_readme_block(tmp_path):
    summary = _summary(tmp_path)
    assert summary["ok"] and summary["gpu"] == "NVIDIA H200" and summary["format"] == gpu_report.FORMAT
    json_path = tmp_path / "gpu.json"
    json_path.write_text(json.dumps(summary), encoding="utf-8")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n<!-- SECTION:{gpu.SECTION} -->\nNo GPU figures yet.\n<!-- /SECTION:{gpu.SECTION} -->\n")
    assert gpu.main(["--readme-from", str(json_path), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "No GPU figures yet" not in text and "**NVIDIA H200**" in text
    assert "| report-student fp16 tensorrt | 0.25 | 0.375 | 256 | 42,000 | 3,000 |" in text
    assert "NOT met" in text  # the image throughput target
    assert "bounded by the host side" in text  # tokenization 3,500/s < model 42,000/s


def test_a_failed_parity_bound_or_build_fails_the_run(tmp_path):
    summary = _summary(tmp_path)
    bad = gpu_report.summarize(summary["found"], summary["builds"], summary["tests"], SAMPLE,
                        [dict(summary["parity"][0], ok=False)], {}, [])
    assert not bad["ok"]
    bad = gpu_report.summarize(summary["found"], [dict(summary["builds"][0], ok=False, error="x")], None, SAMPLE,
                        summary["parity"], {}, [])
    assert not bad["ok"] and "FAILED: x" in gpu_report.render(bad, tmp_path / "gpu.json", tmp_path)


def test_the_readme_has_the_block_the_gpu_run_rewrites():
    from benchmarks.report.readme import replace_block

    text = (gpu.ROOT / "README.md").read_text(encoding="utf-8")
    replace_block(text, gpu.SECTION, "x\n")  # raises when the block is missing
    block = text[text.index(f"<!-- SECTION:{gpu.SECTION} -->"):text.index(f"<!-- /SECTION:{gpu.SECTION} -->")]
    assert "python -m benchmarks.gpu" in block

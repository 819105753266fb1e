"""`python -m benchmarks.report RESULTS.json [--readme README.md]`: regenerate the README's performance block.

Only the text between `<!-- SECTION:performance -->` and `<!-- /SECTION:performance -->` is rewritten,
from the results file alone, so every figure there can be traced to one run of `python -m benchmarks`.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from radedge.bench import describe_machine

from ..data import ROOT
from .plots import reference_sequence
from export.cli import command_parser, run_command

SECTION = "performance"
TASK_NAMES = {"report-labels": "reports", "image-findings": "images"}


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(v).replace("|", "\\|") for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:
        return str(path)


def _on_gpu(label: str, row: dict[str, Any], results: dict[str, Any]) -> str:
    """A GPU row's label names the GPU it was measured on."""
    if row.get("device") != "cuda":
        return label
    names = [g["name"] for g in (results.get("machine") or {}).get("gpus", [])]
    return f"{label} on {names[0] if names else 'a CUDA GPU'}"


def headlines(results: dict[str, Any]) -> list[str]:
    """One bullet per comparison group: the shipped default's rate and how many times each peer's it is."""
    lines = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results.get("end_to_end", []):
        groups.setdefault((r["task"], r.get("source_group", r.get("source", ""))), []).append(r)
    for (task, source), rows in groups.items():
        base = next((r for r in rows if r["role"] == "default" and r.get("device", "cpu") == "cpu"), None)
        if base is None:
            continue
        unit = "reports/s" if task == "report-labels" else "images/s"
        others = []
        for r in rows:
            if r is base or not r["throughput_per_s"]:
                continue
            ratio = base["throughput_per_s"] / r["throughput_per_s"]
            how = f"the default is {ratio:.3g}x faster" if ratio >= 1 else f"{1 / ratio:.3g}x the default"
            others.append(f"{r.get('label', r['name'])} {_fmt(r['throughput_per_s'])} {unit} ({how})")
        lines.append(f"- {base.get('label', base['name'])}: **{_fmt(base['throughput_per_s'])} {unit}** "
                     f"({base.get('what', '')}; `{source.split(':')[0]}`)"
                     + (": " + "; ".join(others) if others else ""))
    return lines


def end_to_end_table(results: dict[str, Any]) -> str:
    rows = [(TASK_NAMES.get(r["task"], r["task"]), _on_gpu(r.get("label", r["name"]), r, results), r["role"], r["items"],
             r["throughput_per_s"], f"{r['ratio_vs_default']:.3g}x" if r.get("ratio_vs_default") else "-",
             r.get("source", "").split(":")[0])
            for r in results.get("end_to_end", [])]
    return markdown_table(rows, ["task", "labeler / scorer", "role", "items", "items/s", "vs shipped default",
                                 "measured by"])


def latency_table(results: dict[str, Any]) -> str:
    """Per variant: batch-1 p50 / p99 (at 128 tokens for reports) and the best throughput over batch sizes."""
    out = []
    for label in dict.fromkeys(r["label"] for r in results.get("latency", [])):
        rows = [r for r in results["latency"] if r["label"] == label]
        ref_seq = reference_sequence(rows)
        ref = [r for r in rows if r.get("sequence") == ref_seq]
        one = next((r for r in ref if r["batch"] == 1), None)
        best = max(ref, key=lambda r: r["throughput_per_s"])
        size = f"{ref_seq} tokens" if ref_seq else f"{best.get('image_size')} px"
        out.append((TASK_NAMES.get(best["task"], best["task"]), _on_gpu(label, best, results), size, one and one["p50_ms"],
                    one and one["p99_ms"], best["throughput_per_s"], best["batch"], best.get("fraction_of_peak"),
                    best.get("peak_rss_mb")))
    return markdown_table(out, ["task", "variant", "input", "p50 ms (batch 1)", "p99 ms (batch 1)",
                                "best items/s", "at batch", "fraction of peak", "peak RSS MiB"])


def accuracy_table(results: dict[str, Any]) -> str:
    rows = [(TASK_NAMES.get(r["task"], r["task"]), r["model"], r["split"], r.get("n"), r["metric"], r["value"],
             r.get("source", "").split(":")[0]) for r in results.get("accuracy", [])]
    return markdown_table(rows, ["task", "model", "split", "n", "metric", "value", "measured by"])


def roofline_table(results: dict[str, Any]) -> str:
    rows = [(r["model"], r["precision"], r["engine"], r["what"], f"{r['flops_per_item'] / 1e9:.3g} G",
             r["throughput_per_s"], r.get("achieved_gops"), r.get("peak_gops"), r.get("fraction_of_peak"))
            for r in results.get("roofline", [])]
    return markdown_table(rows, ["model", "precision", "engine", "what", "FLOPs / item", "items/s", "GOP/s",
                                 "peak GOP/s", "fraction of peak"])


def dicom_lines(results: dict[str, Any]) -> list[str]:
    dicom = results.get("dicom") or {}
    lines = []
    if dicom.get("rows"):
        rows = [(r["transfer_syntax"], r["mode"], r["files"], r["read_ms"], r["decode_ms"], r["lut_ms"],
                 r["preprocess_ms"], r["prepare_ms"], r["inference_ms"], f"{r['inference_share']:.0%}")
                for r in dicom["rows"]]
        lines.append(markdown_table(rows, ["transfer syntax", "decoded", "files", "read ms", "decode ms", "LUTs ms",
                                           "preprocess ms", "prepare ms", "inference ms / image", "inference share"]))
    if dicom.get("pipeline"):
        rows = [(p["group"], p["mode"], p["files"], p["workers"], p["images_per_s"], p["steady_images_per_s"])
                for p in dicom["pipeline"]]
        lines += ["", markdown_table(rows, ["files of", "decoded", "files", "workers", "images/s",
                                            "images/s after the first"])]
    memory = dicom.get("memory") or []
    if memory:
        lines += ["", "Peak memory of `radedge score-dicoms` against folder size (small DICOM files, main process "
                  "and the whole process tree with its decoding workers; `python -m benchmarks.dicom memory`):", ""]
        lines.append(markdown_table([(m["files"], m["workers"], m["seconds"], m["files_per_s"], m["peak_main_mb"],
                                      m["peak_tree_mb"]) for m in memory],
                                    ["files", "workers", "seconds", "files/s", "peak RSS main MiB",
                                     "peak RSS tree MiB"]))
    return lines


def _load_line(results: dict[str, Any]) -> str:
    loads = list((results.get("sections_load_1m") or {}).values())
    if not loads:
        return ""
    return (f" The 1-minute load average ran from {min(loads):.1f} to {max(loads):.1f} during the run "
            f"(other processes sharing the CPU make every figure pessimistic).")


def render(results: dict[str, Any], results_path: Path, readme_dir: Path) -> str:
    """The Markdown body of the performance block."""
    machine = results.get("machine") or {}
    peaks = results.get("peaks") or {}
    imp = results.get("import_time") or {}
    gpu = [g["name"] for g in machine.get("gpus", [])]
    parts = [
        "## Performance",
        "",
        f"Generated from `{_rel(results_path, readme_dir)}` by `python -m benchmarks.report`; do not edit by hand. "
        f"Reproduce on your machine with `{' '.join(results.get('command', ['python', '-m', 'benchmarks']))}` "
        f"(this run: {results.get('wall_s', 0) / 60:.1f} min wall time, {results.get('created')}, commit "
        f"`{results.get('git_commit')}`).",
        "",
        "*(Not run by the README test: the full benchmark run takes many minutes.)*",
        "```bash",
        "python -m benchmarks --out benchmarks/results          # everything below, one command (--quick: smoke run)",
        "python -m benchmarks.report benchmarks/results/results.json   # regenerate this block",
        "radedge bench --task reports --batch-sizes 1,8,32 --json bench.json   # installed models, no checkout",
        "radedge bench --device cuda --backend tensorrt        # the same on a GPU",
        "```",
        "",
        "Only the int8 models ship. The rows of the report student in fp32 (ONNX and PyTorch) use the training "
        "folder that `python -m export.reports.default` leaves in `runs/`, and the image BCE baseline needs "
        "`runs/image-vit/bce.onnx` from `python -m export.images.default`: in a fresh clone, run those two "
        "commands first (about 20 + 20 minutes on 2 cores) or those rows are left out with a note.",
        "",
        f"Machine: {describe_machine(machine)}; onnxruntime {machine.get('onnxruntime')}, Python {machine.get('python')}."
        + (f" GPU rows were measured on: {', '.join(gpu)}." if gpu else " No GPU in this run: there are no GPU rows.")
        + _load_line(results),
        "",
        "**Headlines** (each shipped default, then the alternatives measured side by side with it in this run):",
        "",
        *headlines(results),
        "",
        "**End to end, same inputs, same run** (reports: the Open-i dev reports through `ReportLabeler`; "
        "images: NIH PNGs through `ImageScorer`; ratios against the shipped default measured by the same command):",
        "",
        end_to_end_table(results),
        "",
    ]
    if results.get("accuracy"):
        parts += ["**Accuracy** (Open-i gold, positive findings mapped to CheXpert, macro F1; image AUCs):", "",
                  accuracy_table(results), ""]
    if results.get("latency"):
        parts += ["**Model latency** (graph only, synthetic inputs, after warm-up; p50 / p99 of repeated calls; "
                  "throughput at the median call):", "", latency_table(results), ""]
    if results.get("roofline"):
        parts += [f"**Roofline**: this CPU's measured peaks are {_fmt(peaks.get('fp32_gflops'))} GFLOP/s fp32 "
                  f"(numpy matmul), {_fmt(peaks.get('ort_fp32_gflops'))} GFLOP/s fp32 and "
                  f"{_fmt(peaks.get('int8_gops'))} GOP/s int8 (onnxruntime MatMul / MatMulInteger); FLOPs are the "
                  "matrix products of each ONNX graph at the measured mean window length.", "",
                  roofline_table(results), ""]
    dicom = dicom_lines(results)
    if dicom:
        parts += [f"**DICOM scoring** (full-size radiographs, stage by stage, by `python -m benchmarks.dicom throughput`; "
                  f"model {results['dicom'].get('model')}):", "", *dicom, ""]
    if imp:
        loads = "; ".join(f"{m['label']} {m['load_s'] * 1e3:.0f} ms ({m['model_bytes'] / 2**20:.1f} MiB graph)"
                          for m in results.get("models", []))
        parts += [f"`import radedge` takes {imp['median_s'] * 1e3:.0f} ms (median of {imp['repeats']} fresh "
                  "interpreters). Model load (sha256 check, session creation), each in a fresh process: "
                  + (loads or "no model measured") + ".", ""]
    plots = results.get("plots") or []
    if plots:
        folder = results_path.parent
        parts += ["Plots: " + ", ".join(f"[{p}]({_rel(folder / p, readme_dir)})" for p in plots) + ".", ""]
    notes = results.get("notes") or []
    errors = results.get("errors") or []
    if notes or errors:
        parts += ["Notes on this run (what was not measured, and why):", ""]
        parts += [f"- {n}" for n in notes] + [f"- {e['section']}: {e['error']}" for e in errors]
        parts += [""]
    return "\n".join(parts).rstrip() + "\n"


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the inside of its `<!-- SECTION:name -->` block replaced by `body`."""
    start, end = f"<!-- SECTION:{name} -->", f"<!-- /SECTION:{name} -->"
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"no {start} ... {end} block in the README")
    return text[: i + len(start)] + "\n" + body + text[j:]


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.report", __doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="results.json written by python -m benchmarks")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md",
                        help="README whose results block is rewritten")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text(encoding="utf-8"))
    readme = args.readme
    body = render(results, args.results.resolve(), readme.resolve().parent)
    new = replace_block(readme.read_text(encoding="utf-8"), SECTION, body)
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, readme)
    print(f"rewrote the {SECTION} block of {readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_command(main, "benchmarks.report")

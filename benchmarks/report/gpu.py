"""gpu.json and the README's `gpu-results` block from one run of `python -m benchmarks.gpu`.

What each variant measured (p50 / p99 at batch 1, best-batch throughput model only, end to end), the
issue's targets judged on the best TensorRT plan, what bounds the end-to-end figures, and the
README block rendered from gpu.json alone, so every GPU figure there traces back to one run.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Sequence

from .readme import _fmt, _rel, markdown_table, replace_block

REPORT_TASK, IMAGE_TASK = "report-labels", "image-findings"
SECTION = "gpu-results"
FORMAT, VERSION = "radedge-gpu-check", 1
REPORT_SEQUENCE = 128  # the latency grid's sequence length: the targets are quoted at 128 tokens
# The targets (on H100 / H200), measured on the best TensorRT plan of each model.
TARGETS = [
    {"task": REPORT_TASK, "metric": "p50_ms_batch1", "op": "<", "target": 0.3,
     "what": "report model p50 latency at batch 1, 128 tokens (ms)"},
    {"task": REPORT_TASK, "metric": "best_throughput_per_s", "op": ">", "target": 30000,
     "what": "report model throughput at its best batch, model only (reports/s)"},
    {"task": IMAGE_TASK, "metric": "best_throughput_per_s", "op": ">", "target": 10000,
     "what": "image model throughput at its best batch, model only (images/s)"},
]


def model_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per variant: p50 / p99 at batch 1 (128 tokens for reports), the best batch and its throughput
    (model only), and its end-to-end throughput."""
    out = []
    end_to_end = {r["label"]: r for r in results.get("end_to_end", [])}
    for label in dict.fromkeys(r["label"] for r in results.get("latency", [])):
        rows = [r for r in results["latency"] if r["label"] == label
                and r.get("sequence") in (None, REPORT_SEQUENCE)]
        if not rows:
            continue
        first = min(rows, key=lambda r: r["batch"])
        best = max(rows, key=lambda r: r["throughput_per_s"])
        e2e = end_to_end.get(label, {})
        out.append({"label": label, "model": first["model"], "task": first["task"],
                    "precision": first["precision"], "engine": first.get("engine"), "device": first.get("device"),
                    "p50_ms_batch1": first["p50_ms"] if first["batch"] == 1 else None,
                    "p99_ms_batch1": first["p99_ms"] if first["batch"] == 1 else None,
                    "best_batch": best["batch"], "best_throughput_per_s": best["throughput_per_s"],
                    "end_to_end_per_s": e2e.get("throughput_per_s"), "end_to_end_items": e2e.get("items")})
    return out


def targets(models: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets against the best TensorRT plan of the task's models (unmet when none ran)."""
    out = []
    for t in TARGETS:
        rows = [m for m in models if m["task"] == t["task"] and m["engine"] == "tensorrt"
                and m.get(t["metric"]) is not None]
        pick = min if t["op"] == "<" else max
        best = pick(rows, key=lambda m: m[t["metric"]]) if rows else None
        value = best[t["metric"]] if best else None
        met = value is not None and (value < t["target"] if t["op"] == "<" else value > t["target"])
        out.append({**t, "value": value, "label": best["label"] if best else None, "met": met})
    return out


def summarize(found: dict[str, Any], builds: list[dict[str, Any]], tests: dict[str, Any] | None,
              results: dict[str, Any], parity_rows: list[dict[str, Any]], steps: dict[str, Any],
              command: Sequence[str]) -> dict[str, Any]:
    models = model_rows(results)
    ok = (all(b["ok"] for b in builds) and (tests is None or tests["ok"]) and bool(parity_rows)
          and all(p["ok"] for p in parity_rows) and not results.get("errors"))
    return {"format": FORMAT, "version": VERSION,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "command": ["python", "-m", "benchmarks.gpu", *command], "git_commit": results.get("git_commit"),
            "gpu": (found.get("gpus") or [{}])[0].get("name"), "found": found, "steps": steps, "builds": builds,
            "tests": tests, "models": models, "host": results.get("host", []), "parity": parity_rows,
            "targets": targets(models), "errors": results.get("errors", []), "notes": results.get("notes", []),
            "ok": ok}


def bounds_lines(summary: dict[str, Any]) -> list[str]:
    """What bounds each end-to-end GPU figure: the host-side rate or the model's."""
    host = {h["model"]: h for h in summary.get("host", [])}
    lines = []
    for m in summary["models"]:
        h = host.get(m["model"])
        if m.get("device") != "cuda" or not m.get("end_to_end_per_s") or h is None:
            continue
        limit = "host" if h["throughput_per_s"] < m["best_throughput_per_s"] else "model"
        lines.append(f"- {m['label']}: {m['end_to_end_per_s']:,.0f}/s end to end, against "
                     f"{m['best_throughput_per_s']:,.0f}/s for the model alone and {h['throughput_per_s']:,.0f}/s "
                     f"for {h['what']} alone: bounded by the {limit} side "
                     f"({m['end_to_end_per_s'] / m['best_throughput_per_s']:.0%} of the model-only rate).")
    return lines


def render(summary: dict[str, Any], json_path: Path, readme_dir: Path) -> str:
    """The README's gpu-results block, from gpu.json alone."""
    parts = [f"Generated from `{_rel(json_path, readme_dir)}` by `python -m benchmarks.gpu`; do not edit by hand. "
             f"GPU: **{summary.get('gpu') or 'unknown'}** (TensorRT {summary['found'].get('tensorrt', '-')}, "
             f"onnxruntime {summary['found'].get('onnxruntime', '-')}), {summary['created']}, "
             f"commit `{summary.get('git_commit') or '-'}`. Overall: "
             f"{'every build, test and parity bound passed' if summary['ok'] else 'NOT all passed (see below)'}.", ""]
    parts += ["Latency and throughput, model only (batch 1 at 128 tokens for reports) and end to end:", ""]
    parts.append(markdown_table([[m["label"], m["p50_ms_batch1"], m["p99_ms_batch1"], m["best_batch"],
                                  m["best_throughput_per_s"], m["end_to_end_per_s"]] for m in summary["models"]],
                                ["variant", "p50 ms (b=1)", "p99 ms (b=1)", "best batch", "items/s (model)",
                                 "items/s (end to end)"]))
    parts += ["", "Targets (best TensorRT plan):", ""]
    parts.append(markdown_table([[t["what"], t["target"], t["value"], t["label"], "met" if t["met"] else "NOT met"]
                                 for t in summary["targets"]], ["target", "goal", "measured", "variant", ""]))
    parts += ["", "Parity with the CPU int8 models (bounds: `benchmarks/parity.py`):", ""]
    parts.append(markdown_table([[p["label"], p["items"], p.get("label_agreement", p.get("worst_auc_change")),
                                  (">= " if p["task"] == REPORT_TASK else "<= ") + _fmt(p["bound"]),
                                  "ok" if p["ok"] else "FAILED"] for p in summary["parity"]],
                                ["variant", "items", "agreement / worst AUC change", "bound", ""]))
    bounds = bounds_lines(summary)
    if bounds:
        parts += ["", "What bounds the end-to-end figures:", "", *bounds]
    builds = [f"{b['model']} {b['requested']}: {'built' if b['ok'] else 'FAILED: ' + b.get('error', '')} "
              f"in {b['seconds']} s" for b in summary["builds"]]
    parts += ["", "Builds: " + ("; ".join(builds) if builds else "none in this run") + "."]
    if summary.get("tests"):
        parts += ["", f"Tests (`{summary['tests']['command']}`): {summary['tests']['summary']}."]
    problems = [f"- {e['section']}: {e['error']}" for e in summary.get("errors", [])]
    if problems:
        parts += ["", "Errors in this run:", "", *problems]
    return "\n".join(parts).rstrip() + "\n"


def write_readme(summary: dict[str, Any], json_path: Path, readme: Path) -> None:
    new = replace_block(readme.read_text(encoding="utf-8"), SECTION, render(summary, json_path, readme.resolve().parent))
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(new, encoding="utf-8")
    os.replace(tmp, readme)

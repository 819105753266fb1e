"""PNG charts of a results dict, one question each (radedge.plots draws them: units on the axes,
machine and date in the caption):

- throughput_reports.png / throughput_images.png: how many items per second each model's graph
  does as the batch grows;
- latency_batch1.png: how long one call takes at batch 1 (distribution per model);
- end_to_end_<task>_<n>.png: one per end-to-end measurement (the title says what was timed), so
  bars of two benchmarks are never side by side.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from radedge.plots import bar_chart, latency_chart, throughput_chart

TASK_TITLES = {"report-labels": "report labeling", "image-findings": "image scoring"}
UNITS = {"report-labels": "reports", "image-findings": "images"}
THROUGHPUT_FILES = {"report-labels": "throughput_reports.png", "image-findings": "throughput_images.png"}


def reference_sequence(rows: list[dict[str, Any]]) -> int | None:
    """The sequence length report plots and tables show: 128 when measured, else the middle one."""
    seqs = sorted({r["sequence"] for r in rows if r.get("sequence")})
    if not seqs:
        return None
    return 128 if 128 in seqs else seqs[len(seqs) // 2]


def _task_rows(results: dict[str, Any], task: str) -> tuple[list[dict[str, Any]], int | None]:
    rows = [r for r in results.get("latency", []) if r["task"] == task]
    seq = reference_sequence(rows)
    return [r for r in rows if r.get("sequence") in (seq, None)], seq


def _context(results: dict[str, Any]) -> dict[str, Any]:
    return {"machine": results.get("machine") or {}, "when": results.get("created")}


def throughput_plots(results: dict[str, Any], out: Path) -> list[Path]:
    written = []
    for task, name in THROUGHPUT_FILES.items():
        rows, seq = _task_rows(results, task)
        if not rows:
            continue
        series: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            series.setdefault(r["label"], []).append((r["batch"], r["throughput_per_s"]))
        tokens = f" at {seq} tokens" if seq else ""
        title = f"{TASK_TITLES[task].capitalize()}: {UNITS[task]}/s of the model graph by batch size{tokens}"
        written.append(throughput_chart(series, title, UNITS[task], out / name, **_context(results)))
    return written


def latency_plot(results: dict[str, Any], path: Path) -> Path | None:
    groups = []
    for task in TASK_TITLES:
        rows, seq = _task_rows(results, task)
        for r in rows:
            if r["batch"] == 1 and r.get("samples_ms"):
                groups.append((r["label"] + (f", {seq} tokens" if seq else ""), r["samples_ms"]))
    if not groups:
        return None
    return latency_chart(groups, "How long does one call take at batch 1?", path, **_context(results))


def end_to_end_plots(results: dict[str, Any], out: Path) -> list[Path]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results.get("end_to_end", []):
        groups.setdefault((r["task"], r.get("what", "")), []).append(r)
    written, counts = [], {task: 0 for task in TASK_TITLES}
    for (task, what), rows in groups.items():
        counts[task] += 1
        bars = [(r.get("label", r["name"]), r["throughput_per_s"], r.get("role") == "default") for r in rows]
        title = f"{TASK_TITLES[task].capitalize()} end to end (green: shipped default)\n{_wrap(what)}"
        name = f"end_to_end_{UNITS[task]}_{counts[task]}.png"
        written.append(bar_chart(bars, title, f"{UNITS[task]} per second (log scale)", out / name,
                                 **_context(results)))
    return written


def _wrap(text: str, width: int = 60) -> str:
    lines, line = [], ""
    for word in re.split(r"\s+", text.strip()):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line]) if line else "\n".join(lines)


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Every chart the results support, as PNGs in `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    latency = latency_plot(results, out / "latency_batch1.png")
    return [*throughput_plots(results, out), *([latency] if latency else []), *end_to_end_plots(results, out)]

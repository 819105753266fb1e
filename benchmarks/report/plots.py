"""PNG plots of a results dict: throughput vs batch size, latency distributions, end-to-end bars."""
from __future__ import annotations

from pathlib import Path
from typing import Any

TASK_TITLES = {"report-labels": "report labeling", "image-findings": "image scoring"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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


def throughput_plot(results: dict[str, Any], path: Path) -> Path | None:
    plt = _plt()
    tasks = [t for t in TASK_TITLES if any(r["task"] == t for r in results.get("latency", []))]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows, seq = _task_rows(results, task)
        for label in sorted({r["label"] for r in rows}):
            pts = sorted((r["batch"], r["throughput_per_s"]) for r in rows if r["label"] == label)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        batches = sorted({r["batch"] for r in rows})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("items / s (graph only)")
        ax.set_title(TASK_TITLES[task] + (f", {seq} tokens" if seq else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, results, path)


def latency_plot(results: dict[str, Any], path: Path) -> Path | None:
    plt = _plt()
    groups = []
    for task in TASK_TITLES:
        rows, seq = _task_rows(results, task)
        for r in rows:
            if r["batch"] == 1 and r.get("samples_ms"):
                groups.append((f"{r['label']}" + (f"\n{seq} tok" if seq else ""), r["samples_ms"]))
    if not groups:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(groups)), 4.2))
    ax.boxplot([g[1] for g in groups], whis=(1, 99), showfliers=True)
    ax.set_xticks(range(1, len(groups) + 1), [g[0] for g in groups], fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("latency per call, ms (batch 1; whiskers p1-p99)")
    ax.set_title("latency distribution at batch 1", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return _save(fig, results, path)


def end_to_end_plot(results: dict[str, Any], path: Path) -> Path | None:
    plt = _plt()
    rows = results.get("end_to_end", [])
    tasks = [t for t in TASK_TITLES if any(r["task"] == t for r in rows)]
    if not tasks:
        return None
    heights = [sum(r["task"] == t for r in rows) for t in tasks]
    fig, axes = plt.subplots(len(tasks), 1, figsize=(9, 0.42 * sum(heights) + 1.2 * len(tasks)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, task in zip(axes[:, 0], tasks):
        task_rows = [r for r in rows if r["task"] == task]
        values = [r["throughput_per_s"] for r in task_rows]
        colors = ["tab:green" if r["role"] == "default" else "tab:gray" for r in task_rows]
        ax.barh(range(len(task_rows)), values, color=colors)
        ax.set_yticks(range(len(task_rows)), [r.get("label", r["name"]) for r in task_rows], fontsize=7)
        ax.set_xscale("log")
        ax.set_xlim(min(values) / 10, max(values) * 3)
        ax.set_title(f"{TASK_TITLES[task]}, end to end (green: shipped default)", fontsize=9)
        for i, r in enumerate(task_rows):
            if r.get("ratio_vs_default") is not None:
                ax.text(values[i], i, f" {r['ratio_vs_default']:.3g}x", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.grid(True, axis="x", which="both", alpha=0.3)
    axes[-1, 0].set_xlabel("items / s")
    return _save(fig, results, path)


def _save(fig: Any, results: dict[str, Any], path: Path) -> Path:
    """Title the figure with the machine it was measured on, write it, close it."""
    fig.suptitle(_machine_line(results), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return path


def _machine_line(results: dict[str, Any]) -> str:
    from radedge.bench import describe_machine

    return describe_machine(results.get("machine") or {})


def write_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Every plot the results support, as PNGs in `out`; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [throughput_plot(results, out / "throughput_vs_batch.png"),
               latency_plot(results, out / "latency_batch1.png"),
               end_to_end_plot(results, out / "end_to_end.png")]
    return [p for p in written if p is not None]

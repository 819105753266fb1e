"""PNG charts a person reads in five seconds: one question per chart (the title asks it), the unit on
the axis, labels that do not overlap, and the machine and date in a caption. matplotlib is optional:
`radedge bench --plot` and `python -m benchmarks` need it, nothing else does.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Mapping, Sequence

from .bench import describe_machine

FONT = 10  # points: every label, tick and legend; the caption is one point smaller


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, or a ValueError saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        raise ValueError("plots need matplotlib, which is not installed: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT, "axes.titlesize": FONT + 1, "legend.fontsize": FONT - 1})
    return plt


def caption(machine: Mapping[str, Any], when: str | None = None) -> str:
    """'Measured on <machine>, <date>': what every chart says under it."""
    date = (when or dt.datetime.now(dt.timezone.utc).isoformat())[:10]
    return f"Measured on {describe_machine(machine)}, {date}"


def save(fig: Any, path: str | Path, machine: Mapping[str, Any], when: str | None = None) -> Path:
    """Write `fig` with its caption below the axes and close it."""
    fig.text(0.01, 0.01, caption(machine, when), fontsize=FONT - 2, color="0.35", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def throughput_chart(series: Mapping[str, Sequence[tuple[int, float]]], title: str, unit: str, path: str | Path,
                     machine: Mapping[str, Any], when: str | None = None) -> Path:
    """Items per second against batch size, one line per series label (e.g. a model and its sequence length)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    batches: set[int] = set()
    for label, points in sorted(series.items()):
        pts = sorted(points)
        batches |= {b for b, _ in pts}
        ax.plot([b for b, _ in pts], [v for _, v in pts], marker="o", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(batches), [str(b) for b in sorted(batches)])
    ax.set_yscale("log")
    ax.set_xlabel("batch size (items per call)")
    ax.set_ylabel(f"{unit} per second (log scale)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best")
    return save(fig, path, machine, when)


def bar_chart(bars: Sequence[tuple[str, float, bool]], title: str, xlabel: str, path: str | Path,
              machine: Mapping[str, Any], when: str | None = None) -> Path:
    """Horizontal bars (label, value, highlighted), largest first, each with its value written beside it."""
    plt = pyplot()
    bars = sorted(bars, key=lambda b: -b[1])
    fig, ax = plt.subplots(figsize=(9, 2.2 + 0.55 * len(bars)))
    ys = range(len(bars))
    ax.barh(ys, [b[1] for b in bars], color=["tab:green" if b[2] else "tab:gray" for b in bars])
    ax.set_yticks(ys, [b[0] for b in bars])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(min(b[1] for b in bars) / 3, max(b[1] for b in bars) * 4)
    for y, (_, value, _) in zip(ys, bars):
        ax.text(value, y, f" {value:,.0f}" if value >= 10 else f" {value:.2g}", va="center")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return save(fig, path, machine, when)


def latency_chart(groups: Sequence[tuple[str, Sequence[float]]], title: str, path: str | Path,
                  machine: Mapping[str, Any], when: str | None = None) -> Path:
    """Per-call latency distributions, one horizontal box per label (long labels stay readable)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 1.8 + 0.55 * len(groups)))
    ax.boxplot([list(g[1]) for g in groups], orientation="horizontal", whis=(1, 99), showfliers=False)
    ax.set_yticks(range(1, len(groups) + 1), [g[0] for g in groups])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("ms per call, log scale (box: p25-p75; whiskers: p1-p99)")
    ax.set_title(title)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    return save(fig, path, machine, when)


__all__ = ["bar_chart", "caption", "latency_chart", "pyplot", "save", "throughput_chart"]

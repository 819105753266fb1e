"""`--engine ray` against the plain CLI on the same input, in the same run: throughput against the
number of Ray workers, Ray's overhead, the agreement of label cells, and an estimate for N nodes.

    python -m benchmarks.cluster [--reports 20000] [--student-reports 2285] [--repeats 3] [--json OUT]

Three workloads: the rule labeler on the Open-i reports repeated to `--reports`, the default
student on `--student-reports` of them, the default image model on the shared DICOM corpus.
For each, the plain CLI (`radedge label-reports` / `score-dicoms` in a subprocess, start-up and
model load included) and Ray with 1 and 2 workers run interleaved, `--repeats` times each;
medians are compared. Ray's start-up (`ray.init`: raylet, GCS, object store) is timed once and
reported apart: the Ray runs go through `label_to_parquet` / `score_to_parquet` in this process
after `init()`, so they include what every job pays (actor processes, model load per actor,
blocks, Parquet writes) but not the cluster's start. The Ray CLI's total for one job is the sum.

Agreement: every label cell of the Ray output against the plain CLI's JSONL (ids exactly once).
The N-node estimate multiplies the measured per-worker rate by the cores of N nodes and by the
measured 2-worker scaling efficiency; for DICOM it uses the per-transfer-syntax CPU costs that
`benchmarks/dicom.py` recorded in benchmarks/results/results.json (when present).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Sequence

from .data import DATA, ROOT, openi_reports

DICOM = DATA / "dicom"
RESULTS = ROOT / "benchmarks" / "results" / "results.json"
WORKERS = (1, 2)


def _load() -> float:
    return round(os.getloadavg()[0], 1)


def plain_cli(command: str, source: Path, out: Path, model: str) -> float:
    """Wall seconds of `radedge COMMAND SOURCE -o OUT -m MODEL --quiet --overwrite` (this checkout's code)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "radedge.cli", command, str(source), "-o", str(out), "-m", model,
           "--quiet", "--overwrite"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode not in (0, 1):  # 1: some items failed (the corpus has broken files on purpose)
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}: {done.stderr[-500:]}")
    return seconds


def ray_run(kind: str, source: Path, out: Path, model: str, workers: int, part_size: int | None) -> float:
    """Wall seconds of one `--engine ray` job in this process (Ray already started)."""
    from radedge.pipelines import raydata

    options: dict[str, Any] = {"num_workers": workers, "overwrite": True}
    if part_size:
        options["block_size"] = part_size
    t0 = time.perf_counter()
    if kind == "reports":
        raydata.label_to_parquet(source, out, model, fmt="jsonl", **options)
    else:
        raydata.score_to_parquet(source, out, model, **options)
    return time.perf_counter() - t0


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def agreement(plain: list[dict[str, Any]], ray_rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """Label cells identical between two outputs keyed by `key`; every item exactly once in each."""
    counts = Counter(str(r[key]) for r in ray_rows)
    by_key = {str(r[key]): r for r in ray_rows}
    cells = same = 0
    for rec in plain:
        other = by_key.get(str(rec[key]))
        mine, theirs = rec.get("labels") or {}, (other or {}).get("labels") or {}
        for finding in set(mine) | set(theirs):
            cells += 1
            same += mine.get(finding) == theirs.get(finding)
    plain_keys = Counter(str(r[key]) for r in plain)
    return {"items_plain": len(plain), "items_ray": len(ray_rows),
            "exactly_once": counts == plain_keys and all(n == 1 for n in counts.values()),
            "label_cells": cells, "label_cells_identical": same,
            "identical_share": round(same / cells, 5) if cells else None}


def _workload(name: str, kind: str, source: Path, model: str, n: int, key: str, repeats: int,
              part_size: int | None, tmp: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    command = "label-reports" if kind == "reports" else "score-dicoms"
    plain_out, ray_out = tmp / f"{name}-plain.jsonl", tmp / f"{name}-ray"
    modes: dict[str, Callable[[], float]] = {"plain CLI": lambda: plain_cli(command, source, plain_out, model)}
    for w in WORKERS:
        modes[f"ray {w} worker{'s' * (w > 1)}"] = (
            lambda w=w: ray_run(kind, source, ray_out / str(w), model, w, part_size))
    walls: dict[str, list[float]] = {m: [] for m in modes}
    loads = []
    for _ in range(repeats):  # interleaved: load changes hit every mode alike
        for m, fn in modes.items():
            walls[m].append(fn())
            loads.append(_load())
    plain = _jsonl(plain_out)
    ray_rows = pq.read_table(ray_out / str(WORKERS[-1])).to_pylist()
    for row in ray_rows:
        row["labels"] = {k: v for k, v in (row.get("labels") or {}).items() if v is not None} or None
    for rec in plain:
        rec["labels"] = {k: v for k, v in (rec.get("labels") or {}).items() if v is not None} or None
    base = statistics.median(walls["plain CLI"])
    rows = [{"mode": m, "items": n, "walls_s": [round(w, 2) for w in ws], "median_s": round(statistics.median(ws), 2),
             "items_per_s": round(n / statistics.median(ws), 2),
             "wall_vs_plain": round(statistics.median(ws) / base, 3)} for m, ws in walls.items()]
    return {"workload": name, "model": model, "items": n, "repeats": repeats, "rows": rows,
            "load_1m": [min(loads), statistics.median(loads), max(loads)],
            "agreement": agreement(plain, ray_rows, key)}


def _repeated_reports(n: int, path: Path) -> int:
    """Open-i reports repeated (ids made unique) to `n`, as JSONL at `path`; how many."""
    rows = openi_reports()
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            r = dict(rows[i % len(rows)])
            r["id"] = f"{r['id']}#{i // len(rows)}"
            f.write(json.dumps(r) + "\n")
    return n


def _recorded_per_core() -> dict[str, list[tuple[str, float]]]:
    """Items/s per core recorded by `python -m benchmarks` in results.json (a quieter run than this
    one): ReportLabeler end to end (rules: 1 thread; the student: onnxruntime's threads = the
    machine's CPUs), and DICOM CPU ms per image per transfer syntax (benchmarks/dicom.py)."""
    if not RESULTS.is_file():
        return {}
    r = json.loads(RESULTS.read_text())
    cpus = r.get("machine", {}).get("usable_cpus") or 1
    e2e = r.get("end_to_end", {})
    rows = e2e.get("rows", []) if isinstance(e2e, dict) else e2e
    out: dict[str, list[tuple[str, float]]] = {}
    for row in rows:
        if row.get("source") == "benchmarks/end_to_end.py:label_with" and row.get("shipped"):
            if row["name"] == "rules":
                out["reports rules"] = [("reports rules", row["throughput_per_s"])]
            elif row.get("role") == "default":
                out["reports default"] = [("reports default", row["throughput_per_s"] / cpus)]
    out["dicom"] = [(f"dicom {d['group']}", 1e3 / (d["prepare_ms"] + d["inference_ms"]))
                    for d in r.get("dicom", {}).get("rows", []) if d.get("prepare_ms")]
    return out


def estimate(workloads: Sequence[dict[str, Any]], nodes: Sequence[int] = (1, 10, 100), cores: int = 16
             ) -> list[dict[str, Any]]:
    """Items/s of N nodes of `cores` cores: the recorded per-core rate x cores x N x Ray's measured
    efficiency on one node (plain CLI wall / Ray 2-worker wall in this run, at most 1); and the
    minutes for 10 million items."""
    recorded = _recorded_per_core()
    out = []
    for w in workloads:
        rows = {r["mode"]: r for r in w["rows"]}
        efficiency = min(1.0, rows["plain CLI"]["median_s"] / rows["ray 2 workers"]["median_s"])
        for name, rate in recorded.get(w["workload"], []):
            row = {"workload": name, "per_core_per_s": round(rate, 1), "ray_efficiency": round(efficiency, 3)}
            for n in nodes:
                total = rate * cores * n * efficiency
                row[f"{n} node{'s' * (n > 1)} per_s"] = round(total)
                row[f"{n} node{'s' * (n > 1)} min per 10M"] = round(1e7 / total / 60, 1)
            out.append(row)
    return out


def run(reports: int, student_reports: int, repeats: int, part_size: int | None = None,
        dicom: Path = DICOM, only: Sequence[str] = ()) -> dict[str, Any]:
    from radedge.pipelines import raydata

    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_1m_start": _load(), "workloads": []}
    with tempfile.TemporaryDirectory(prefix="radedge-bench-ray-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        raydata.init()
        result["ray_init_s"] = round(time.perf_counter() - t0, 2)
        many, few = tmp / "reports.jsonl", tmp / "student.jsonl"
        cases = [("reports rules", "reports", many, "rules", _repeated_reports(reports, many), "id"),
                 ("reports default", "reports", few, "default", _repeated_reports(student_reports, few), "id"),
                 ("dicom", "dicoms", dicom, "default",
                  sum(1 for p in dicom.rglob("*") if p.is_file()), "path")]
        for name, kind, source, model, n, key in cases:
            if n and (not only or name in only):
                result["workloads"].append(_workload(name, kind, source, model, n, key, repeats, part_size, tmp))
                print(format_workload(result["workloads"][-1]), flush=True)
    result["part_size"] = part_size
    result["estimate"] = estimate(result["workloads"])
    result["load_1m_end"] = _load()
    return result


def format_workload(w: dict[str, Any]) -> str:
    a = w["agreement"]
    lines = [f"{w['workload']} ({w['model']}, {w['items']} items, median of {w['repeats']} interleaved runs, "
             f"load {w['load_1m'][1]} [{w['load_1m'][0]}-{w['load_1m'][2]}])",
             f"  {'mode':16s} {'median s':>9s} {'items/s':>9s} {'x plain':>8s}  runs (s)"]
    for r in w["rows"]:
        lines.append(f"  {r['mode']:16s} {r['median_s']:9.2f} {r['items_per_s']:9.2f} {r['wall_vs_plain']:8.3f}  "
                     + " ".join(f"{s:.2f}" for s in r["walls_s"]))
    lines.append(f"  agreement: {a['label_cells_identical']}/{a['label_cells']} label cells identical "
                 f"({a['identical_share']}), items plain {a['items_plain']} / ray {a['items_ray']}, "
                 f"exactly once: {a['exactly_once']}")
    return "\n".join(lines)


def format_report(r: dict[str, Any]) -> str:
    lines = [f"Ray vs plain CLI, {r['cpus']} cpus, load {r['load_1m_start']} -> {r['load_1m_end']}; "
             f"ray.init (not in the Ray walls below): {r['ray_init_s']} s; "
             f"part size: {r['part_size'] or 'the engine default'}", ""]
    lines += [format_workload(w) for w in r["workloads"]]
    lines.append("")
    lines.append("estimate for N nodes of 16 cores: per-core rate recorded in benchmarks/results/results.json "
                 "x 16 x N x Ray's efficiency measured here (plain / ray 2 workers, at most 1)")
    for e in r["estimate"]:
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in e.items()))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=20000, help="reports for the rule labeler (Open-i repeated)")
    p.add_argument("--student-reports", type=int, default=2285, help="reports for the default student")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--part-size", type=int, default=None, help="items per Ray part (default: the engine's)")
    p.add_argument("--dicom", type=Path, default=DICOM, help="DICOM folder (default: the shared corpus)")
    p.add_argument("--only", default="", help="comma-separated workloads: 'reports rules', 'reports default', 'dicom'")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    p.add_argument("--from-json", type=Path, default=None, help="print an earlier --json result (estimate redone)")
    args = p.parse_args(argv)
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        result.setdefault("part_size", None)
        result["estimate"] = estimate(result["workloads"])
        print(format_report(result))
        return 0
    result = run(args.reports, args.student_reports, args.repeats, args.part_size, args.dicom,
                 [w.strip() for w in args.only.split(",") if w.strip()])
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

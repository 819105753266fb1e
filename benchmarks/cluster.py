"""`--engine ray` against the plain CLI on the same input, in the same run: Ray's fixed start-up
cost, its steady-state overhead per item, throughput against the number of Ray workers, the
agreement of label cells, and an estimate for N nodes.

    python -m benchmarks.cluster [--reports 20000] [--student-reports 2285] [--archive-copies 8]
                                 [--archive-kinds KIND,...] [--ray-workers 1,2]
                                 [--repeats 3] [--only ...] [--json OUT] [--from-json OUT]

Four workloads: the rule labeler on the Open-i reports repeated to `--reports`; the default
student on `--student-reports` of them (all 2,285 by default); the default image model on the
shared DICOM corpus (44 files); and on an archive-like folder: the corpus plus `--archive-copies`
copies of the full-size files that `benchmarks/dicom.py` builds (4,280 x 3,520 and smaller chest
radiographs as JPEG 2000 lossless and lossy, baseline JPEG and uncompressed; each copy its own SOP
Instance UID, so every copy is scored). For each, the plain CLI (`radedge label-reports` /
`score-dicoms` in a subprocess, start-up and model load included) and Ray with 1 and 2 workers
run interleaved, `--repeats` times each, on the workload and on a one-item input of the same kind;
medians are compared.

- fixed cost: the one-item run's wall seconds (plain: interpreter, imports, model load; Ray:
  dataset creation, actor start, model load in every actor, the Parquet part).
- steady-state ratio: (workload wall - one-item wall) of Ray over the same for the plain CLI: the
  per-item overhead once both are running.
- total ratio: the workload's wall time, Ray over plain; a line per Ray mode and workload judges it,
  alone and with `ray.init` added, against issue 16's target (at most 1.15x).

`ray.init` (raylet, GCS, object store: what `ray start` pays on a cluster) is timed once and
reported apart: the Ray runs go through `label_to_parquet` / `score_to_parquet` in this process
after `init()`. A Ray CLI run on one machine pays it on top (the total with it is printed too).

Agreement: every label cell of the Ray output against the plain CLI's JSONL (ids exactly once).
The N-node estimate multiplies the recorded per-core rate by the cores of N nodes and by Ray's
measured efficiency on one node (plain / Ray 2 workers on the workload, at most 1); for DICOM it
uses the per-transfer-syntax CPU costs (reduced-size decoding) that `benchmarks/dicom.py` recorded
in benchmarks/results/results.json (when present).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
TARGET = 1.15  # issue 16: Ray on one node at most 15% slower than the plain CLI


def verdicts(w: dict[str, Any], ray_init_s: float, target: float = TARGET) -> list[str]:
    """One line per Ray mode: its total wall against the plain CLI's (the job alone, and with
    `ray.init` added, which a CLI run on one machine pays) and its steady-state ratio, each total
    judged against `target`: the figures the README's bullets quote."""
    def judged(ratio: float) -> str:
        return "met" if ratio <= target else "missed"

    rows = {r["mode"]: r for r in w["rows"]}
    base = rows["plain CLI"]["median_s"]
    out = []
    for mode, r in rows.items():
        if mode == "plain CLI":
            continue
        total, with_init = r["wall_vs_plain"], (r["median_s"] + ray_init_s) / base  # as in the table
        out.append(f"{mode}: total {total:.3f}x plain ({judged(total)}), with ray.init {with_init:.3f}x "
                   f"({judged(with_init)}), steady {r['steady_vs_plain']:.3f}x; target <= {target}")
    return out


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


def _modes(kind: str, source: Path, out: Path, model: str, part_size: int | None,
           workers: Sequence[int] = WORKERS) -> dict[str, Callable[[], float]]:
    """Mode name -> one timed run of it on `source`: the plain CLI, then Ray with each of `workers`."""
    command = "label-reports" if kind == "reports" else "score-dicoms"
    modes: dict[str, Callable[[], float]] = {
        "plain CLI": lambda: plain_cli(command, source, out / "plain.jsonl", model)}
    for w in workers:
        modes[f"ray {w} worker{'s' * (w > 1)}"] = (
            lambda w=w: ray_run(kind, source, out / f"ray{w}", model, w, part_size))
    return modes


def _workload(name: str, kind: str, source: Path, one: Path, model: str, n: int, key: str, repeats: int,
              part_size: int | None, tmp: Path, workers: Sequence[int] = WORKERS) -> dict[str, Any]:
    """Every mode on the workload `source` (n items) and on the one-item input `one`, interleaved."""
    import pyarrow.parquet as pq

    big = _modes(kind, source, tmp / name / "big", model, part_size, workers)
    small = _modes(kind, one, tmp / name / "one", model, part_size, workers)
    walls: dict[str, list[float]] = {m: [] for m in big}
    fixed: dict[str, list[float]] = {m: [] for m in big}
    loads = []
    for _ in range(repeats):  # interleaved: load changes hit every mode alike
        for m in big:
            fixed[m].append(small[m]())
            walls[m].append(big[m]())
            loads.append(_load())
    plain = _jsonl(tmp / name / "big" / "plain.jsonl")
    ray_rows = pq.read_table(tmp / name / "big" / f"ray{workers[-1]}").to_pylist()
    for row in ray_rows:
        row["labels"] = {k: v for k, v in (row.get("labels") or {}).items() if v is not None} or None
    for rec in plain:
        rec["labels"] = {k: v for k, v in (rec.get("labels") or {}).items() if v is not None} or None
    base, base_fixed = statistics.median(walls["plain CLI"]), statistics.median(fixed["plain CLI"])
    rows = []
    for m, ws in walls.items():
        wall, one_item = statistics.median(ws), statistics.median(fixed[m])
        rows.append({"mode": m, "items": n, "walls_s": [round(w, 2) for w in ws], "median_s": round(wall, 2),
                     "items_per_s": round(n / wall, 2), "wall_vs_plain": round(wall / base, 3),
                     "fixed_s": round(one_item, 2), "fixed_walls_s": [round(w, 2) for w in fixed[m]],
                     "steady_ms_per_item": round(1e3 * (wall - one_item) / max(n - 1, 1), 3),
                     "steady_vs_plain": round((wall - one_item) / max(base - base_fixed, 1e-9), 3)})
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


def _one_report(path: Path) -> Path:
    """A one-report JSONL: the first Open-i report."""
    path.write_text(json.dumps(openi_reports(1)[0]) + "\n", encoding="utf-8")
    return path


def _one_dicom(root: Path) -> Path:
    """A folder holding one scored corpus file (STUDY05's JPEG 2000 radiograph, its own SOP UID)."""
    from .dicom import STUDY05, copies_folder

    return copies_folder([DICOM / STUDY05["j2k-lossless"]], 1, root)


def _archive(corpus: Path, copies: int, root: Path, kinds: Sequence[str] = ()) -> tuple[Path, int]:
    """An archive-like folder: the corpus plus `copies` copies of every full-size file of
    `benchmarks/dicom.py` of `kinds` (all by default; each copy its own SOP Instance UID); the
    folder and its file count. Without the uncompressed kind (about 90 of a copy's 136 MB) a folder
    of thousands of files still fits this machine's disk and page cache."""
    from .dicom import copies_folder, fullsize_folder

    shutil.copytree(corpus, root / "corpus")
    if copies:
        files = [p for kind, paths in fullsize_folder().items() if not kinds or kind in kinds for p in paths]
        copies_folder(files, copies, root / "fullsize")
    return root, sum(1 for p in root.rglob("*") if p.is_file())


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
    out["dicom archive"] = [(f"dicom {d['transfer_syntax']}", 1e3 / (d["prepare_ms"] + d["inference_ms"]))
                            for d in r.get("dicom", {}).get("rows", [])
                            if d.get("prepare_ms") and d.get("mode") == "reduced"]
    return out


def estimate(workloads: Sequence[dict[str, Any]], nodes: Sequence[int] = (1, 10, 100), cores: int = 16
             ) -> list[dict[str, Any]]:
    """Items/s of N nodes of `cores` cores: the recorded per-core rate x cores x N x Ray's measured
    efficiency on one node (plain CLI wall / the wall of the last Ray mode run, 2 workers by default,
    at most 1); and the minutes for 10 million items."""
    recorded = _recorded_per_core()
    out = []
    for w in workloads:
        rows = {r["mode"]: r for r in w["rows"]}
        ray = w["rows"][-1]  # `_modes` order: the plain CLI, then Ray by workers
        efficiency = min(1.0, rows["plain CLI"]["median_s"] / ray["median_s"])
        for name, rate in recorded.get(w["workload"], []):
            row = {"workload": name, "per_core_per_s": round(rate, 1), "ray_efficiency": round(efficiency, 3)}
            for n in nodes:
                total = rate * cores * n * efficiency
                row[f"{n} node{'s' * (n > 1)} per_s"] = round(total)
                row[f"{n} node{'s' * (n > 1)} min per 10M"] = round(1e7 / total / 60, 1)
            out.append(row)
    return out


def run(reports: int, student_reports: int, repeats: int, part_size: int | None = None,
        dicom: Path = DICOM, only: Sequence[str] = (), archive_copies: int = 8,
        json_out: Path | None = None, archive_kinds: Sequence[str] = (),
        workers: Sequence[int] = WORKERS) -> dict[str, Any]:
    """Every wanted workload; with `json_out`, the result so far is written there after each one
    (a long run that is stopped keeps the workloads it finished)."""
    from radedge.pipelines import raydata

    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_1m_start": _load(), "workloads": []}
    with tempfile.TemporaryDirectory(prefix="radedge-bench-ray-") as tmp_name:
        tmp = Path(tmp_name)
        t0 = time.perf_counter()
        raydata.init()
        result["ray_init_s"] = round(time.perf_counter() - t0, 2)
        many, few = tmp / "reports.jsonl", tmp / "student.jsonl"
        one_report, one_dicom = _one_report(tmp / "one.jsonl"), _one_dicom(tmp / "one-dicom")
        wanted = lambda name: not only or name in only  # noqa: E731
        cases = [("reports rules", "reports", many, one_report, "rules", _repeated_reports(reports, many), "id"),
                 ("reports default", "reports", few, one_report, "default",
                  _repeated_reports(student_reports, few), "id"),
                 ("dicom", "dicoms", dicom, one_dicom, "default", sum(1 for p in dicom.rglob("*") if p.is_file()),
                  "path")]
        if wanted("dicom archive"):
            folder, n = _archive(dicom, archive_copies, tmp / "archive", archive_kinds)
            cases.append(("dicom archive", "dicoms", folder, one_dicom, "default", n, "path"))
        for name, kind, source, one, model, n, key in cases:
            if n and wanted(name):
                result["workloads"].append(_workload(name, kind, source, one, model, n, key, repeats, part_size, tmp,
                                                     workers))
                print(format_workload(result["workloads"][-1], result["ray_init_s"]), flush=True)
                if json_out:
                    json_out.write_text(json.dumps(result, indent=1))
    result["part_size"] = part_size
    result["archive_copies"] = archive_copies
    result["archive_kinds"] = list(archive_kinds)
    result["estimate"] = estimate(result["workloads"])
    result["load_1m_end"] = _load()
    if json_out:
        json_out.write_text(json.dumps(result, indent=1))
    return result


def format_workload(w: dict[str, Any], ray_init_s: float) -> str:
    a = w["agreement"]
    lines = [f"{w['workload']} ({w['model']}, {w['items']} items, median of {w['repeats']} interleaved runs, "
             f"load {w['load_1m'][1]} [{w['load_1m'][0]}-{w['load_1m'][2]}])",
             f"  {'mode':15s} {'median s':>8s} {'items/s':>8s} {'x plain':>7s} {'fixed s':>7s} "
             f"{'steady ms/item':>14s} {'steady x plain':>14s} {'x plain +init':>13s}  runs (s)"]
    base = next(r["median_s"] for r in w["rows"] if r["mode"] == "plain CLI")
    for r in w["rows"]:
        with_init = r["median_s"] + (ray_init_s if r["mode"] != "plain CLI" else 0)
        lines.append(f"  {r['mode']:15s} {r['median_s']:8.2f} {r['items_per_s']:8.2f} {r['wall_vs_plain']:7.3f} "
                     f"{r['fixed_s']:7.2f} {r['steady_ms_per_item']:14.3f} {r['steady_vs_plain']:14.3f} "
                     f"{with_init / base:13.3f}  " + " ".join(f"{s:.2f}" for s in r["walls_s"]))
    lines.append(f"  agreement: {a['label_cells_identical']}/{a['label_cells']} label cells identical "
                 f"({a['identical_share']}), items plain {a['items_plain']} / ray {a['items_ray']}, "
                 f"exactly once: {a['exactly_once']}")
    lines += ["  " + v for v in verdicts(w, ray_init_s)]
    return "\n".join(lines)


def format_report(r: dict[str, Any]) -> str:
    lines = [f"Ray vs plain CLI, {r['cpus']} cpus, load {r['load_1m_start']} -> {r['load_1m_end']}; "
             f"ray.init (not in the Ray walls below; in 'x plain +init'): {r['ray_init_s']} s; "
             f"part size: {r['part_size'] or 'the engine default'}; archive: corpus + "
             f"{r.get('archive_copies', 0)} copies of the full-size files"
             f"{' (' + ', '.join(r['archive_kinds']) + ')' if r.get('archive_kinds') else ''}",
             "fixed s: wall of a one-item run; steady: (wall - fixed) per item, and against the plain CLI's", ""]
    lines += [format_workload(w, r["ray_init_s"]) for w in r["workloads"]]
    lines.append("")
    lines.append("estimate for N nodes of 16 cores: per-core rate recorded in benchmarks/results/results.json "
                 "x 16 x N x Ray's efficiency measured here (plain / ray 2 workers, at most 1)")
    for e in r["estimate"]:
        lines.append("  " + ", ".join(f"{k}: {v}" for k, v in e.items()))
    return "\n".join(lines)


def _names(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.split("\n\n")[0])
    p.add_argument("--reports", type=int, default=20000, help="reports for the rule labeler (Open-i repeated)")
    p.add_argument("--student-reports", type=int, default=2285, help="reports for the default student")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--part-size", type=int, default=None, help="items per Ray part (default: the engine's)")
    p.add_argument("--dicom", type=Path, default=DICOM, help="DICOM folder (default: the shared corpus)")
    p.add_argument("--archive-copies", type=int, default=8,
                   help="copies of the full-size DICOM files added to the corpus for 'dicom archive'")
    p.add_argument("--archive-kinds", default="",
                   help="comma-separated kinds of full-size files copied into the archive (default: all of "
                        "j2k-lossless, j2k-lossy, jpeg, uncompressed)")
    p.add_argument("--ray-workers", default=",".join(map(str, WORKERS)),
                   help="comma-separated Ray worker counts to run (the last one's output is checked for agreement)")
    p.add_argument("--only", default="",
                   help="comma-separated workloads: 'reports rules', 'reports default', 'dicom', 'dicom archive'")
    p.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    p.add_argument("--from-json", type=Path, default=None, help="print an earlier --json result (estimate redone)")
    args = p.parse_args(argv)
    from .dicom import KINDS

    kinds, workers = _names(args.archive_kinds), _names(args.ray_workers)
    if set(kinds) - set(KINDS):
        p.error(f"--archive-kinds: not among {', '.join(KINDS)}: {args.archive_kinds}")
    if not workers or not all(w.isdigit() and int(w) > 0 for w in workers):
        p.error(f"--ray-workers needs positive integers, got {args.ray_workers!r}")
    if args.from_json:
        result = json.loads(args.from_json.read_text())
        result.setdefault("part_size", None)
        result.setdefault("load_1m_end", None)  # a run stopped part-way: the workloads it finished
        result["estimate"] = estimate(result["workloads"])
        print(format_report(result))
        return 0
    result = run(args.reports, args.student_reports, args.repeats, args.part_size, args.dicom,
                 _names(args.only), args.archive_copies, args.json, kinds, [int(w) for w in workers])
    print(format_report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

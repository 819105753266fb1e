"""Label reports and score DICOM files on a Ray cluster (optional extra: `pip install "radedge[ray]"`).

Two kinds of entry point:

- Composable steps for a user's own Ray Data pipeline: `label_reports(ds)` takes a Dataset with a
  text column and `score_dicoms(ds)` one from `ray.data.read_binary_files(..., include_paths=True)`;
  each returns a Dataset of output rows. They run as an actor pool (`map_batches` with a callable
  class), so every actor loads and sha256-verifies its model once and then labels batch after batch
  with the same per-batch functions as one machine (`pipelines.reports.label_batch`,
  `pipelines.dicoms.score_files`): the same records, a bad item its own error row.
- `label_to_parquet` / `score_to_parquet`: what `--engine ray` runs. The input is cut into
  deterministic blocks (BLOCK reports or DICOM_BLOCK files, in input / walk order); block *i* is
  written to `OUTDIR/part-<i>.parquet` through a temporary file and a rename, so a finished block
  is complete or absent. A rerun skips the blocks already written: a job killed at any moment and
  run again ends with every item exactly once. `OUTDIR/_radedge.json` records the input, the model
  (name and sha256) and the options; a rerun with other ones is refused.

Nothing here is imported unless asked: `import ray` happens inside these functions.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import pickle
import warnings
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..images.dicom import DEFAULT_MAX_PIXELS
from ..labels import FINDINGS

BLOCK = 4096  # reports per output part
DICOM_BLOCK = 256  # DICOM files per output part
WINDOW = 8  # blocks handed to Ray at a time: bounds the driver's memory whatever the input size
META = "_radedge.json"
PAYLOAD = "payload"  # the CLI's rows: a pickled (id, report) pair, so bytes and reader errors travel intact
# Ray's own INFO lines would bury the summary: read by ray.data's logging set-up and Ray's C++ core.
# (The core then prints one line saying it read RAY_BACKEND_LOG_LEVEL; without it, it prints an error
# line per actor about constructor arguments in the object store, which is worse.)
os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


# ---- composable steps ---------------------------------------------------------------------------
class _ReportActor:
    """One actor: a loaded ReportLabeler; batches of rows in, JSONL-shaped records out."""

    def __init__(self, model: str, text_column: str, id_column: str | None, batch_size: int,
                 threads: int | None, sections: str) -> None:
        from ..reports.labeler import ReportLabeler
        from .reports import ReportSink

        self.labeler = ReportLabeler.load(model, threads=threads, batch_size=batch_size, sections=sections)
        self.sink = ReportSink(".jsonl")
        self.text_column, self.id_column = text_column, id_column

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from .reports import label_batch

        if PAYLOAD in batch:
            pairs = [pickle.loads(p) for p in batch[PAYLOAD]]
            ids, reports = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            reports = list(batch[self.text_column])
            ids = list(batch[self.id_column]) if self.id_column else list(range(len(reports)))
        records, _ = label_batch(self.labeler, reports, ids, self.sink)
        return _columns(records, _passthrough(batch, {PAYLOAD, self.text_column}), REPORT_FIELDS)


class _DicomActor:
    """One actor: a loaded ImageScorer; rows of (path, bytes) in, one score record each out."""

    def __init__(self, model: str, views: str | None, batch_size: int, threads: int | None,
                 max_pixels: int | None, reduced: bool) -> None:
        from ..images.scorer import ImageScorer

        self.scorer = ImageScorer.load(model, threads=threads, batch_size=batch_size, views=views,
                                       max_pixels=max_pixels, reduced=reduced)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from .dicoms import score_files

        names = [str(p) for p in batch["path"]]
        if "bytes" in batch:  # the reader is path-based (it sniffs, caps, checks): spool each file privately
            with tempfile.TemporaryDirectory(prefix="radedge-") as tmp:
                paths = []
                for i, data in enumerate(batch["bytes"]):
                    paths.append(os.path.join(tmp, f"{i}.dcm"))
                    Path(paths[-1]).write_bytes(data)
                records = score_files(self.scorer, paths, names)
        else:  # `file`: where to read (shared storage), `path`: what to record
            records = score_files(self.scorer, [str(f) for f in batch.get("file", names)], names)
        return _columns(records, _passthrough(batch, {"bytes", "path", "file"}), IMAGE_FIELDS)


def label_reports(ds: Any, model: str = "default", *, text_column: str = "text", id_column: str | None = None,
                  num_workers: int | None = None, batch_size: int = 256, threads: int | None = 1,
                  sections: str = "findings,impression") -> Any:
    """Dataset with a text column -> Dataset of label rows (id, labels, probs, rates, error and any
    other JSONL field), one per input row, other input columns kept. An actor pool of `num_workers`
    actors (default: Ray's autoscaling choice) each loads `model` once (a name on every node's search
    path, or a folder on shared storage) and verifies its sha256."""
    return ds.map_batches(_ReportActor, batch_format="numpy", batch_size=batch_size, compute=_pool(num_workers),
                          num_cpus=threads or 1,
                          fn_constructor_kwargs={"model": str(model), "text_column": text_column,
                                                 "id_column": id_column, "batch_size": 32, "threads": threads,
                                                 "sections": sections})


def score_dicoms(ds: Any, model: str = "default", *, views: str | None = "PA,AP", num_workers: int | None = None,
                 batch_size: int = 8, threads: int | None = 1, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 reduced: bool = True) -> Any:
    """Dataset of DICOM files (`path` and `bytes` columns, as `ray.data.read_binary_files(...,
    include_paths=True)` gives; or `path` alone for files on shared storage) -> Dataset of score rows
    (path, status, UIDs, probabilities, labels, reason, error_type), one per file."""
    return ds.map_batches(_DicomActor, batch_format="numpy", batch_size=batch_size, compute=_pool(num_workers),
                          num_cpus=threads or 1,
                          fn_constructor_kwargs={"model": str(model), "views": views, "batch_size": batch_size,
                                                 "threads": threads, "max_pixels": max_pixels, "reduced": reduced})


# ---- output rows ----------------------------------------------------------------------------------
REPORT_FIELDS = {"id": "text", "labels": "findings", "probs": "class_probs", "rates": "findings", "error": "text"}
IMAGE_FIELDS = {"path": "text", "status": "text", "study_uid": "text", "series_uid": "text", "sop_uid": "text",
                "probabilities": "findings", "labels": "findings", "reason": "text", "error_type": "text"}


def _schema(fields: dict[str, str], extra: Sequence[str] = ()) -> Any:
    """Fixed Arrow types, so every part of a dataset has one schema (an all-null column stays typed):
    findings as a struct of 14 float64 (null = not mentioned / not available), report class
    probabilities as a struct of 14 lists of 4; any other record field (for example `evidence`) as
    JSON text."""
    import pyarrow as pa

    findings = pa.struct([pa.field(f, pa.float64()) for f in FINDINGS])
    class_probs = pa.struct([pa.field(f, pa.list_(pa.float64())) for f in FINDINGS])
    types = {"text": pa.string(), "findings": findings, "class_probs": class_probs}
    return pa.schema([pa.field(name, types[kind]) for name, kind in fields.items()]
                     + [pa.field(name, pa.string()) for name in extra])


def _cell(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "findings":
        return {f: (None if value.get(f) is None else float(value[f])) for f in FINDINGS}
    if kind == "class_probs":
        return {f: [float(p) for p in value[f]] for f in FINDINGS}
    if kind == "text":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    raise ValueError(f"unknown field kind {kind!r}")


def _columns(records: list[dict[str, Any]], kept: dict[str, list[Any]], fields: dict[str, str]) -> dict[str, Any]:
    """Records -> column lists: known fields typed as in `_schema`, other fields as JSON text."""
    extra = sorted({k for r in records for k in r} - set(fields))
    out: dict[str, Any] = dict(kept)
    for name, kind in fields.items():
        out[name] = [_cell(kind, r.get(name)) for r in records]
    for name in extra:
        out[name] = [None if r.get(name) is None else json.dumps(r[name], ensure_ascii=False) for r in records]
    return out


def _passthrough(batch: dict[str, Any], drop: set[str]) -> dict[str, list[Any]]:
    return {k: list(v) for k, v in batch.items() if k not in drop}


def _pool(num_workers: int | None) -> Any:
    """A fixed pool of `num_workers` actors, or Ray's autoscaling pool (1 to one per CPU)."""
    import ray

    if num_workers:
        return ray.data.ActorPoolStrategy(size=num_workers)
    return ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, int(ray.cluster_resources().get("CPU", 1))))


# ---- exactly-once runs into a Parquet dataset ----------------------------------------------------
@dataclass
class ClusterSummary:
    """What a run did: items (and failed items) written now; items (and failures) in the parts an
    earlier run had written; blocks written now and skipped as already written."""

    written: int = 0
    failed: int = 0
    resumed: int = 0
    earlier_failed: int = 0
    blocks_done_before: int = 0
    blocks_written: int = 0
    seconds: float = 0.0

    @property
    def total_failed(self) -> int:
        return self.failed + self.earlier_failed

    def line(self, unit: str) -> str:
        again = f", {self.resumed} already in the output" if self.resumed else ""
        return f"wrote {self.written} {unit} ({self.failed} failed{again}) in {self.blocks_written} parts"


def init(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to a cluster at `address`, or start a local Ray limited to this machine's CPUs
    (bounded object store, no dashboard)."""
    import ray

    if ray.is_initialized():
        return
    quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
    if address:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=512 * 1024 ** 2, **quiet)
    warnings.filterwarnings("ignore", module=r"ray\.")  # pool-sizing hints, not the user's concern
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # rows come back in input order: blocks complete in turn
    ctx.enable_progress_bars = False


def _check_meta(outdir: Path, meta: dict[str, Any], overwrite: bool) -> set[int]:
    """Create OUTDIR or check it belongs to this run; the block numbers already written."""
    path = outdir / META
    _remove_stale_temporaries(outdir, everything=overwrite)
    if overwrite and outdir.exists():
        for old in outdir.glob("part-*.parquet"):
            old.unlink()
        path.unlink(missing_ok=True)
    if path.exists():
        before = json.loads(path.read_text(encoding="utf-8"))
        if before != meta:
            changed = sorted(k for k in meta.keys() | before.keys() if meta.get(k) != before.get(k))
            raise ValueError(f"{outdir}: made by another run (differs in {', '.join(changed)}); "
                             f"use --overwrite or another output folder")
    else:
        if outdir.exists() and any(outdir.iterdir()):
            raise ValueError(f"{outdir}: not empty and not a radedge output folder")
        outdir.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: f.write(json.dumps(meta, indent=1, sort_keys=True).encode()))
    return {int(p.stem.split("-")[1]) for p in outdir.glob("part-*.parquet")}


def _remove_stale_temporaries(outdir: Path, everything: bool) -> None:
    """Delete the `.part-*.tmp` files a killed run left (named by the writer's pid): those of processes
    no longer running, or all of them with `everything` (--overwrite). A live writer's file is kept,
    so a second job on the same folder does not break the first one's rename."""
    for tmp in outdir.glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if everything or not pid.isdigit() or not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _earlier(outdir: Path, summary: ClusterSummary) -> None:
    """Count the rows and failures of the parts already written (two columns read, not the rows)."""
    import pyarrow.parquet as pq

    for part in outdir.glob("part-*.parquet"):
        names = pq.read_schema(part).names
        table = pq.read_table(part, columns=[c for c in ("error", "status") if c in names])
        summary.resumed += table.num_rows
        summary.earlier_failed += sum(1 for row in table.to_pylist() if _is_failure(row))


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_part(outdir: Path, block: int, rows: list[dict[str, Any]], schema: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(rows, schema=schema)
    _atomic_write(outdir / f"part-{block:06d}.parquet", lambda f: pq.write_table(table, f))


def _run_blocks(outdir: Path, blocks: Iterator[tuple[int, list[Any]]], done: set[int],
                to_dataset: Callable[[list[tuple[int, list[Any]]]], Any], schema_of: Callable[[list[dict]], Any],
                finish: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], summary: ClusterSummary,
                progress: Callable[[int], None] | None) -> None:
    """Hand WINDOW pending blocks at a time to Ray; write each block's part as soon as its rows are in."""
    pending = _pending(blocks, done, summary)
    while window := list(itertools.islice(pending, WINDOW)):
        sizes = {i: len(items) for i, items in window}
        rows_of: dict[int, list[dict[str, Any]]] = {i: [] for i in sizes}
        for batch in to_dataset(window).iter_batches(batch_format="pyarrow", batch_size=None):
            for row in batch.to_pylist():
                block = row.pop("_block")
                rows_of[block].append(row)
                if len(rows_of[block]) == sizes[block]:
                    rows = finish(sorted(rows_of.pop(block), key=lambda r: r.pop("_seq")))
                    _write_part(outdir, block, rows, schema_of(rows))
                    summary.blocks_written += 1
                    summary.written += len(rows)
                    summary.failed += sum(1 for r in rows if _is_failure(r))
                    if progress is not None:
                        progress(len(rows))
        if rows_of:  # a block Ray returned short: never write a partial part
            raise RuntimeError(f"blocks {sorted(rows_of)} came back incomplete from Ray")
    if not done and not summary.blocks_written and not summary.blocks_done_before:
        # an empty input: one empty part, so the dataset still reads as a table with its columns
        _write_part(outdir, 0, [], schema_of([]))


def _pending(blocks: Iterator[tuple[int, list[Any]]], done: set[int],
             summary: ClusterSummary) -> Iterator[tuple[int, list[Any]]]:
    for block, items in blocks:
        if block in done:
            summary.blocks_done_before += 1
        else:
            yield block, items


def _is_failure(row: dict[str, Any]) -> bool:
    return bool(row.get("error")) or row.get("status") == "error"


def _numbered(items: Iterable[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    it = iter(items)
    for block in itertools.count():
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield block, chunk


def label_to_parquet(input_path: str | os.PathLike, outdir: str | os.PathLike, model: str = "default", *,
                     fmt: str = "auto", options: Any = None, sections: str = "findings,impression",
                     address: str | None = None,
                     num_workers: int | None = None, threads: int | None = 1, batch_size: int = 32,
                     block_size: int = BLOCK, overwrite: bool = False,
                     progress: Callable[[int], None] | None = None) -> ClusterSummary:
    """Label every report of `input_path` into the Parquet dataset `outdir` on Ray, exactly once
    (see the module docstring); what `radedge label-reports --engine ray` runs."""
    import time

    import ray

    from ..io.readers import ReaderOptions, read_reports
    from ..reports.labeler import ReportLabeler

    started = time.perf_counter()
    options = options or ReaderOptions()
    reports = read_reports(input_path, fmt, options)  # input problems raise here, before Ray starts
    identity = model_identity(ReportLabeler.load(model, batch_size=batch_size))  # verified here first
    meta = {"kind": "reports", "input": str(Path(input_path).resolve()), "format": fmt, "options": asdict(options),
            "sections": sections, "model": identity, "block_size": block_size}
    outdir = Path(outdir)
    done = _check_meta(outdir, meta, overwrite)
    init(address)
    model_ref = _model_ref(model)

    def to_dataset(window: list[tuple[int, list[Any]]]) -> Any:
        rows = [{"_block": block, "_seq": seq, PAYLOAD: pickle.dumps(pair)}
                for block, pairs in window for seq, pair in enumerate(pairs)]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // 256, 64)))
        return label_reports(ds, model_ref, num_workers=num_workers or _cluster_cpus(threads),
                             batch_size=256, threads=threads, sections=sections)

    summary = ClusterSummary()
    _earlier(outdir, summary)
    _run_blocks(outdir, _numbered(reports, block_size), done, to_dataset,
                lambda rows: _schema(REPORT_FIELDS, _extras(rows, REPORT_FIELDS)), lambda rows: rows,
                summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


def score_to_parquet(folder: str | os.PathLike, outdir: str | os.PathLike, model: str = "default", *,
                     views: str | None = "PA,AP", address: str | None = None, num_workers: int | None = None,
                     threads: int | None = 1, batch_size: int = 8, block_size: int = DICOM_BLOCK,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS, reduced: bool = True,
                     overwrite: bool = False, progress: Callable[[int], None] | None = None) -> ClusterSummary:
    """Score every file under `folder` into the Parquet dataset `outdir` on Ray, exactly once; a
    second path holding an already-scored SOP Instance UID is recorded as a duplicate skip, as on
    one machine. What `radedge score-dicoms --engine ray` runs."""
    import time

    import ray

    from ..images.scorer import ImageScorer
    from ..images.walk import walk_files

    started = time.perf_counter()
    folder, outdir = Path(folder), Path(outdir)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    if outdir.resolve() == folder.resolve() or folder.resolve() in outdir.resolve().parents:
        raise ValueError(f"{outdir}: the output must not be inside the scanned folder {folder}")
    identity = model_identity(ImageScorer.load(model, batch_size=batch_size, views=views))
    meta = {"kind": "dicoms", "input": str(folder.resolve()), "views": views, "model": identity,
            "block_size": block_size, "max_pixels": max_pixels, "reduced": reduced}
    done = _check_meta(outdir, meta, overwrite)
    scored_sops = _scored_sops(outdir)
    init(address)
    model_ref = _model_ref(model)
    files = ((path.relative_to(folder).as_posix(), str(path)) for path in walk_files(folder))

    def to_dataset(window: list[tuple[int, list[Any]]]) -> Any:
        # Paths, not bytes: each actor reads its own files (shared storage on a cluster), so no
        # read task competes with the actors for CPUs, and only one file per actor is in memory.
        rows = [{"_block": block, "_seq": seq, "path": name, "file": full}
                for block, items in window for seq, (name, full) in enumerate(items)]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // 16, 64)))
        return score_dicoms(ds, model_ref, views=views, num_workers=num_workers or _cluster_cpus(threads),
                            batch_size=batch_size, threads=threads, max_pixels=max_pixels, reduced=reduced)

    def finish(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for row in rows:
            _deduplicate(row, scored_sops)
        return rows

    summary = ClusterSummary()
    _earlier(outdir, summary)
    _run_blocks(outdir, _numbered(files, block_size), done, to_dataset,
                lambda rows: _schema(IMAGE_FIELDS, _extras(rows, IMAGE_FIELDS)), finish, summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _deduplicate(row: dict[str, Any], scored_sops: dict[str, str]) -> None:
    """The single-machine rule: the first path in walk order that scores a SOP Instance UID keeps it."""
    sop = row.get("sop_uid")
    if row.get("status") != "scored" or not sop:
        return
    first = scored_sops.setdefault(sop, row["path"])
    if first != row["path"]:
        row.update(status="skipped", probabilities=None, labels=None, error_type="SkippedInput",
                   reason=f"duplicate SOP Instance UID (already scored as {first})")


def _scored_sops(outdir: Path) -> dict[str, str]:
    """SOP Instance UID -> path, from the parts already written (only those columns are read)."""
    import pyarrow.parquet as pq

    seen: dict[str, str] = {}
    for part in sorted(outdir.glob("part-*.parquet")):
        table = pq.read_table(part, columns=["path", "status", "sop_uid"])
        for row in table.to_pylist():
            if row["status"] == "scored" and row["sop_uid"]:
                seen.setdefault(row["sop_uid"], row["path"])
    return seen


def _extras(rows: list[dict[str, Any]], fields: dict[str, str]) -> list[str]:
    return sorted({k for r in rows for k in r} - set(fields))


def _cluster_cpus(threads: int | None) -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)) // (threads or 1))


def _model_ref(model: str | os.PathLike) -> str:
    """What workers load: a folder path made absolute (it must be on shared storage), else the name."""
    path = Path(model)
    return str(path.resolve()) if path.is_dir() else str(model)


def model_identity(labeler_or_scorer: Any) -> dict[str, Any]:
    """Name and model.onnx sha256 of a loaded labeler / scorer (`rules` has no file: sha256 None)."""
    from ..manifest import Manifest

    path = getattr(labeler_or_scorer, "path", None) or getattr(getattr(labeler_or_scorer, "model", None), "path", None)
    if path is None:
        return {"name": getattr(labeler_or_scorer, "name", "rules"), "sha256": None}
    manifest = Manifest.read(path)
    return {"name": manifest.name, "sha256": manifest.files.get("model.onnx")}


__all__ = ["BLOCK", "ClusterSummary", "DICOM_BLOCK", "init", "label_reports", "label_to_parquet", "model_identity",
           "score_dicoms", "score_to_parquet"]

"""Label reports and score DICOM files on a Ray cluster (optional extra: `pip install "radedge[ray]"`).

Two kinds of entry point:

- Composable steps for a user's own Ray Data pipeline: `label_reports(ds)` takes a Dataset with a
  text column and `score_dicoms(ds)` one from `ray.data.read_binary_files(..., include_paths=True)`;
  each returns a Dataset of output rows. They run as an actor pool (`map_batches` with a callable
  class), so every actor loads and sha256-verifies its model once and then labels batch after batch
  with the same per-batch functions as one machine (`pipelines.reports.label_batch`,
  `pipelines.dicoms.score_files`): the same records, a bad item its own error row. With
  `packed=True` each batch's rows come back as one row (Arrow IPC bytes; `unpack` reads them).
- `label_to_parquet` / `score_to_parquet`: what `--engine ray` runs. The input is cut into
  deterministic blocks (BLOCK reports or DICOM_BLOCK files, in input / walk order); block *i* is
  written to `OUTDIR/part-<i>.parquet` through a temporary file and a rename, so a finished block
  is complete or absent. A rerun skips the blocks already written: a job killed at any moment and
  run again ends with every item exactly once. `OUTDIR/_radedge.json` records the input, the model
  (name and sha256) and the options; a rerun with other ones is refused.
  The whole job is one Dataset, so one actor pool (one model load per actor) serves it: a reader
  task on the driver's node streams the input (the pending blocks, cut into batches of rows that
  carry their block number), the actors label the batches (packed: one row per batch), and the
  driver writes each block's part as soon as its last row is back (rows come back in input order,
  so few blocks are open).

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
REPORT_BATCH = 256  # reports per actor call in a job: small enough to spread a part over the actors
TAGS = ("_block", "_seq", "_size")  # per row of a job: its block, its place in the block, the block's size
META = "_radedge.json"
PAYLOAD = "payload"  # the CLI's rows: a pickled (id, report) pair, so bytes and reader errors travel intact
PACKED = "rows"  # packed output: one row per actor call, the call's output table as Arrow IPC stream bytes
# Ray's own INFO lines would bury the summary: read by ray.data's logging set-up and Ray's C++ core.
# (The core then prints one line saying it read RAY_BACKEND_LOG_LEVEL; without it, it prints an error
# line per actor about constructor arguments in the object store, which is worse.)
os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")


# ---- composable steps ---------------------------------------------------------------------------
class _ReportActor:
    """One actor: a loaded ReportLabeler; Arrow batches of rows in, typed label rows out."""

    def __init__(self, model: str, text_column: str, id_column: str | None, batch_size: int,
                 threads: int | None, sections: str, packed: bool = False) -> None:
        from ..reports.labeler import ReportLabeler
        from .reports import ReportSink

        self.labeler = ReportLabeler.load(model, threads=threads, batch_size=batch_size, sections=sections)
        self.sink = ReportSink(".jsonl")
        self.text_column, self.id_column, self.packed = text_column, id_column, packed

    def __call__(self, batch: Any) -> Any:
        from .reports import label_batch

        if PAYLOAD in batch.column_names:
            pairs = [pickle.loads(p) for p in batch.column(PAYLOAD).to_pylist()]
            ids, reports = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            reports = batch.column(self.text_column).to_pylist()
            ids = batch.column(self.id_column).to_pylist() if self.id_column else list(range(len(reports)))
        records, _ = label_batch(self.labeler, reports, ids, self.sink)
        return _output(_table(records, batch, {PAYLOAD, self.text_column}, REPORT_FIELDS), self.packed)


class _DicomActor:
    """One actor: a loaded ImageScorer; Arrow batches of (path, bytes or file) in, one score row each out."""

    def __init__(self, model: str, views: str | None, batch_size: int, threads: int | None,
                 max_pixels: int | None, reduced: bool, packed: bool = False) -> None:
        from ..images.scorer import ImageScorer
        from .workers import decoding_process

        decoding_process(threads or 1)  # as a decoding worker of one machine, on the actor's own cores
        self.scorer = ImageScorer.load(model, threads=threads, batch_size=batch_size, views=views,
                                       max_pixels=max_pixels, reduced=reduced)
        self.packed = packed

    def __call__(self, batch: Any) -> Any:
        from .dicoms import score_files

        names = [str(p) for p in batch.column("path").to_pylist()]
        if "bytes" in batch.column_names:  # the reader is path-based (it sniffs, caps, checks): spool each file
            with tempfile.TemporaryDirectory(prefix="radedge-") as tmp:
                paths = []
                for i, data in enumerate(batch.column("bytes").to_pylist()):
                    paths.append(os.path.join(tmp, f"{i}.dcm"))
                    Path(paths[-1]).write_bytes(data)
                records = score_files(self.scorer, paths, names)
        else:  # `file`: where to read (shared storage), `path`: what to record
            files = batch.column("file").to_pylist() if "file" in batch.column_names else names
            records = score_files(self.scorer, [str(f) for f in files], names)
        return _output(_table(records, batch, {"bytes", "path", "file"}, IMAGE_FIELDS), self.packed)


def label_reports(ds: Any, model: str = "default", *, text_column: str = "text", id_column: str | None = None,
                  num_workers: int | None = None, batch_size: int = 256, threads: int | None = 1,
                  sections: str = "findings,impression", packed: bool = False) -> Any:
    """Dataset with a text column -> Dataset of label rows (id, labels, probs, rates, error and any
    other JSONL field), one per input row, other input columns kept. An actor pool of `num_workers`
    actors (default: Ray's autoscaling choice) each loads `model` once (a name on every node's search
    path, or a folder on shared storage) and verifies its sha256. `packed`: one row per batch instead
    (see `unpack`)."""
    return ds.map_batches(_ReportActor, batch_format="pyarrow", batch_size=batch_size, compute=_pool(num_workers),
                          num_cpus=threads or 1,
                          fn_constructor_kwargs={"model": str(model), "text_column": text_column,
                                                 "id_column": id_column, "batch_size": 32, "threads": threads,
                                                 "sections": sections, "packed": packed})


def score_dicoms(ds: Any, model: str = "default", *, views: str | None = "PA,AP", num_workers: int | None = None,
                 batch_size: int = 8, threads: int | None = 1, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 reduced: bool = True, packed: bool = False) -> Any:
    """Dataset of DICOM files (`path` and `bytes` columns, as `ray.data.read_binary_files(...,
    include_paths=True)` gives; or `path` alone for files on shared storage) -> Dataset of score rows
    (path, status, UIDs, probabilities, labels, reason, error_type), one per file; `packed`: one row
    per batch instead (see `unpack`)."""
    return ds.map_batches(_DicomActor, batch_format="pyarrow", batch_size=batch_size, compute=_pool(num_workers),
                          num_cpus=threads or 1,
                          fn_constructor_kwargs={"model": str(model), "views": views, "batch_size": batch_size,
                                                 "threads": threads, "max_pixels": max_pixels, "reduced": reduced,
                                                 "packed": packed})


def unpack(table: Any) -> Any:
    """A table of packed rows (`packed=True`: column `rows`) -> the output rows they hold, in order."""
    import pyarrow as pa

    tables = [pa.ipc.open_stream(data).read_all() for data in table.column(PACKED).to_pylist()]
    if not tables:
        raise ValueError("no packed rows to unpack (the schema travels inside them)")
    return pa.concat_tables(tables, promote_options="default")


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


def _table(records: list[dict[str, Any]], batch: Any, drop: set[str], fields: dict[str, str]) -> Any:
    """Records -> an Arrow table: the batch's other columns as they came (zero-copy), then the known
    fields typed as in `_schema` and any other record field as JSON text. Built here, in the actor,
    so the driver receives typed Arrow columns and never converts rows through Python."""
    import pyarrow as pa

    extra = _extras(records, fields)
    cols: dict[str, list[Any]] = {name: [_cell(kind, r.get(name)) for r in records] for name, kind in fields.items()}
    for name in extra:
        cols[name] = [None if r.get(name) is None else json.dumps(r[name], ensure_ascii=False) for r in records]
    out = pa.Table.from_pydict(cols, schema=_schema(fields, extra))
    kept = [name for name in batch.column_names if name not in drop and name not in cols]
    return pa.Table.from_arrays([batch.column(n) for n in kept] + out.columns,
                                schema=pa.schema([batch.schema.field(n) for n in kept] + list(out.schema)))


def _output(table: Any, packed: bool) -> Any:
    """An actor call's output: its table, or (packed) one row holding the table as Arrow IPC bytes.
    Packed, a call yields one block whatever its rows' size. Unpacked, Ray Data cuts a call's output
    into blocks of the job's target block size (set small for the job's small input rows, see
    `_job_source`), and an actor task may run only two blocks ahead of the driver (its streaming
    generator's backpressure), so it waits on the driver for every further one: a job's 172 DICOM
    files came back as 65 blocks from 23 calls, and the actors sat idle between calls for about a
    quarter of their time."""
    import pyarrow as pa

    if not packed:
        return table
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return pa.table({PACKED: pa.array([sink.getvalue().to_pybytes()], pa.large_binary())})


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
        summary.earlier_failed += _failures(table)


def _failures(table: Any) -> int:
    """Rows of an output table that are failures: an error text, or status "error"."""
    cols = [c for c in ("error", "status") if c in table.column_names]
    return sum(1 for row in table.select(cols).to_pylist() if _is_failure(row))


def _atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_part(outdir: Path, block: int, table: Any) -> None:
    import pyarrow.parquet as pq

    _atomic_write(outdir / f"part-{block:06d}.parquet", lambda f: pq.write_table(table, f))


def _job_rows(_: Any, *, rows: Callable[..., Iterable[dict[str, Any]]], args: tuple[Any, ...], types: dict[str, str],
              block_size: int, done: frozenset[int], chunk: int) -> Iterator[Any]:
    """The reader of a job (one Ray task on the driver's node): `rows(*args)` cut into numbered
    blocks of `block_size`, the blocks not in `done` handed on as Arrow batches of `chunk` rows,
    each row tagged with its block, its place in it and the block's size. A generator, so Ray
    streams it with backpressure: the input is never held whole, whatever its size."""
    import pyarrow as pa

    schema = pa.schema([(name, pa.int64()) for name in TAGS] + [(n, getattr(pa, t)()) for n, t in types.items()])
    for block, items in _numbered(rows(*args), block_size):
        if block in done:
            continue
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            cols: dict[str, list[Any]] = {"_block": [block] * len(part), "_seq": list(range(start, start + len(part))),
                                          "_size": [len(items)] * len(part)}
            cols.update({n: [item[n] for item in part] for n in types})
            yield pa.Table.from_pydict(cols, schema=schema)


def _report_rows(input_path: str, fmt: str, options: Any) -> Iterator[dict[str, Any]]:
    """A job's reports: each (id, report) pair pickled, so bytes, int ids and reader errors travel intact."""
    from ..io.readers import read_reports

    for pair in read_reports(input_path, fmt, options):
        yield {PAYLOAD: pickle.dumps(pair)}


def _dicom_rows(folder: str) -> Iterator[dict[str, Any]]:
    """A job's files in walk order: `path` as recorded (relative to the folder), `file` where to read."""
    from ..images.walk import walk_files

    root = Path(folder)
    for path in walk_files(root):
        yield {"path": path.relative_to(root).as_posix(), "file": str(path)}


def _job_source(rows: Callable[..., Iterable[dict[str, Any]]], args: tuple[Any, ...], types: dict[str, str],
                block_size: int, done: set[int], chunk: int, row_bytes: int) -> Any:
    """The job's input as one Dataset, read by one task pinned to the driver's node (the input is on
    the driver's storage) that reserves no CPU (the actors get them all). Ray merges small blocks up
    to the dataset's target block size before an actor gets one, and an actor call takes whole
    blocks: so the job's target is about one actor batch (`chunk` rows of about `row_bytes`), or a
    small input would be one block labelled by one actor while the others wait. Smaller blocks cost
    Ray's per-block overhead: with 64 KiB report blocks `python -m benchmarks.cluster` measured the
    rule labeler (under 1 ms a report) at 1.53x the plain CLI, against 1.05x and 1.27x in two runs
    with 256 KiB ones; a DICOM file takes 50 ms and more, so its blocks hold a few files. The target
    applies to every step of the job, so the actors' output is packed (`_output`) to escape it."""
    import ray

    here = ray.get_runtime_context().get_node_id()  # the node label Ray's own local-file reads pin to
    ctx = ray.data.DataContext.get_current()
    before = ctx.target_max_block_size
    ctx.target_max_block_size = chunk * row_bytes  # sealed into the job's datasets when created
    try:
        start = ray.data.from_items([{"job": 0}])
    finally:
        ctx.target_max_block_size = before
    return start.map_batches(_job_rows, batch_size=None, batch_format="pyarrow", num_cpus=0,
                             label_selector={"ray.io/node-id": here},
                             fn_kwargs={"rows": rows, "args": args, "types": types, "block_size": block_size,
                                        "done": frozenset(done), "chunk": chunk})


def _run_job(outdir: Path, ds: Any, finish: Callable[[Any], Any], empty_schema: Any, summary: ClusterSummary,
             progress: Callable[[int], None] | None) -> None:
    """Consume the job's output Dataset (rows in input order) and write each block's part as soon as
    its last row is in; a block Ray returned short is never written."""
    import pyarrow as pa

    open_blocks: dict[int, list[Any]] = {}
    sizes: dict[int, int] = {}
    for packed in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        if not packed.num_rows:
            continue
        batch = unpack(packed)
        blocks = batch.column("_block").to_pylist()
        start = 0
        for i in range(1, len(blocks) + 1):  # split the batch where the block number changes
            if i < len(blocks) and blocks[i] == blocks[start]:
                continue
            block = blocks[start]
            piece = batch.slice(start, i - start)
            open_blocks.setdefault(block, []).append(piece)
            sizes[block] = piece.column("_size")[0].as_py()
            start = i
            if sum(t.num_rows for t in open_blocks[block]) == sizes[block]:
                table = pa.concat_tables(open_blocks.pop(block), promote_options="default").sort_by("_seq")
                table = finish(table.drop_columns(list(TAGS)))
                _write_part(outdir, block, table)
                summary.blocks_written += 1
                summary.written += table.num_rows
                summary.failed += _failures(table)
                if progress is not None:
                    progress(table.num_rows)
    if open_blocks:
        raise RuntimeError(f"blocks {sorted(open_blocks)} came back incomplete from Ray")
    if not summary.blocks_written and not summary.blocks_done_before:
        # an empty input: one empty part, so the dataset still reads as a table with its columns
        _write_part(outdir, 0, empty_schema.empty_table())


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

    from ..io.readers import ReaderOptions, read_reports
    from ..reports.labeler import ReportLabeler

    started = time.perf_counter()
    options = options or ReaderOptions()
    read_reports(input_path, fmt, options)  # input problems raise here, before Ray starts
    identity = model_identity(ReportLabeler.load(model, batch_size=batch_size))  # verified here first
    meta = {"kind": "reports", "input": str(Path(input_path).resolve()), "format": fmt, "options": asdict(options),
            "sections": sections, "model": identity, "block_size": block_size}
    outdir = Path(outdir)
    done = _check_meta(outdir, meta, overwrite)
    init(address)
    summary = ClusterSummary(blocks_done_before=len(done))
    _earlier(outdir, summary)
    source = _job_source(_report_rows, (str(Path(input_path).resolve()), fmt, options), {PAYLOAD: "binary"},
                         block_size, done, REPORT_BATCH, row_bytes=1024)
    ds = label_reports(source, _model_ref(model), num_workers=num_workers or _cluster_cpus(threads),
                       batch_size=REPORT_BATCH, threads=threads, sections=sections, packed=True)
    _run_job(outdir, ds, lambda table: table, _schema(REPORT_FIELDS), summary, progress)
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

    from ..images.scorer import ImageScorer

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
    summary = ClusterSummary(blocks_done_before=len(done))
    _earlier(outdir, summary)
    # Paths, not bytes: each actor reads its own files (shared storage on a cluster), so only the
    # files of one batch per actor are in memory.
    source = _job_source(_dicom_rows, (str(folder.resolve()),), {"path": "string", "file": "string"},
                         block_size, done, batch_size, row_bytes=128)
    ds = score_dicoms(source, _model_ref(model), views=views, num_workers=num_workers or _cluster_cpus(threads),
                      batch_size=batch_size, threads=threads, max_pixels=max_pixels, reduced=reduced, packed=True)
    _run_job(outdir, ds, lambda table: _deduplicate(table, scored_sops), _schema(IMAGE_FIELDS), summary, progress)
    summary.seconds = time.perf_counter() - started
    return summary


def _deduplicate(table: Any, scored_sops: dict[str, str]) -> Any:
    """The single-machine rule: the first path in walk order that scores a SOP Instance UID keeps it;
    a later one becomes a skip naming it (only three columns are read unless one is found)."""
    import pyarrow as pa

    firsts = _first_paths(table, scored_sops)
    if not firsts:
        return table
    rows = table.to_pylist()
    for i, first in firsts.items():
        rows[i].update(status="skipped", probabilities=None, labels=None, error_type="SkippedInput",
                       reason=f"duplicate SOP Instance UID (already scored as {first})")
    return pa.Table.from_pylist(rows, schema=table.schema)


def _first_paths(table: Any, scored_sops: dict[str, str]) -> dict[int, str]:
    """Record each scored row's SOP Instance UID in `scored_sops` (SOP UID -> the first path that
    scored it); the rows whose UID an earlier path holds, with that path."""
    firsts = {}
    for i, row in enumerate(table.select(["path", "status", "sop_uid"]).to_pylist()):
        if row["status"] == "scored" and row["sop_uid"]:
            first = scored_sops.setdefault(row["sop_uid"], row["path"])
            if first != row["path"]:
                firsts[i] = first
    return firsts


def _scored_sops(outdir: Path) -> dict[str, str]:
    """SOP Instance UID -> path, from the parts already written (only those columns are read)."""
    import pyarrow.parquet as pq

    seen: dict[str, str] = {}
    for part in sorted(outdir.glob("part-*.parquet")):
        _first_paths(pq.read_table(part, columns=["path", "status", "sop_uid"]), seen)
    return seen


def _extras(rows: list[dict[str, Any]], fields: dict[str, str]) -> list[str]:
    """The record fields beyond the known ones (for example `evidence`), in a stable order."""
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
           "score_dicoms", "score_to_parquet", "unpack"]

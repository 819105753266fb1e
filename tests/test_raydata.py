"""--engine ray: the same records as one machine, exactly once across a kill, runs refused that
would mix inputs or models. A local Ray limited to this machine's CPUs (started once per module)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.paths import need_data

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")
pq = pytest.importorskip("pyarrow.parquet")

from radedge.pipelines import raydata  # noqa: E402
from radedge.pipelines.reports import label_file  # noqa: E402

pytestmark = pytest.mark.slow
RADEDGE = [sys.executable, "-c", "from radedge.cli import main; main()"]

REPORTS = ["No acute cardiopulmonary abnormality.", "Small left pleural effusion.",
           "No pneumothorax. Possible right lower lobe pneumonia.", "", "Cardiomegaly with mild edema.",
           "Heart size normal. No effusion, no pneumothorax.", "ET tube in place. Bibasilar atelectasis."]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    raydata.init(num_cpus=2)
    yield
    ray.shutdown()


def _reports_csv(path: Path, n: int) -> Path:
    rows = [REPORTS[i % len(REPORTS)] + f" Case {i}." for i in range(n)]
    data = "\n".join(f'"{r}"' for r in rows).encode() + b"\n\"\xff\xfe not utf-8\"\n"
    path.write_bytes(data)
    return path


def _parts(outdir: Path) -> list[dict]:
    return [row for part in sorted(outdir.glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]


def test_reports_match_one_machine_and_bad_rows_are_error_rows(tmp_path: Path) -> None:
    src = _reports_csv(tmp_path / "in.csv", 40)
    summary = raydata.label_to_parquet(src, tmp_path / "out", "rules", block_size=16, num_workers=2)
    label_file(src, tmp_path / "one.jsonl", "rules")
    one = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    rows = _parts(tmp_path / "out")
    assert (summary.written, summary.failed, summary.blocks_written) == (41, 1, 3)
    assert [r["id"] for r in rows] == [str(r["id"]) for r in one]
    assert [r["labels"] for r in rows] == [r["labels"] for r in one]
    assert [r["error"] for r in rows] == [r["error"] for r in one]
    assert rows[-1]["error"].startswith("ReportDecodeError")


def test_rerun_skips_finished_blocks_and_refuses_another_model(tmp_path: Path) -> None:
    src = _reports_csv(tmp_path / "in.csv", 40)
    out = tmp_path / "out"
    raydata.label_to_parquet(src, out, "rules", block_size=16, num_workers=1)
    first = _parts(out)
    (out / "part-000001.parquet").unlink()  # as if the job died before block 1 was written
    again = raydata.label_to_parquet(src, out, "rules", block_size=16, num_workers=1)
    assert (again.blocks_done_before, again.blocks_written, again.written) == (2, 1, 16)
    assert _parts(out) == first
    with pytest.raises(ValueError, match="model"):
        raydata.label_to_parquet(src, out, "default", block_size=16)


def test_score_dicoms_match_one_machine(tmp_path: Path) -> None:
    from radedge.pipelines.dicoms import score_folder

    corpus = need_data("dicom", "pacs_export")
    summary = raydata.score_to_parquet(corpus, tmp_path / "out", block_size=4, num_workers=2)
    score_folder(corpus, tmp_path / "one.jsonl", workers=0)
    one = {r["path"]: r for r in map(json.loads, (tmp_path / "one.jsonl").read_text().splitlines())}
    rows = _parts(tmp_path / "out")
    assert summary.written == len(rows) == len(one)
    for row in rows:
        ref = one[row["path"]]
        assert (row["status"], row["sop_uid"], row["labels"]) == (
            ref["status"], ref["sop_uid"], ref.get("labels") and {k: None if v is None else float(v) for k, v in ref["labels"].items()})


def test_composable_step_on_binary_files(tmp_path: Path) -> None:
    files = sorted(str(p) for p in need_data("dicom", "pacs_export").rglob("*.dcm"))[:3]
    ds = ray.data.read_binary_files(files, include_paths=True)
    from radedge.images.scorer import ImageScorer
    from radedge.pipelines.dicoms import score_files

    rows = {r["path"]: r for r in raydata.score_dicoms(ds, num_workers=1).take_all()}
    one = score_files(ImageScorer.load(views="PA,AP"), files)
    assert [rows[r["path"]]["status"] for r in one] == [r["status"] for r in one]
    assert "scored" in {r["status"] for r in one}


def test_packed_step_gives_one_row_per_batch_and_the_same_rows(tmp_path: Path) -> None:
    ds = ray.data.from_items([{"id": f"r{i}", "text": t} for i, t in enumerate(REPORTS)])
    plain = raydata.label_reports(ds, "rules", id_column="id", num_workers=1, batch_size=3).take_all()
    packed = raydata.label_reports(ds, "rules", id_column="id", num_workers=1, batch_size=3, packed=True)
    tables = [raydata.unpack(b) for b in packed.iter_batches(batch_format="pyarrow", batch_size=None)]
    assert sum(t.num_rows for t in tables) == len(REPORTS) and packed.count() == 3  # 7 reports, batches of 3
    rows = [r for t in tables for r in t.to_pylist()]
    assert [(r["id"], r["labels"], r["error"]) for r in rows] == [(r["id"], r["labels"], r["error"]) for r in plain]


def test_killed_cli_run_completes_exactly_once(tmp_path: Path) -> None:
    """SIGKILL the CLI once its first part is written; the rerun fills the gap without duplicates."""
    src = _reports_csv(tmp_path / "in.csv", 300)
    out = tmp_path / "out"
    cmd = [*RADEDGE, "label-reports", str(src), "-o", str(out), "--model", "rules",
           "--engine", "ray", "--num-workers", "1", "--part-size", "32", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(out.glob("part-*.parquet")) and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr  # the one undecodable row is a failed item
    rows = _parts(out)
    assert [r["id"] for r in rows] == [str(i) for i in range(1, 302)]  # CSV ids are row numbers


def test_engine_options_need_ray(tmp_path: Path) -> None:
    src = _reports_csv(tmp_path / "in.csv", 3)
    done = subprocess.run([*RADEDGE, "label-reports", str(src), "-o", str(tmp_path / "o.csv"),
                           "--address", "127.0.0.1:6379"], capture_output=True, text=True)
    assert done.returncode == 2 and "--engine ray" in done.stderr


def _jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_empty_input_is_an_empty_table_and_a_rerun_does_nothing(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "in.jsonl", [])
    summary = raydata.label_to_parquet(src, tmp_path / "out", "rules")
    assert (summary.written, summary.total_failed) == (0, 0)
    table = pq.read_table(tmp_path / "out")
    assert table.num_rows == 0 and {"id", "labels", "error"} <= set(table.column_names)
    again = raydata.label_to_parquet(src, tmp_path / "out", "rules")
    assert (again.written, again.blocks_written, again.resumed) == (0, 0, 0)


def test_only_error_items_keep_the_typed_schema(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "in.jsonl", ["not json", "[1, 2]", {"id": "x"}])
    summary = raydata.label_to_parquet(src, tmp_path / "out", "rules", num_workers=1)
    assert (summary.written, summary.failed) == (3, 3)
    table = pq.read_table(tmp_path / "out")
    assert table.schema.field("labels").type.num_fields == 14
    assert all(r["error"] and not any((r["labels"] or {}).values()) for r in table.to_pylist())


def test_int_ids_sections_and_evidence_as_json_text(tmp_path: Path) -> None:
    text = "FINDINGS: Small left pleural effusion. IMPRESSION: No pneumothorax."
    src = _jsonl(tmp_path / "in.jsonl", [{"id": 7, "text": text}, {"id": "CXR8", "text": text}])
    raydata.label_to_parquet(src, tmp_path / "out", "rules", sections="impression", num_workers=1)
    label_file(src, tmp_path / "one.jsonl", "rules", sections="impression")
    one = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    rows = _parts(tmp_path / "out")
    assert [r["id"] for r in rows] == ["7", "CXR8"] and [r["id"] for r in one] == [7, "CXR8"]
    assert [r["labels"] for r in rows] == [r["labels"] for r in one]
    assert rows[0]["labels"]["Pleural Effusion"] is None  # only the impression was read
    assert [json.loads(r["evidence"]) for r in rows] == [r["evidence"] for r in one]


def test_model_folder_path_and_overwrite_and_stale_temporaries(tmp_path: Path) -> None:
    from radedge.registry import resolve

    folder = resolve("default", "report-labels")
    src = _jsonl(tmp_path / "in.jsonl", [{"id": i, "text": t} for i, t in enumerate(REPORTS)])
    out = tmp_path / "out"
    raydata.label_to_parquet(src, out, str(folder), block_size=4, num_workers=1)
    first = _parts(out)
    (out / "part-000001.parquet").unlink()
    stale = out / ".part-000001.parquet.999999999.tmp"  # a writer killed mid-write (no such pid)
    stale.write_bytes(b"half a file")
    again = raydata.label_to_parquet(src, out, "default", block_size=4, num_workers=1)  # same model by name
    # labels, not probabilities: int8 dynamic quantization scales each batch as a whole, so a report's
    # probabilities move in the last digits with its batch-mates (a rerun batches the gap alone)
    assert not stale.exists() and again.written == 3
    assert [(r["id"], r["labels"]) for r in _parts(out)] == [(r["id"], r["labels"]) for r in first]
    stale.write_bytes(b"half a file")
    redo = raydata.label_to_parquet(src, out, "rules", block_size=4, num_workers=1, overwrite=True)
    assert not stale.exists() and redo.written == len(REPORTS) and redo.resumed == 0
    assert sorted(p.name for p in out.iterdir()) == ["_radedge.json", "part-000000.parquet", "part-000001.parquet"]
